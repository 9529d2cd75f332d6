#include "server-stub/ChatServer.h"

#include "core/Logging.h"
#include "server-stub/ClientConnection.h"
#include "server-stub/ServerStore.h"

#include <QThreadPool>
#include <QTimer>
#include <QWebSocket>
#include <QWebSocketServer>

namespace ferry::server {

namespace {
    constexpr std::chrono::milliseconds ShutdownGrace { 2000 };
}

ChatServer::ChatServer(ServerConfig config, std::unique_ptr<ServerStore> store, QObject* parent)
    : QObject(parent)
    , m_config(std::move(config))
    , m_store(std::move(store))
    , m_webSocketServer(new QWebSocketServer(QStringLiteral("ferry-server"),
          QWebSocketServer::NonSecureMode, this))
{
    connect(m_webSocketServer, &QWebSocketServer::newConnection, this,
        &ChatServer::handleNewConnection);
}

ChatServer::~ChatServer()
{
    // Connections are children of this object; they unregister themselves as they go, which
    // must happen before the hash they unregister from is destroyed.
    qDeleteAll(findChildren<ClientConnection*>(Qt::FindDirectChildrenOnly));
}

Result<Done> ChatServer::listen()
{
    if (!m_webSocketServer->listen(m_config.address, m_config.port)) {
        return Error { QStringLiteral("listen"),
            u"could not listen on " + m_config.address.toString() + u':'
                + QString::number(m_config.port) + u": " + m_webSocketServer->errorString() };
    }
    qCInfo(lcServer) << "Listening on" << url().toString();
    return Done {};
}

QUrl ChatServer::url() const
{
    QUrl url;
    url.setScheme(QStringLiteral("ws"));
    url.setHost(m_webSocketServer->serverAddress().toString());
    url.setPort(m_webSocketServer->serverPort());
    return url;
}

void ChatServer::stop()
{
    if (m_stopping) {
        return;
    }
    qCInfo(lcServer) << "Stopping: no new connections, closing"
                     << findChildren<ClientConnection*>().size() << "open ones";
    m_webSocketServer->close();
    const QList<ClientConnection*> connections
        = findChildren<ClientConnection*>(Qt::FindDirectChildrenOnly);
    for (ClientConnection* connection : connections) {
        connection->closeForShutdown();
    }
    // A login whose password is being hashed finishes before the process goes: its device row
    // is then either written or never started, not half-made.
    QThreadPool::globalInstance()->waitForDone();

    // Close frames need the event loop to leave; a peer that never answers its close frame
    // does not hold the shutdown for longer than the grace period.
    m_stopping = true;
    if (m_connectionCount == 0) {
        QMetaObject::invokeMethod(this, &ChatServer::stopped, Qt::QueuedConnection);
    } else {
        QTimer::singleShot(ShutdownGrace, this, &ChatServer::stopped);
    }
}

void ChatServer::handleConnectionGone()
{
    --m_connectionCount;
    if (m_stopping && m_connectionCount == 0) {
        Q_EMIT stopped();
    }
}

void ChatServer::addLiveConnection(qint64 userId, ClientConnection* connection)
{
    m_liveConnections.insert(userId, connection);
}

void ChatServer::removeLiveConnection(qint64 userId, ClientConnection* connection)
{
    m_liveConnections.remove(userId, connection);
}

void ChatServer::notifyEventsAppended(const QList<qint64>& userIds)
{
    for (const qint64 userId : userIds) {
        // Copied because pushing may close a connection, which unregisters it.
        const QList<ClientConnection*> connections = m_liveConnections.values(userId);
        for (ClientConnection* connection : connections) {
            connection->pushNewEvents();
        }
    }
}

void ChatServer::handleNewConnection()
{
    while (QWebSocket* socket = m_webSocketServer->nextPendingConnection()) {
        socket->setMaxAllowedIncomingFrameSize(static_cast<quint64>(m_config.maxFrameBytes));
        socket->setMaxAllowedIncomingMessageSize(static_cast<quint64>(m_config.maxFrameBytes));
        qCInfo(lcServer) << "Connection from" << socket->peerAddress().toString()
                         << socket->peerPort();
        new ClientConnection(socket, this);
        ++m_connectionCount;
    }
}

} // namespace ferry::server
