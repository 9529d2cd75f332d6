#pragma once

#include "core/Result.h"
#include "server-stub/ServerConfig.h"
#include "server-stub/ServerMetrics.h"
#include "server-stub/ServerStore.h"
#include "server-stub/SessionTokens.h"

#include <QElapsedTimer>
#include <QHash>
#include <QMultiHash>
#include <QObject>
#include <QPointer>
#include <QSet>
#include <QTimer>
#include <QUrl>

#include <memory>

class QHttpServer;

namespace ferry::v1 {
class Envelope;
}

namespace ferry::server {

class ClientConnection;
class ConnectionListener;

/// The reference server: accepts WebSocket connections and owns one ClientConnection per socket;
/// knows which devices are connected, to push new events to them, relay typing and presence,
/// and close a removed device's links; enforces the timeouts of every connection with one sweep
/// timer; serves /healthz and /metrics over HTTP. All protocol work happens on the thread that
/// owns the server; only password hashing is handed to a thread pool.
class ChatServer : public QObject {
    Q_OBJECT
public:
    ChatServer(ServerConfig config, std::unique_ptr<ServerStore> store, SessionTokens tokens,
        QObject* parent = nullptr);
    ~ChatServer() override;

    /// Loads the revoked devices, then opens the WebSocket and HTTP ports.
    Result<Done> start();
    /// ws://host:port of the WebSocket port, once started.
    QUrl url() const;
    /// http://host:port of /healthz and /metrics, empty when they are off.
    QUrl httpUrl() const;

    /// Stops accepting, closes every connection with 1001 (going away: reconnect later) and
    /// waits for password hashing still in flight. Emits stopped() once every connection has
    /// closed, or after a grace period.
    void stop();
    bool isStopping() const { return m_stopping; }

    const ServerConfig& config() const { return m_config; }
    ServerStore& store() { return *m_store; }
    const SessionTokens& tokens() const { return m_tokens; }
    ServerMetrics& metrics() { return m_metrics; }

    // Called by connections as they change state.
    void connectionAuthenticated(ClientConnection* connection);
    void connectionWentLive(ClientConnection* connection);
    void connectionStoppedLive(ClientConnection* connection);
    void connectionGone(ClientConnection* connection);

    /// Queues a message for the next group commit: every message that arrives in one pass of
    /// the event loop, from every connection, is stored in one transaction, and each sender gets
    /// its SendAck only once that transaction has committed. Under load (the last commit held
    /// several messages), commits start at most once per config().commitInterval; the messages
    /// meanwhile wait for the next.
    void queueSend(ClientConnection* connection, quint64 requestId, NewMessage message);
    /// Stores the queued messages and answers their senders. Runs at the start of the next pass
    /// of the event loop (or once the commit interval has passed), and earlier when the queue is
    /// full or a sender's later request must see its messages stored first.
    void commitPendingSends();

    /// Called after a commit that appended to these users' event logs.
    void notifyEventsAppended(const QList<qint64>& userIds);

    /// Sends an ephemeral event to every authenticated connection of these users.
    void sendEphemeral(const QList<qint64>& userIds, const v1::Envelope& envelope,
        const ClientConnection* except = nullptr);

    bool isDeviceRemoved(quint64 deviceId) const { return m_removedDevices.contains(deviceId); }
    /// Removes a device of `userId`'s account and closes its connections with 4003.
    Result<Done> removeDevice(qint64 userId, quint64 deviceId);
    /// Whether some connection of this server belongs to the device.
    bool isDeviceOnline(qint64 userId, quint64 deviceId) const;

    /// Presence of the contacts of a newly authenticated user, sent to that connection only.
    void sendPresenceSnapshot(ClientConnection* connection);

Q_SIGNALS:
    void stopped();

private:
    friend class ConnectionListener;

    /// Takes over a descriptor just accepted; its ClientConnection does the WebSocket handshake.
    void handleAcceptedSocket(qintptr descriptor);
    void sweepConnections();
    void broadcastPresence(qint64 userId, const QString& userName, bool online, qint64 lastSeenMs);
    /// Pushes what a group commit stored to its recipients' live connections, from the commit's
    /// own results rather than by reading every recipient's log back. Returns how many users'
    /// logs grew.
    qsizetype pushCommittedMessages(
        const QList<NewMessage>& messages, const QList<Result<StoredMessageAck>>& results);
    Result<Done> startHttp();

    ServerConfig m_config;
    std::unique_ptr<ServerStore> m_store;
    SessionTokens m_tokens;
    ServerMetrics m_metrics;

    /// Accepts TCP connections with a deep backlog and hands over their descriptors.
    ConnectionListener* m_listener = nullptr;
    std::unique_ptr<QHttpServer> m_httpServer;
    quint16 m_httpPort = 0;
    QTimer m_sweepTimer;
    QTimer m_memoryTrimTimer;

    QSet<ClientConnection*> m_connections;
    QMultiHash<qint64, ClientConnection*> m_authenticatedByUser;
    QMultiHash<qint64, ClientConnection*> m_liveByUser;
    QSet<quint64> m_removedDevices;
    bool m_stopping = false;

    struct PendingSend {
        QPointer<ClientConnection> connection;
        quint64 requestId = 0;
        QElapsedTimer sinceArrival;
    };
    QList<PendingSend> m_pendingSends;
    QList<NewMessage> m_pendingMessages; ///< in the order of m_pendingSends
    bool m_commitScheduled = false;
    /// Started as each group commit of messages starts; paces the next one.
    QElapsedTimer m_sinceCommitStarted;
    qsizetype m_lastCommitMessages = 0; ///< how many that commit held
    /// Fires the next group commit once config().commitInterval has passed since the last.
    QTimer m_commitTimer;
};

} // namespace ferry::server
