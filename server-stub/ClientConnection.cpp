#include "server-stub/ClientConnection.h"

#include "core/ConversationId.h"
#include "core/FrameCodec.h"
#include "core/Logging.h"
#include "core/MessageId.h"
#include "server-stub/ChatServer.h"
#include "server-stub/Credentials.h"
#include "server-stub/ServerStore.h"

#include <QFuture>
#include <QWebSocket>
#include <QtConcurrent/QtConcurrentRun>

#include "ferry.pb.h"

namespace ferry::server {

namespace {
    constexpr qsizetype MinPasswordBytes = 8;
    constexpr qsizetype MaxPasswordBytes = 1024;
    constexpr qsizetype MaxDeviceNameChars = 64;
    constexpr qsizetype MaxBatchBytes = 1024 * 1024;

    QByteArray toBytes(const std::string& value)
    {
        return QByteArray(value.data(), static_cast<qsizetype>(value.size()));
    }

    QString toQString(const std::string& value)
    {
        return QString::fromUtf8(value.data(), static_cast<qsizetype>(value.size()));
    }

    std::string toStd(const QByteArray& value) { return std::string(value.constData(), value.size()); }

    std::string toStd(const QString& value) { return value.toStdString(); }

    QString describe(const QByteArray& messageId)
    {
        const auto id = MessageId::fromBytes(messageId);
        return id ? id->toString() : QStringLiteral("(malformed id)");
    }
}

ClientConnection::ClientConnection(QWebSocket* socket, ChatServer* server)
    : QObject(server)
    , m_socket(socket)
    , m_server(server)
{
    socket->setParent(this);
    connect(socket, &QWebSocket::binaryMessageReceived, this,
        &ClientConnection::handleBinaryMessage);
    connect(socket, &QWebSocket::textMessageReceived, this, &ClientConnection::handleTextMessage);
    connect(socket, &QWebSocket::disconnected, this, &ClientConnection::handleDisconnected);
}

ClientConnection::~ClientConnection()
{
    if (m_live) {
        m_server->removeLiveConnection(m_userId, this);
    }
    m_server->handleConnectionGone();
}

void ClientConnection::closeForShutdown()
{
    m_state = State::Closed;
    m_socket->close(QWebSocketProtocol::CloseCodeGoingAway, QStringLiteral("server shutting down"));
}

void ClientConnection::handleDisconnected()
{
    qCInfo(lcServer) << "Connection closed" << (m_userName.isEmpty() ? QStringLiteral("(anonymous)")
                                                                      : m_userName)
                     << "device" << m_deviceId << "code" << m_socket->closeCode();
    m_state = State::Closed;
    if (m_live) {
        m_server->removeLiveConnection(m_userId, this);
        m_live = false;
    }
    deleteLater();
}

void ClientConnection::handleTextMessage(const QString&)
{
    closeWithError(v1::MALFORMED_FRAME, QStringLiteral("text frames are not part of the protocol"),
        QWebSocketProtocol::CloseCodeDatatypeNotSupported);
}

void ClientConnection::handleBinaryMessage(const QByteArray& frame)
{
    if (m_state == State::Closed) {
        return;
    }
    v1::Envelope envelope;
    if (!decodeFrame(frame, &envelope)) {
        closeWithError(v1::MALFORMED_FRAME, QStringLiteral("the frame is not a ferry.v1 Envelope"),
            QWebSocketProtocol::CloseCodeProtocolError);
        return;
    }
    const quint64 requestId = envelope.request_id();
    qCDebug(lcServer) << "Frame" << envelope.payload_case() << "request" << requestId << "from"
                      << m_userName << frame.size() << "bytes";

    switch (m_state) {
    case State::AwaitingHello:
        if (envelope.has_hello()) {
            handleHello(requestId, envelope.hello());
        } else {
            closeWithError(v1::BAD_REQUEST, QStringLiteral("the first frame must be Hello"),
                QWebSocketProtocol::CloseCodeProtocolError);
        }
        return;
    case State::AwaitingAuth:
        if (envelope.has_register_()) {
            handleRegister(requestId, envelope.register_());
        } else if (envelope.has_login()) {
            handleLogin(requestId, envelope.login());
        } else if (envelope.has_resume()) {
            handleResume(requestId, envelope.resume());
        } else {
            sendError(requestId, v1::NOT_AUTHENTICATED,
                QStringLiteral("register, log in or resume a device first"));
        }
        return;
    case State::Authenticating:
        sendError(requestId, v1::BAD_REQUEST,
            QStringLiteral("wait for the answer to the authentication request"));
        return;
    case State::Authenticated:
        if (envelope.has_send()) {
            handleSend(requestId, envelope.send());
        } else if (envelope.has_sync()) {
            handleSync(requestId, envelope.sync());
        } else {
            sendError(requestId, v1::BAD_REQUEST,
                QStringLiteral("this request is not valid on an authenticated connection"));
        }
        return;
    case State::Closed:
        return;
    }
}

void ClientConnection::handleHello(quint64 requestId, const v1::Hello& hello)
{
    if (hello.protocol_version() != ProtocolVersion) {
        v1::Envelope reply;
        reply.set_request_id(requestId);
        v1::Error* error = reply.mutable_error();
        error->set_code(v1::UNSUPPORTED_VERSION);
        error->set_message("this server speaks protocol version 1 only");
        error->add_supported_versions(ProtocolVersion);
        send(reply);
        m_state = State::Closed;
        m_socket->close(QWebSocketProtocol::CloseCodePolicyViolated,
            QStringLiteral("unsupported protocol version"));
        return;
    }
    qCInfo(lcServer) << "Hello from" << toQString(hello.client_name()).left(64);
    m_state = State::AwaitingAuth;

    v1::Envelope reply;
    reply.set_request_id(requestId);
    reply.mutable_welcome()->set_protocol_version(ProtocolVersion);
    reply.mutable_welcome()->set_server_name("ferry-server/" FERRY_VERSION);
    send(reply);
}

void ClientConnection::handleRegister(quint64 requestId, const v1::Register& request)
{
    const QString userName = toQString(request.user_name());
    const QByteArray password = toBytes(request.password());
    const QString deviceName = toQString(request.device_name()).left(MaxDeviceNameChars);

    if (!isValidUserName(userName)) {
        sendError(requestId, v1::BAD_REQUEST,
            QStringLiteral("a user name is 1 to 32 characters from a-z, 0-9, '.', '_' and '-'"));
        return;
    }
    if (password.size() < MinPasswordBytes || password.size() > MaxPasswordBytes) {
        sendError(requestId, v1::BAD_REQUEST,
            QStringLiteral("a password is 8 to 1024 bytes long"));
        return;
    }
    if (m_server->store().findUser(userName)) {
        sendError(requestId, v1::NAME_TAKEN, u"the name " + userName + u" is taken");
        return;
    }

    // Hashing takes tens of milliseconds by design; it must not stall everyone else's frames.
    m_state = State::Authenticating;
    QtConcurrent::run(Credentials::hashPassword, password)
        .then(this, [this, requestId, userName, deviceName](const QByteArray& hash) {
            if (hash.isEmpty()) {
                m_state = State::AwaitingAuth;
                sendError(requestId, v1::INTERNAL, QStringLiteral("could not hash the password"));
                return;
            }
            Result<UserRecord> user = m_server->store().createUser(userName, hash);
            if (!user) {
                m_state = State::AwaitingAuth;
                const bool taken = user.error().kind == StoreError::NameTaken;
                sendError(requestId, taken ? v1::NAME_TAKEN : v1::INTERNAL, user.error().message);
                return;
            }
            qCInfo(lcServerAuth) << "Registered user" << userName;
            finishDeviceLogin(requestId, user->id, userName, deviceName);
        });
}

void ClientConnection::handleLogin(quint64 requestId, const v1::Login& request)
{
    const QString userName = toQString(request.user_name());
    const QByteArray password = toBytes(request.password());
    const QString deviceName = toQString(request.device_name()).left(MaxDeviceNameChars);

    // An unknown user is checked against a dummy hash, so both failures take the same time
    // and answer with the same error.
    const std::optional<UserRecord> user
        = isValidUserName(userName) ? m_server->store().findUser(userName) : std::nullopt;
    const QByteArray storedHash = user ? user->passwordHash : QByteArray();
    const qint64 userId = user ? user->id : 0;

    m_state = State::Authenticating;
    QtConcurrent::run(Credentials::verifyPassword, password, storedHash)
        .then(this, [this, requestId, userId, userName, deviceName](bool matches) {
            if (!matches) {
                m_state = State::AwaitingAuth;
                qCInfo(lcServerAuth) << "Refused a login (wrong password or unknown user)";
                sendError(requestId, v1::BAD_CREDENTIALS,
                    QStringLiteral("wrong user name or password"));
                return;
            }
            finishDeviceLogin(requestId, userId, userName, deviceName);
        });
}

void ClientConnection::finishDeviceLogin(
    quint64 requestId, qint64 userId, const QString& userName, const QString& deviceName)
{
    const QByteArray token = Credentials::newDeviceToken();
    const QString name = deviceName.isEmpty() ? QStringLiteral("device") : deviceName;
    Result<DeviceRecord> device
        = m_server->store().createDevice(userId, name, Credentials::tokenHash(token));
    if (!device) {
        m_state = State::AwaitingAuth;
        qCWarning(lcServerAuth) << "Could not create a device:" << device.error().message;
        sendError(requestId, v1::INTERNAL, QStringLiteral("could not create the device"));
        return;
    }
    qCInfo(lcServerAuth) << "User" << userName << "signed in as new device" << device->id;
    becomeAuthenticated(requestId, userId, userName, device->id, token);
}

void ClientConnection::handleResume(quint64 requestId, const v1::Resume& request)
{
    const std::optional<DeviceRecord> device = m_server->store().findDevice(request.device_id());
    const QByteArray presented = Credentials::tokenHash(toBytes(request.device_token()));
    if (!device || !Credentials::tokenHashesEqual(presented, device->tokenHash)) {
        qCInfo(lcServerAuth) << "Refused a device resume for device" << request.device_id();
        sendError(requestId, v1::INVALID_TOKEN, QStringLiteral("unknown device or wrong token"));
        return;
    }

    becomeAuthenticated(requestId, device->userId, device->userName, device->id, {});
}

void ClientConnection::becomeAuthenticated(quint64 requestId, qint64 userId,
    const QString& userName, quint64 deviceId, const QByteArray& newToken)
{
    m_state = State::Authenticated;
    m_userId = userId;
    m_userName = userName;
    m_deviceId = deviceId;

    v1::Envelope reply;
    reply.set_request_id(requestId);
    v1::Authenticated* authenticated = reply.mutable_authenticated();
    authenticated->set_user_name(toStd(userName));
    authenticated->set_device_id(deviceId);
    authenticated->set_device_token(toStd(newToken));
    if (Result<quint64> offset = m_server->store().lastOffset(userId)) {
        authenticated->set_last_offset(offset.value());
    }
    send(reply);
}

void ClientConnection::handleSend(quint64 requestId, const v1::SendMessage& request)
{
    NewMessage message;
    message.messageId = toBytes(request.message_id());
    message.conversationId = toQString(request.conversation_id());
    message.senderUserId = m_userId;
    message.senderName = m_userName;
    message.senderDeviceId = m_deviceId;
    message.body = toBytes(request.body());

    if (!MessageId::fromBytes(message.messageId)) {
        sendError(requestId, v1::BAD_REQUEST, QStringLiteral("a message id is 16 bytes"),
            message.messageId);
        return;
    }
    if (message.body.size() > m_server->config().maxBodyBytes) {
        sendError(requestId, v1::BODY_TOO_LARGE,
            u"a message body is at most " + QString::number(m_server->config().maxBodyBytes)
                + u" bytes",
            message.messageId);
        return;
    }

    Result<StoredMessageAck> stored = m_server->store().appendMessage(message);
    if (!stored) {
        const QString& kind = stored.error().kind;
        int code = v1::INTERNAL;
        if (kind == StoreError::UnknownRecipient) {
            code = v1::UNKNOWN_RECIPIENT;
        } else if (kind == StoreError::NotAMember) {
            code = v1::NOT_A_MEMBER;
        } else if (kind == StoreError::IdConflict) {
            code = v1::DUPLICATE_ID_CONFLICT;
        } else {
            qCWarning(lcServer) << "Could not store a message:" << stored.error().message;
        }
        sendError(requestId, code, stored.error().message, message.messageId);
        return;
    }

    qCDebug(lcServer) << "Stored" << describe(message.messageId) << "as seq" << stored->seq
                      << (stored->alreadyStored ? "(resend)" : "");
    v1::Envelope reply;
    reply.set_request_id(requestId);
    v1::SendAck* ack = reply.mutable_send_ack();
    ack->set_message_id(request.message_id());
    ack->set_conversation_id(request.conversation_id());
    ack->set_seq(stored->seq);
    ack->set_server_time_ms(stored->serverTimeMs);
    send(reply);

    if (!stored->alreadyStored) {
        m_server->notifyEventsAppended(stored->notifiedUserIds);
    }
}

void ClientConnection::handleSync(quint64 requestId, const v1::SyncRequest& request)
{
    // A new sync request restarts the stream from the offset the client names: it is the
    // client's word on what it has committed.
    if (m_live) {
        m_server->removeLiveConnection(m_userId, this);
        m_live = false;
    }
    const int serverLimit = m_server->config().syncBatchLimit;
    const int limit = request.max_events() == 0
        ? serverLimit
        : static_cast<int>(std::min<quint32>(request.max_events(), static_cast<quint32>(serverLimit)));
    streamEvents(requestId, request.after_offset(), limit);
}

bool ClientConnection::streamEvents(quint64 requestId, quint64 afterOffset, int limit)
{
    Result<EventPage> page = m_server->store().eventsAfter(m_userId, afterOffset, limit);
    if (!page) {
        qCWarning(lcServer) << "Could not read events:" << page.error().message;
        sendError(requestId, v1::INTERNAL, QStringLiteral("could not read the event log"));
        return true;
    }
    // A push with nothing new says nothing; an answer to a request always goes out.
    if (requestId == 0 && page->events.isEmpty()) {
        return true;
    }

    v1::Envelope reply;
    reply.set_request_id(requestId);
    v1::EventBatch* batch = reply.mutable_events();
    quint64 lastOffset = afterOffset;
    bool caughtUp = page->caughtUp;
    qsizetype batchBytes = 0;
    for (const LogEvent& logEvent : std::as_const(page->events)) {
        // A byte budget as well as a count, so that large bodies cannot make a frame of many
        // megabytes; the rest follows in the next batch.
        if (batchBytes > MaxBatchBytes) {
            caughtUp = false;
            break;
        }
        batchBytes += logEvent.body.size() + logEvent.conversationId.size() + 64;
        v1::Event* event = batch->add_events();
        event->set_offset(logEvent.offset);
        v1::MessageEvent* message = event->mutable_message();
        message->set_message_id(toStd(logEvent.messageId));
        message->set_conversation_id(toStd(logEvent.conversationId));
        message->set_seq(logEvent.seq);
        message->set_sender(toStd(logEvent.sender));
        message->set_sender_device(logEvent.senderDeviceId);
        message->set_body(toStd(logEvent.body));
        message->set_server_time_ms(logEvent.serverTimeMs);
        lastOffset = logEvent.offset;
    }
    batch->set_caught_up(caughtUp);
    batch->set_last_offset(lastOffset);
    send(reply);

    // Once a client has everything up to the end of its log, later commits are pushed to it.
    // The cursor makes the switch exact: a push sends only what lies after what was sent, and
    // nothing can commit between reading this page and registering, as both run on this thread.
    if (m_live) {
        m_cursor = lastOffset;
    } else if (caughtUp) {
        m_cursor = lastOffset;
        m_live = true;
        m_server->addLiveConnection(m_userId, this);
    }
    return caughtUp;
}

void ClientConnection::pushNewEvents()
{
    // Events are read back from the log rather than taken from the commit that announced them,
    // so a push can never skip or repeat an offset whatever order commits arrive in. Each pass
    // sends one bounded batch; the loop ends when the log is drained or the socket is closed.
    while (m_live && m_state == State::Authenticated) {
        if (streamEvents(0, m_cursor, m_server->config().syncBatchLimit)) {
            return;
        }
    }
}

void ClientConnection::send(const v1::Envelope& envelope)
{
    if (m_state == State::Closed && !envelope.has_error()) {
        return;
    }
    m_socket->sendBinaryMessage(encodeFrame(envelope));
}

void ClientConnection::sendError(
    quint64 requestId, int code, const QString& message, const QByteArray& messageId)
{
    v1::Envelope reply;
    reply.set_request_id(requestId);
    v1::Error* error = reply.mutable_error();
    error->set_code(static_cast<v1::ErrorCode>(code));
    error->set_message(toStd(message));
    if (!messageId.isEmpty()) {
        error->set_message_id(toStd(messageId));
    }
    send(reply);
}

void ClientConnection::closeWithError(int code, const QString& message, int closeCode)
{
    qCInfo(lcServer) << "Closing a connection:" << message;
    sendError(0, code, message);
    m_state = State::Closed;
    m_socket->close(static_cast<QWebSocketProtocol::CloseCode>(closeCode), message);
}

} // namespace ferry::server
