#pragma once

#include "core/Result.h"

#include <QHostAddress>
#include <QMultiHash>
#include <QObject>
#include <QUrl>

#include <memory>

class QWebSocketServer;

namespace ferry::server {

class ClientConnection;
class ServerStore;

/// What a ChatServer needs to know to start; every limit has a default that suits a laptop.
struct ServerConfig {
    QHostAddress address = QHostAddress::LocalHost;
    quint16 port = 0; ///< 0 lets the system pick a free port
    qsizetype maxFrameBytes = 64 * 1024;
    qsizetype maxBodyBytes = 60 * 1024;
    int syncBatchLimit = 500;
};

/// The WebSocket endpoint of the reference server: accepts connections, owns one
/// ClientConnection per socket, and tells a user's live connections when their event log grows.
/// All protocol work happens on the thread that owns the server; only password hashing is
/// handed to a thread pool.
class ChatServer : public QObject {
    Q_OBJECT
public:
    ChatServer(ServerConfig config, std::unique_ptr<ServerStore> store, QObject* parent = nullptr);
    ~ChatServer() override;

    Result<Done> listen();
    /// ws://host:port of the listening socket, once listen() succeeded.
    QUrl url() const;

    /// Stops accepting, closes every connection with a "going away" close code (clients take it
    /// as a cue to reconnect later) and waits for password hashing still in flight. Emits
    /// stopped() once every connection has closed, or after a grace period.
    void stop();

    const ServerConfig& config() const { return m_config; }
    ServerStore& store() { return *m_store; }

    /// Called by a connection that has caught up and now wants every new event of its user.
    void addLiveConnection(qint64 userId, ClientConnection* connection);
    void removeLiveConnection(qint64 userId, ClientConnection* connection);

    /// Called after a commit that appended to these users' event logs.
    void notifyEventsAppended(const QList<qint64>& userIds);

    /// Called by a connection as it is destroyed.
    void handleConnectionGone();

Q_SIGNALS:
    void stopped();

private:
    void handleNewConnection();

    ServerConfig m_config;
    std::unique_ptr<ServerStore> m_store;
    QWebSocketServer* m_webSocketServer = nullptr;
    QMultiHash<qint64, ClientConnection*> m_liveConnections;
    int m_connectionCount = 0;
    bool m_stopping = false;
};

} // namespace ferry::server
