#include "server-stub/ChatServer.h"

#include "core/CloseCodes.h"
#include "core/Logging.h"
#include "core/ProtocolText.h"
#include "server-stub/ClientConnection.h"
#include "server-stub/CommittedEvents.h"
#include "server-stub/ServerStore.h"
#include "server-stub/WebSocketConnection.h"

#include <QDateTime>
#include <QHttpServer>
#include <QHttpServerResponse>
#include <QTcpServer>
#include <QThreadPool>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "ferry.pb.h"

namespace ferry::server {

namespace {
    constexpr std::chrono::milliseconds ShutdownGrace { 2000 };
    /// The most messages in one group commit. Enough to make the fsync's share of each message
    /// small; few enough that the first sender of a full batch is not kept waiting long.
    constexpr qsizetype MaxSendsPerCommit = 512;
    /// Connections the kernel queues before they are accepted; it caps this at somaxconn.
    constexpr int ListenBacklog = 4096;
}

/// A QTcpServer that hands over each accepted descriptor as it is, without making a QTcpSocket
/// of it: a connection is a WebSocketConnection on the bare descriptor (docs/design.md,
/// "Memory per connection").
class ConnectionListener final : public QTcpServer {
public:
    explicit ConnectionListener(ChatServer* server)
        : QTcpServer(server)
        , m_server(server)
    {
    }

protected:
    void incomingConnection(qintptr descriptor) override
    {
        m_server->handleAcceptedSocket(descriptor);
    }

private:
    ChatServer* m_server;
};

ChatServer::ChatServer(ServerConfig config, std::unique_ptr<ServerStore> store,
    SessionTokens tokens, QObject* parent)
    : QObject(parent)
    , m_config(std::move(config))
    , m_store(std::move(store))
    , m_tokens(std::move(tokens))
    , m_listener(new ConnectionListener(this))
{
    // With Qt's default backlog of 50, a crowd reconnecting at once (after a restart) overflows
    // the kernel's queue, and each dropped SYN costs its client a retransmission timeout of a
    // second and more.
    m_listener->setListenBacklogSize(ListenBacklog);

    // One timer checks every connection's deadlines; a timer per connection would cost a
    // QObject and a timer registration for each of tens of thousands of sockets.
    const auto shortest = std::min(m_config.unauthenticatedTimeout, m_config.heartbeatInterval);
    m_sweepTimer.setInterval(std::clamp(shortest / 4, std::chrono::milliseconds(50),
        std::chrono::milliseconds(1000)));
    connect(&m_sweepTimer, &QTimer::timeout, this, &ChatServer::sweepConnections);

    m_commitTimer.setSingleShot(true);
    m_commitTimer.setTimerType(Qt::PreciseTimer);
    connect(&m_commitTimer, &QTimer::timeout, this, &ChatServer::commitPendingSends);

    // glibc keeps memory that tens of thousands of sockets' buffers and frames freed, in holes
    // it does not give back by itself; the server's resident size then creeps up with traffic
    // (+13 % over five minutes of tst_server_load's soak). Handing the free pages back twice a
    // minute took that to +9 %; one call costs milliseconds on a heap of a few hundred MiB.
    m_memoryTrimTimer.setInterval(std::chrono::seconds(30));
    m_memoryTrimTimer.setTimerType(Qt::VeryCoarseTimer);
    connect(&m_memoryTrimTimer, &QTimer::timeout, this, [] {
#if defined(__GLIBC__)
        malloc_trim(0);
#endif
    });
}

ChatServer::~ChatServer()
{
    commitPendingSends();
    // Connections unregister themselves as they go, which must happen while the registries
    // still exist.
    const QSet<ClientConnection*> connections = m_connections;
    qDeleteAll(connections);
}

Result<Done> ChatServer::start()
{
    Result<QList<quint64>> removed = m_store->removedDeviceIds();
    if (!removed) {
        return removed.error();
    }
    m_removedDevices = QSet<quint64>(removed->begin(), removed->end());

    if (!m_listener->listen(m_config.address, m_config.port)) {
        return Error { QStringLiteral("listen"),
            u"could not listen on " + m_config.address.toString() + u':'
                + QString::number(m_config.port) + u": " + m_listener->errorString() };
    }
    if (m_config.httpEnabled) {
        if (auto http = startHttp(); !http) {
            return http.error();
        }
    }
    m_sweepTimer.start();
    m_memoryTrimTimer.start();
    qCInfo(lcServer) << "Listening on" << url().toString() << "with metrics on"
                     << httpUrl().toString();
    return Done {};
}

Result<Done> ChatServer::startHttp()
{
    m_httpServer = std::make_unique<QHttpServer>();
    m_httpServer->route(QStringLiteral("/healthz"), [this] {
        // Healthy means: accepting connections and able to read the database.
        const bool healthy
            = m_listener->isListening() && !m_stopping && m_store->ping().ok();
        return QHttpServerResponse(QByteArrayLiteral("text/plain"),
            healthy ? QByteArrayLiteral("ok\n") : QByteArrayLiteral("unavailable\n"),
            healthy ? QHttpServerResponse::StatusCode::Ok
                    : QHttpServerResponse::StatusCode::ServiceUnavailable);
    });
    m_httpServer->route(QStringLiteral("/metrics"), [this] {
        MetricsSnapshot now;
        now.connectionsOpen = m_connections.size();
        now.connectionsAuthenticated = m_authenticatedByUser.size();
        for (const ClientConnection* connection : std::as_const(m_connections)) {
            const qint64 queued = connection->queuedBytes();
            now.queuedBytesTotal += queued;
            now.queuedBytesMax = std::max(now.queuedBytesMax, queued);
        }
        now.heapBytesInUse = heapBytesInUse();
        now.storeCacheBytes = m_store->cacheBytes();
        now.storeCacheLimitBytes = m_store->cacheLimitBytes();
        const StoreLogStats log = m_store->logStats();
        now.storeLogPages = log.logPages;
        now.checkpointsOnThread = log.checkpointsOnThread;
        now.checkpointsFinishedInCommit = log.checkpointsFinishedInCommit;
        now.checkpointsAtLimit = log.checkpointsAtLimit;
        now.waitingLogEntries = log.waitingLogEntries;
        now.waitingIndexEntries = log.waitingIndexEntries;
        return QHttpServerResponse(QByteArrayLiteral("text/plain; version=0.0.4"),
            renderPrometheus(m_metrics, now));
    });
    m_httpPort = m_httpServer->listen(m_config.httpAddress, m_config.httpPort);
    if (m_httpPort == 0) {
        return Error { QStringLiteral("listen"),
            u"could not listen for HTTP on " + m_config.httpAddress.toString() + u':'
                + QString::number(m_config.httpPort) };
    }
    return Done {};
}

QUrl ChatServer::url() const
{
    QUrl url;
    url.setScheme(QStringLiteral("ws"));
    url.setHost(m_listener->serverAddress().toString());
    url.setPort(m_listener->serverPort());
    return url;
}

QUrl ChatServer::httpUrl() const
{
    if (!m_httpServer) {
        return {};
    }
    QUrl url;
    url.setScheme(QStringLiteral("http"));
    url.setHost(m_config.httpAddress.toString());
    url.setPort(m_httpPort);
    return url;
}

void ChatServer::stop()
{
    if (m_stopping) {
        return;
    }
    m_stopping = true;
    // Messages that arrived are stored and acknowledged before the connections close.
    commitPendingSends();
    qCInfo(lcServer) << "Stopping: no new connections, closing" << m_connections.size()
                     << "open ones";
    m_listener->close();
    m_sweepTimer.stop();
    m_memoryTrimTimer.stop();
    const QSet<ClientConnection*> connections = m_connections;
    for (ClientConnection* connection : connections) {
        connection->closeWith(CloseCode::GoingAway,
            QStringLiteral("server shutting down"));
    }
    // A login whose password is being hashed finishes before the process goes: its device row
    // is then either written or never started, not half-made.
    QThreadPool::globalInstance()->waitForDone();

    // Close frames need the event loop to leave; a peer that never answers its close frame
    // does not hold the shutdown for longer than the grace period.
    if (m_connections.isEmpty()) {
        QMetaObject::invokeMethod(this, &ChatServer::stopped, Qt::QueuedConnection);
    } else {
        QTimer::singleShot(ShutdownGrace, this, &ChatServer::stopped);
    }
}

void ChatServer::handleAcceptedSocket(qintptr descriptor)
{
    const int socket = static_cast<int>(descriptor);
    // The transport reads and writes without blocking; Qt accepts without O_NONBLOCK.
    if (const int flags = ::fcntl(socket, F_GETFL); flags < 0
        || ::fcntl(socket, F_SETFL, flags | O_NONBLOCK) < 0) {
        qCWarning(lcServer) << "Could not make an accepted socket non-blocking:"
                            << qt_error_string(errno);
        ::close(socket);
        return;
    }
    // Without TCP_NODELAY the last segment of a sync batch can wait for the client's delayed
    // ACK (up to 40 ms a batch): a 100,000-message catch-up on a loaded machine went from
    // 5.7 s to 3.2 s with it (docs/benchmarks.md).
    const int noDelay = 1;
    ::setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &noDelay, sizeof(noDelay));

    qCDebug(lcServer) << "Accepted connection on descriptor" << descriptor;
    auto* connection = new ClientConnection(descriptor, this);
    m_connections.insert(connection);
    ++m_metrics.connectionsAccepted;
}

void ChatServer::sweepConnections()
{
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    // Copied: a check may close a connection, which unregisters it.
    const QSet<ClientConnection*> connections = m_connections;
    for (ClientConnection* connection : connections) {
        connection->checkDeadlines(now);
    }
}

void ChatServer::connectionAuthenticated(ClientConnection* connection)
{
    const qint64 userId = connection->userId();
    const bool cameOnline = !m_authenticatedByUser.contains(userId);
    m_authenticatedByUser.insert(userId, connection);
    if (cameOnline) {
        broadcastPresence(userId, connection->userName(), true, 0);
    }
}

void ChatServer::connectionWentLive(ClientConnection* connection)
{
    m_liveByUser.insert(connection->userId(), connection);
}

void ChatServer::connectionStoppedLive(ClientConnection* connection)
{
    m_liveByUser.remove(connection->userId(), connection);
}

void ChatServer::connectionGone(ClientConnection* connection)
{
    m_connections.remove(connection);
    const qint64 userId = connection->userId();
    m_liveByUser.remove(userId, connection);
    if (m_authenticatedByUser.remove(userId, connection) > 0
        && !m_authenticatedByUser.contains(userId) && !m_stopping) {
        broadcastPresence(userId, connection->userName(), false,
            QDateTime::currentMSecsSinceEpoch());
    }
    if (m_stopping && m_connections.isEmpty()) {
        Q_EMIT stopped();
    }
}

void ChatServer::queueSend(ClientConnection* connection, quint64 requestId, NewMessage message)
{
    PendingSend pending;
    pending.connection = connection;
    pending.requestId = requestId;
    pending.sinceArrival.start();
    m_pendingSends.append(std::move(pending));
    m_pendingMessages.append(std::move(message));

    if (m_pendingSends.size() >= MaxSendsPerCommit) {
        commitPendingSends();
    } else if (!m_commitScheduled) {
        m_commitScheduled = true;
        // Paced only when the last commit held several messages: one sender waiting for each
        // ack before the next message (a batch of one every time) gains nothing from waiting.
        const qint64 waitUs = m_sinceCommitStarted.isValid() && m_lastCommitMessages > 1
            ? m_config.commitInterval.count() - m_sinceCommitStarted.nsecsElapsed() / 1000
            : 0;
        if (waitUs <= 0) {
            // A posted call runs when the event loop starts its next pass, after every socket
            // that was ready in this one has been read: the batch holds all that arrived
            // meanwhile.
            QMetaObject::invokeMethod(this, &ChatServer::commitPendingSends, Qt::QueuedConnection);
        } else {
            // The last commit started moments ago and held several messages: messages are
            // arriving fast. These wait for the rest of the interval and share the next commit.
            // A message costs less in a larger commit (the pages it shares with others, its
            // users' logs among them, and the fsync are paid once per commit), and the time
            // saved goes to reading and answering (docs/design.md, "Pacing the group commit").
            m_commitTimer.start(std::chrono::milliseconds((waitUs + 999) / 1000));
        }
    }
}

void ChatServer::commitPendingSends()
{
    m_commitScheduled = false;
    m_commitTimer.stop();
    if (m_pendingSends.isEmpty()) {
        return;
    }
    m_sinceCommitStarted.start();
    m_lastCommitMessages = m_pendingSends.size();
    // Taken out first: answering a sender may close a connection, or bring a new request in.
    const QList<PendingSend> sends = std::exchange(m_pendingSends, {});
    const QList<NewMessage> messages = std::exchange(m_pendingMessages, {});
    QElapsedTimer commitTimer;
    commitTimer.start();
    const QList<Result<StoredMessageAck>> results = m_store->appendMessages(messages);
    const qint64 commitNs = commitTimer.nsecsElapsed();
    ++m_metrics.sendCommits;

    // Each sender's ack and the pushes of the batch to the same connection (its own message
    // among them, for the sender's log) leave together in one system call per connection; on
    // loopback a send costs as much as the rest of a message's handling.
    const WebSocketConnection::OutputBatch output;

    for (qsizetype i = 0; i < sends.size(); ++i) {
        if (ClientConnection* connection = sends[i].connection) {
            connection->finishSend(sends[i].requestId, messages[i], results[i]);
        }
        const double secondsToAck = static_cast<double>(sends[i].sinceArrival.nsecsElapsed()) / 1e9;
        m_metrics.sendToAck.observe(secondsToAck);
    }
    const qint64 ackNs = commitTimer.nsecsElapsed();
    const qsizetype users = pushCommittedMessages(messages, results);
    qCDebug(lcServer) << "Group commit of" << messages.size() << "messages:" << commitNs / 1000
                      << "us to commit," << (ackNs - commitNs) / 1000 << "us to answer,"
                      << (commitTimer.nsecsElapsed() - ackNs) / 1000 << "us to push to" << users
                      << "users";
}

qsizetype ChatServer::pushCommittedMessages(
    const QList<NewMessage>& messages, const QList<Result<StoredMessageAck>>& results)
{
    // Each stored message is serialized once; every recipient's event refers to those bytes.
    QHash<qint64, QList<CommittedEvent>> eventsByUser;
    for (qsizetype i = 0; i < messages.size(); ++i) {
        const Result<StoredMessageAck>& result = results[i];
        if (!result || result->alreadyStored) {
            continue;
        }
        const NewMessage& message = messages[i];
        v1::MessageEvent event;
        event.set_message_id(toStd(message.messageId));
        event.set_conversation_id(toStd(message.conversationId));
        event.set_seq(result->seq);
        event.set_sender(toStd(message.senderName));
        event.set_sender_device(message.senderDeviceId);
        event.set_body(toStd(message.body));
        event.set_server_time_ms(result->serverTimeMs);
        const QByteArray serialized = serializeMessageEvent(event);

        for (qsizetype member = 0; member < result->notifiedUserIds.size(); ++member) {
            eventsByUser[result->notifiedUserIds[member]].append(
                CommittedEvent { result->offsets[member], serialized, message.body.size() });
        }
    }

    for (auto it = eventsByUser.cbegin(); it != eventsByUser.cend(); ++it) {
        // Copied because pushing may close a connection, which unregisters it.
        const QList<ClientConnection*> connections = m_liveByUser.values(it.key());
        for (ClientConnection* connection : connections) {
            connection->pushCommittedEvents(it.value());
        }
    }
    return eventsByUser.size();
}

void ChatServer::notifyEventsAppended(const QList<qint64>& userIds)
{
    for (const qint64 userId : userIds) {
        // Copied because pushing may close a connection, which unregisters it.
        const QList<ClientConnection*> connections = m_liveByUser.values(userId);
        for (ClientConnection* connection : connections) {
            connection->pushNewEvents();
        }
    }
}

void ChatServer::sendEphemeral(const QList<qint64>& userIds, const v1::Envelope& envelope,
    const ClientConnection* except)
{
    for (const qint64 userId : userIds) {
        const QList<ClientConnection*> connections = m_authenticatedByUser.values(userId);
        for (ClientConnection* connection : connections) {
            if (connection != except) {
                connection->sendEnvelope(envelope);
            }
        }
    }
}

void ChatServer::broadcastPresence(
    qint64 userId, const QString& userName, bool online, qint64 lastSeenMs)
{
    // Presence goes only to people who share a conversation with the user.
    Result<QList<qint64>> contacts = m_store->contactsOf(userId);
    if (!contacts) {
        qCWarning(lcServer) << "Could not send presence:" << contacts.error().message;
        return;
    }
    v1::Envelope envelope;
    v1::PresenceEvent* presence = envelope.mutable_ephemeral()->mutable_presence();
    presence->set_user_name(userName.toStdString());
    presence->set_online(online);
    presence->set_last_seen_ms(lastSeenMs);
    sendEphemeral(contacts.value(), envelope);
}

void ChatServer::sendPresenceSnapshot(ClientConnection* connection)
{
    Result<QList<qint64>> contacts = m_store->contactsOf(connection->userId());
    if (!contacts) {
        return;
    }
    for (const qint64 contact : std::as_const(contacts.value())) {
        const ClientConnection* online = m_authenticatedByUser.value(contact, nullptr);
        if (!online) {
            continue;
        }
        v1::Envelope envelope;
        v1::PresenceEvent* presence = envelope.mutable_ephemeral()->mutable_presence();
        presence->set_user_name(online->userName().toStdString());
        presence->set_online(true);
        connection->sendEnvelope(envelope);
    }
}

Result<Done> ChatServer::removeDevice(qint64 userId, quint64 deviceId)
{
    if (auto removed = m_store->removeDevice(userId, deviceId); !removed) {
        return removed.error();
    }
    m_removedDevices.insert(deviceId);
    qCInfo(lcServerAuth) << "Removed device" << deviceId;
    const QList<ClientConnection*> connections = m_authenticatedByUser.values(userId);
    for (ClientConnection* connection : connections) {
        if (connection->deviceId() == deviceId) {
            connection->closeWith(CloseCode::DeviceRemoved, QStringLiteral("device removed"));
        }
    }
    return Done {};
}

bool ChatServer::isDeviceOnline(qint64 userId, quint64 deviceId) const
{
    for (const ClientConnection* connection : m_authenticatedByUser.values(userId)) {
        if (connection->deviceId() == deviceId) {
            return true;
        }
    }
    return false;
}

} // namespace ferry::server
