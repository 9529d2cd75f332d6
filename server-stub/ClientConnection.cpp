#include "server-stub/ClientConnection.h"

#include "core/CloseCodes.h"
#include "core/ConversationId.h"
#include "core/FrameCodec.h"
#include "core/Logging.h"
#include "server-stub/ChatServer.h"
#include "server-stub/Credentials.h"
#include "core/ProtocolText.h"
#include "server-stub/ServerStore.h"

#include <QDateTime>
#include <QFuture>
#include <QTimer>
#include <QtConcurrent/QtConcurrentRun>

#include "ferry.pb.h"

namespace ferry::server {

namespace {
    constexpr qsizetype MinPasswordBytes = 8;
    constexpr qsizetype MaxPasswordBytes = 1024;
    constexpr qsizetype MaxDeviceNameChars = 64;
    /// How long a peer has to answer a close frame before its socket is dropped.
    constexpr std::chrono::milliseconds CloseGrace { 1000 };
    /// The shortest pause imposed on a connection that exceeded its request rate.
    constexpr qint64 MinHoldOffMs = 1000;

    qint64 nowMs()
    {
        return QDateTime::currentMSecsSinceEpoch();
    }
}

ClientConnection::ClientConnection(qintptr descriptor, ChatServer* server)
    : QObject(server)
    , m_transport(std::make_unique<WebSocketConnection>(
          descriptor, server->config().maxFrameBytes, this))
    , m_server(server)
    , m_connectedMs(nowMs())
    , m_lastHeardMs(m_connectedMs)
    , m_requestTokens(server->config().requestBurst)
    , m_tokensRefilledMs(m_connectedMs)
{
}

ClientConnection::~ClientConnection()
{
    m_server->connectionGone(this);
}

qint64 ClientConnection::queuedBytes() const
{
    return m_transport->bytesToWrite();
}

// Lifecycle and limits -----------------------------------------------------------------------

void ClientConnection::disconnected()
{
    if (m_disconnected) {
        return;
    }
    m_disconnected = true;
    qCInfo(lcServer) << "Connection closed"
                     << (m_userName.isEmpty() ? QStringLiteral("(anonymous)") : m_userName)
                     << "device" << m_deviceId << "code" << m_transport->closeCode();
    m_state = State::Closed;
    if (m_live) {
        m_server->connectionStoppedLive(this);
        m_live = false;
    }
    deleteLater();
}

void ClientConnection::closeWith(int closeCode, const QString& reason)
{
    if (m_state == State::Closed) {
        return;
    }
    qCInfo(lcServer) << "Closing the connection of" << m_userName << "with" << closeCode << reason;
    m_state = State::Closed;
    if (m_live) {
        m_server->connectionStoppedLive(this);
        m_live = false;
    }
    m_server->metrics().countClose(closeCode);
    m_transport->close(closeCode, reason.toUtf8());
    // A peer that does not read will never answer the close frame; its buffers are freed
    // after a short grace instead of whenever TCP gives up. So is a connection still in its
    // WebSocket handshake, which cannot be sent a close frame.
    QTimer::singleShot(CloseGrace, this, &ClientConnection::dropTransport);
}

void ClientConnection::dropTransport()
{
    m_transport->abort();
    disconnected();
}

void ClientConnection::checkDeadlines(qint64 now)
{
    const ServerConfig& config = m_server->config();
    if (m_state == State::Closed) {
        return;
    }
    if (m_state != State::Authenticated) {
        if (now - m_connectedMs > config.unauthenticatedTimeout.count()) {
            closeWith(CloseCode::AuthenticationTimeout, QStringLiteral("authentication timeout"));
        }
        return;
    }
    const qint64 quiet = now - m_lastHeardMs;
    if (quiet > config.heartbeatTimeout.count()) {
        // A link this quiet is most likely half-open: no close frame would arrive anyway.
        closeWith(CloseCode::HeartbeatTimeout, QStringLiteral("heartbeat timeout"));
        dropTransport();
    } else if (quiet > config.heartbeatInterval.count() && !m_pingOutstanding) {
        m_pingOutstanding = true;
        m_transport->ping();
    }
}

bool ClientConnection::takeRequestToken(const v1::Envelope& envelope)
{
    // Sync requests are paced by the server's own batches and are not counted.
    if (envelope.has_sync()) {
        return true;
    }
    const ServerConfig& config = m_server->config();
    const qint64 now = nowMs();
    m_requestTokens = std::min(config.requestBurst,
        m_requestTokens
            + static_cast<double>(now - m_tokensRefilledMs) * config.requestRate / 1000.0);
    m_tokensRefilledMs = now;
    if (now >= m_holdOffUntilMs && m_requestTokens >= 1.0) {
        m_requestTokens -= 1.0;
        return true;
    }
    // Once one request is refused, every request is refused until the hold-off ends, even if a
    // token comes free meanwhile. The requests a client had in flight behind the refused one
    // are thereby refused too, and its resend starts from the refused one: a sender's messages
    // keep their order (as long as the round trip is shorter than the hold-off).
    if (now >= m_holdOffUntilMs) {
        const double refill = std::ceil((1.0 - m_requestTokens) / config.requestRate * 1000.0);
        m_holdOffUntilMs = now + std::max(static_cast<qint64>(refill), MinHoldOffMs);
    }
    const auto retryAfter = static_cast<quint32>(m_holdOffUntilMs - now);
    const QByteArray messageId
        = envelope.has_send() ? toBytes(envelope.send().message_id()) : QByteArray();
    sendError(envelope.request_id(), v1::RATE_LIMITED,
        QStringLiteral("too many requests; slow down"), messageId, retryAfter);
    return false;
}

void ClientConnection::textMessageReceived()
{
    closeWithError(v1::MALFORMED_FRAME, QStringLiteral("text frames are not part of the protocol"),
        CloseCode::UnsupportedData);
}

void ClientConnection::pongReceived()
{
    m_lastHeardMs = nowMs();
    m_pingOutstanding = false;
}

void ClientConnection::framingFailed(int closeCode, const char* reason)
{
    closeWith(closeCode, QString::fromLatin1(reason));
}

void ClientConnection::binaryMessageReceived(QByteArrayView message)
{
    // The bytes lie in the transport's read buffer and are decoded from there, without a copy.
    const QByteArray frame = QByteArray::fromRawData(message.data(), message.size());
    if (m_state == State::Closed) {
        return;
    }
    m_lastHeardMs = nowMs();
    m_pingOutstanding = false;
    ++m_server->metrics().framesIn;
    m_server->metrics().bytesIn += static_cast<quint64>(frame.size());

    v1::Envelope envelope;
    if (!decodeFrame(frame, &envelope)) {
        closeWithError(v1::MALFORMED_FRAME, QStringLiteral("the frame is not a ferry.v1 Envelope"),
            CloseCode::ProtocolError);
        return;
    }
    qCDebug(lcServer) << "Frame" << envelope.payload_case() << "request" << envelope.request_id()
                      << "from" << m_userName << frame.size() << "bytes";
    if (takeRequestToken(envelope)) {
        dispatch(envelope);
    }
}

void ClientConnection::dispatch(const v1::Envelope& envelope)
{
    const quint64 requestId = envelope.request_id();
    switch (m_state) {
    case State::AwaitingHello:
        if (envelope.has_hello()) {
            handleHello(envelope);
        } else {
            closeWithError(v1::BAD_REQUEST, QStringLiteral("the first frame must be Hello"),
                CloseCode::ProtocolError);
        }
        return;
    case State::AwaitingAuth:
        switch (envelope.payload_case()) {
        case v1::Envelope::kRegister:
            return handleRegister(envelope);
        case v1::Envelope::kLogin:
            return handleLogin(envelope);
        case v1::Envelope::kResume:
            return handleResume(envelope);
        case v1::Envelope::kAuthenticate:
            return handleAuthenticate(envelope);
        default:
            return sendError(requestId, v1::NOT_AUTHENTICATED,
                QStringLiteral("register, log in or resume a device first"));
        }
    case State::Authenticating:
        return sendError(requestId, v1::BAD_REQUEST,
            QStringLiteral("wait for the answer to the authentication request"));
    case State::Authenticated:
        // A request after this connection's messages sees them stored: a device that sends
        // and then leaves the group, or syncs, finds its messages ahead of that.
        if (m_sendsInCommit > 0 && !envelope.has_send()) {
            m_server->commitPendingSends();
        }
        switch (envelope.payload_case()) {
        case v1::Envelope::kSend:
            return handleSend(envelope);
        case v1::Envelope::kSync:
            return handleSync(envelope);
        case v1::Envelope::kRefreshSession:
            return handleRefreshSession(envelope);
        case v1::Envelope::kListDevices:
            return handleListDevices(envelope);
        case v1::Envelope::kRenameDevice:
            return handleRenameDevice(envelope);
        case v1::Envelope::kRemoveDevice:
            return handleRemoveDevice(envelope);
        case v1::Envelope::kCreateGroup:
            return handleCreateGroup(envelope);
        case v1::Envelope::kAddMembers:
            return handleAddMembers(envelope);
        case v1::Envelope::kRemoveMember:
            return handleRemoveMember(envelope);
        case v1::Envelope::kLeaveConversation:
            return handleLeave(envelope);
        case v1::Envelope::kReceipt:
            return handleReceipt(envelope);
        case v1::Envelope::kHistory:
            return handleHistory(envelope);
        case v1::Envelope::kTyping:
            return handleTyping(envelope);
        default:
            return sendError(requestId, v1::BAD_REQUEST,
                QStringLiteral("this request is not valid on an authenticated connection"));
        }
    case State::Closed:
        return;
    }
}

// Authentication -----------------------------------------------------------------------------

void ClientConnection::handleHello(const v1::Envelope& envelope)
{
    const v1::Hello& hello = envelope.hello();
    if (hello.protocol_version() != ProtocolVersion) {
        v1::Envelope reply;
        reply.set_request_id(envelope.request_id());
        v1::Error* error = reply.mutable_error();
        error->set_code(v1::UNSUPPORTED_VERSION);
        error->set_message("this server speaks protocol version 1 only");
        error->add_supported_versions(ProtocolVersion);
        sendEnvelope(reply);
        m_server->metrics().countError(QStringLiteral("UNSUPPORTED_VERSION"));
        closeWith(CloseCode::PolicyViolation,
            QStringLiteral("unsupported protocol version"));
        return;
    }
    qCDebug(lcServer) << "Hello from" << toQString(hello.client_name()).left(64);
    m_state = State::AwaitingAuth;

    v1::Envelope reply;
    reply.set_request_id(envelope.request_id());
    reply.mutable_welcome()->set_protocol_version(ProtocolVersion);
    reply.mutable_welcome()->set_server_name("ferry-server/" FERRY_VERSION);
    sendEnvelope(reply);
}

void ClientConnection::handleRegister(const v1::Envelope& envelope)
{
    const quint64 requestId = envelope.request_id();
    const v1::Register& request = envelope.register_();
    const QString userName = toQString(request.user_name());
    const QByteArray password = toBytes(request.password());
    const QString deviceName = toQString(request.device_name()).left(MaxDeviceNameChars);

    if (!isValidUserName(userName)) {
        sendError(requestId, v1::BAD_REQUEST,
            QStringLiteral("a user name is 1 to 32 characters from a-z, 0-9, '.', '_' and '-'"));
        return;
    }
    if (password.size() < MinPasswordBytes || password.size() > MaxPasswordBytes) {
        sendError(requestId, v1::BAD_REQUEST, QStringLiteral("a password is 8 to 1024 bytes long"));
        return;
    }
    if (m_server->store().findUser(userName)) {
        sendError(requestId, v1::NAME_TAKEN, u"the name " + userName + u" is taken");
        return;
    }

    // Hashing takes tens of milliseconds by design; it must not stall everyone else's frames.
    // The continuation runs on this object's thread, and not at all if the connection is gone.
    m_state = State::Authenticating;
    QtConcurrent::run(Credentials::hashPassword, password)
        .then(this, [this, requestId, userName, deviceName](const QByteArray& hash) {
            if (m_state != State::Authenticating) {
                return;
            }
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

void ClientConnection::handleLogin(const v1::Envelope& envelope)
{
    const quint64 requestId = envelope.request_id();
    const v1::Login& request = envelope.login();
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
            if (m_state != State::Authenticating) {
                return;
            }
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
    becomeAuthenticated(requestId, userId, userName, device->id, token, true, 0);
}

void ClientConnection::handleResume(const v1::Envelope& envelope)
{
    const v1::Resume& request = envelope.resume();
    const std::optional<DeviceRecord> device = m_server->store().findDevice(request.device_id());
    if (device && device->removed) {
        sendError(envelope.request_id(), v1::DEVICE_REMOVED,
            QStringLiteral("this device was removed from its account; sign in again"));
        return;
    }
    const QByteArray presented = Credentials::tokenHash(toBytes(request.device_token()));
    if (!device || !Credentials::tokenHashesEqual(presented, device->tokenHash)) {
        qCInfo(lcServerAuth) << "Refused a device resume for device" << request.device_id();
        sendError(envelope.request_id(), v1::INVALID_TOKEN,
            QStringLiteral("unknown device or wrong token"));
        return;
    }
    becomeAuthenticated(envelope.request_id(), device->userId, device->userName, device->id, {},
        true, 0);
}

void ClientConnection::handleAuthenticate(const v1::Envelope& envelope)
{
    // The signature and the expiry are checked against the server's key alone: no database
    // read, so any number of servers sharing the key can check a session.
    const std::optional<SessionClaims> claims
        = m_server->tokens().verify(toBytes(envelope.authenticate().session_token()));
    if (!claims) {
        qCInfo(lcServerAuth) << "Refused a forged or malformed session token";
        sendError(envelope.request_id(), v1::INVALID_TOKEN,
            QStringLiteral("the session token is not valid"));
        return;
    }
    if (m_server->isDeviceRemoved(claims->deviceId)) {
        sendError(envelope.request_id(), v1::DEVICE_REMOVED,
            QStringLiteral("this device was removed from its account; sign in again"));
        return;
    }
    if (claims->expiresMs <= nowMs()) {
        sendError(envelope.request_id(), v1::SESSION_EXPIRED,
            QStringLiteral("the session token has expired; resume with the device token"));
        return;
    }
    becomeAuthenticated(envelope.request_id(), claims->userId, claims->userName,
        claims->deviceId, {}, false, claims->expiresMs);
}

void ClientConnection::handleRefreshSession(const v1::Envelope& envelope)
{
    SessionClaims claims;
    claims.userId = m_userId;
    claims.userName = m_userName;
    claims.deviceId = m_deviceId;
    claims.issuedMs = nowMs();
    claims.expiresMs = claims.issuedMs
        + std::chrono::duration_cast<std::chrono::milliseconds>(
            m_server->config().sessionLifetime)
              .count();

    v1::Envelope reply;
    reply.set_request_id(envelope.request_id());
    reply.mutable_session_token()->set_session_token(toStd(m_server->tokens().issue(claims)));
    reply.mutable_session_token()->set_expires_ms(claims.expiresMs);
    sendEnvelope(reply);
}

void ClientConnection::becomeAuthenticated(quint64 requestId, qint64 userId,
    const QString& userName, quint64 deviceId, const QByteArray& newDeviceToken,
    bool issueSession, qint64 sessionExpiresMs)
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
    authenticated->set_device_token(toStd(newDeviceToken));
    if (Result<quint64> offset = m_server->store().lastOffset(userId)) {
        authenticated->set_last_offset(offset.value());
    }
    if (issueSession) {
        SessionClaims claims;
        claims.userId = userId;
        claims.userName = userName;
        claims.deviceId = deviceId;
        claims.issuedMs = nowMs();
        claims.expiresMs = claims.issuedMs
            + std::chrono::duration_cast<std::chrono::milliseconds>(
                m_server->config().sessionLifetime)
                  .count();
        authenticated->set_session_token(toStd(m_server->tokens().issue(claims)));
        sessionExpiresMs = claims.expiresMs;
    }
    authenticated->set_session_expires_ms(sessionExpiresMs);
    sendEnvelope(reply);

    m_server->connectionAuthenticated(this);
    m_server->sendPresenceSnapshot(this);
}

// Sending ------------------------------------------------------------------------------------

void ClientConnection::sendEnvelope(const v1::Envelope& envelope)
{
    // A closing connection still tells the client why, in an error.
    if (m_state == State::Closed && !envelope.has_error()) {
        return;
    }
    writeFrame(encodeFrame(envelope));
}

void ClientConnection::sendFrame(const QByteArray& frame)
{
    if (m_state == State::Closed) {
        return;
    }
    writeFrame(frame);
}

void ClientConnection::writeFrame(const QByteArray& frame)
{
    // What the peer has not taken of the earlier frames. The frame written now does not count:
    // a sync batch may be larger than the bound (up to 1 MiB against a bound of 64 KiB at the
    // least), and counting it would close every client that catches up, however fast it reads.
    // The transport may hold frames of this pass of the event loop until the next, so a frame
    // written just before (a batch, then the answer to a receipt) may still count as unsent
    // here; a backlog over the bound is handed to the kernel first, and only what it would not
    // take counts against the client.
    qint64 backlog = m_transport->bytesToWrite();
    if (backlog > m_server->config().maxQueuedBytes) {
        m_transport->flush();
        backlog = m_transport->bytesToWrite();
    }
    m_transport->sendBinaryMessage(frame);
    ++m_server->metrics().framesOut;
    m_server->metrics().bytesOut += static_cast<quint64>(frame.size());

    // A client that does not read would make the server buffer for it without end. Past the
    // bound it is disconnected; it catches up from its stored offset when it comes back. Its
    // buffer therefore never holds more than the bound and one frame.
    if (m_state != State::Closed && backlog > m_server->config().maxQueuedBytes) {
        qCInfo(lcServer) << "Disconnecting a slow consumer:" << m_userName << "device"
                         << m_deviceId << "with" << backlog << "bytes queued";
        closeWith(CloseCode::SlowConsumer, QStringLiteral("too slow; reconnect and catch up"));
    }
}

void ClientConnection::sendOk(quint64 requestId)
{
    v1::Envelope reply;
    reply.set_request_id(requestId);
    reply.mutable_ok();
    sendEnvelope(reply);
}

void ClientConnection::sendError(quint64 requestId, int code, const QString& message,
    const QByteArray& messageId, quint32 retryAfterMs)
{
    const auto errorCode = static_cast<v1::ErrorCode>(code);
    m_server->metrics().countError(QString::fromStdString(v1::ErrorCode_Name(errorCode)));

    v1::Envelope reply;
    reply.set_request_id(requestId);
    v1::Error* error = reply.mutable_error();
    error->set_code(errorCode);
    error->set_message(toStd(message));
    if (!messageId.isEmpty()) {
        error->set_message_id(toStd(messageId));
    }
    error->set_retry_after_ms(retryAfterMs);
    sendEnvelope(reply);
}

void ClientConnection::sendStoreError(quint64 requestId, const QString& kind,
    const QString& message, const QByteArray& messageId)
{
    int code = v1::INTERNAL;
    if (kind == StoreError::UnknownRecipient) {
        code = v1::UNKNOWN_RECIPIENT;
    } else if (kind == StoreError::NotAMember) {
        code = v1::NOT_A_MEMBER;
    } else if (kind == StoreError::IdConflict) {
        code = v1::DUPLICATE_ID_CONFLICT;
    } else if (kind == StoreError::NotFound) {
        code = v1::NOT_FOUND;
    } else if (kind == StoreError::BadRequest) {
        code = v1::BAD_REQUEST;
    } else {
        qCWarning(lcServer) << "Storage failed:" << message;
    }
    // Internal details stay in the log; the client learns only that it may retry.
    sendError(requestId, code,
        code == v1::INTERNAL ? QStringLiteral("the server could not complete the request")
                             : message,
        messageId);
}

void ClientConnection::closeWithError(int code, const QString& message, int closeCode)
{
    qCInfo(lcServer) << "Refusing a connection:" << message;
    sendError(0, code, message);
    closeWith(closeCode, message);
}

} // namespace ferry::server
