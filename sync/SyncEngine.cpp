#include "sync/SyncEngine.h"

#include "core/CloseCodes.h"
#include "core/FrameCodec.h"
#include "core/Logging.h"
#include "core/MessageId.h"
#include "core/ProtocolText.h"
#include "ferry.pb.h"
#include "sync/WireConversions.h"

#include <QNetworkInformation>
#include <QWebSocket>

#include <sodium.h>

#include <utility>

namespace ferry {

namespace {




    QString describe(const QByteArray& messageId)
    {
        const auto id = MessageId::fromBytes(messageId);
        return id ? id->toString() : QStringLiteral("(malformed id)");
    }

    /// Refusals that no resend can change: the message is marked failed and the rest go on.
    bool isPermanentRefusal(int code)
    {
        switch (code) {
        case v1::UNKNOWN_RECIPIENT:
        case v1::NOT_A_MEMBER:
        case v1::BODY_TOO_LARGE:
        case v1::DUPLICATE_ID_CONFLICT:
        case v1::BAD_REQUEST:
            return true;
        default:
            return false;
        }
    }

    QString errorKind(int code)
    {
        switch (code) {
        case v1::BAD_CREDENTIALS:
            return QStringLiteral("bad-credentials");
        case v1::NAME_TAKEN:
            return QStringLiteral("name-taken");
        case v1::INVALID_TOKEN:
            return QStringLiteral("invalid-token");
        case v1::UNSUPPORTED_VERSION:
            return QStringLiteral("unsupported-version");
        case v1::DEVICE_REMOVED:
            return QStringLiteral("device-removed");
        default:
            return QStringLiteral("refused");
        }
    }
}

SyncEngine::SyncEngine(ClientStore* store, QObject* parent)
    : SyncEngine(store, Settings {}, parent)
{
}

SyncEngine::SyncEngine(ClientStore* store, Settings settings, QObject* parent)
    : QObject(parent)
    , m_store(store)
    , m_settings(settings)
    , m_policy(settings.backoff)
{
    m_retryTimer.setSingleShot(true);
    connect(&m_retryTimer, &QTimer::timeout, this, &SyncEngine::openSocket);

    m_heartbeatTimer.setInterval(m_settings.heartbeatInterval);
    connect(&m_heartbeatTimer, &QTimer::timeout, this, &SyncEngine::handleHeartbeatTick);

    m_deadlineTimer.setSingleShot(true);
    connect(&m_deadlineTimer, &QTimer::timeout, this, &SyncEngine::handleDeadlineExpired);

    m_sendHoldOff.setSingleShot(true);
    connect(&m_sendHoldOff, &QTimer::timeout, this, &SyncEngine::sendPendingMessages);

    m_healthyTimer.setSingleShot(true);
    m_healthyTimer.setInterval(m_settings.healthyAfter);
    connect(&m_healthyTimer, &QTimer::timeout, this, [this] { m_policy.reset(); });

    if (m_settings.watchNetwork) {
        watchNetworkReachability();
    }
}

void SyncEngine::watchNetworkReachability()
{
    // Where the platform can tell (NetworkManager on Linux desktops, the mobile OSes), a network
    // that comes back is a reason to try at once rather than sit out the backoff.
    if (!QNetworkInformation::instance()
        && !QNetworkInformation::loadBackendByFeatures(
            QNetworkInformation::Feature::Reachability)) {
        qCDebug(lcSync) << "No network reachability information on this system";
        return;
    }
    connect(QNetworkInformation::instance(), &QNetworkInformation::reachabilityChanged, this,
        [this](QNetworkInformation::Reachability reachability) {
            if (reachability == QNetworkInformation::Reachability::Online) {
                qCInfo(lcSync) << "The network is back; trying now";
                retryNow();
            }
        });
}

void SyncEngine::setServerUrls(const QList<QUrl>& urls)
{
    m_serverUrls = urls;
    m_serverIndex = 0;
}

SyncEngine::~SyncEngine()
{
    if (m_passwordLogin) {
        sodium_memzero(m_passwordLogin->password.data(),
            static_cast<size_t>(m_passwordLogin->password.size()));
    }
}

QUrl SyncEngine::serverUrl() const
{
    if (!m_serverUrls.isEmpty()) {
        return m_serverUrls.at(m_serverIndex % m_serverUrls.size());
    }
    const std::optional<AccountInfo> account = m_store->account();
    return account ? QUrl(account->serverUrl) : QUrl();
}

void SyncEngine::start()
{
    if (!m_store->account()) {
        failPermanently(QStringLiteral("no-account"),
            QStringLiteral("this profile has no account yet; register or log in first"));
        return;
    }
    m_running = true;
    if (loadOutbox()) {
        openSocket();
    }
}

void SyncEngine::startWithPassword(const QString& userName, const QByteArray& password,
    const QString& deviceName, bool createAccount)
{
    m_passwordLogin = PasswordLogin { userName, password, deviceName, createAccount };
    m_running = true;
    openSocket();
}

void SyncEngine::stop()
{
    m_running = false;
    m_retryTimer.stop();
    if (m_socket) {
        m_socket->close();
    }
    setState(State::Offline);
}

void SyncEngine::retryNow()
{
    if (m_running && m_state == State::WaitingToRetry) {
        m_retryTimer.stop();
        openSocket();
    }
}

bool SyncEngine::isIdle() const
{
    return m_state == State::Live && m_pending.isEmpty() && m_receiptsInFlight.isEmpty()
        && m_gapRequests.isEmpty() && m_requests.isEmpty();
}

void SyncEngine::setState(State state)
{
    if (m_state == state) {
        return;
    }
    qCInfo(lcSync) << "State" << m_state << "->" << state;
    m_state = state;
    Q_EMIT stateChanged(state);
}

void SyncEngine::openSocket()
{
    if (m_socket) {
        m_socket->disconnect(this);
        m_socket->abort();
        m_socket->deleteLater();
    }
    const QUrl url = serverUrl();
    if (!url.isValid() || (url.scheme() != u"ws" && url.scheme() != u"wss")) {
        failPermanently(QStringLiteral("bad-url"),
            u"the server address '" + url.toString() + u"' is not a ws:// or wss:// URL");
        return;
    }

    m_socket = new QWebSocket(QString(), QWebSocketProtocol::VersionLatest, this);
    connect(m_socket, &QWebSocket::connected, this, &SyncEngine::handleConnected);
    connect(m_socket, &QWebSocket::stateChanged, this, &SyncEngine::handleSocketStateChanged);
    connect(m_socket, &QWebSocket::binaryMessageReceived, this,
        &SyncEngine::handleBinaryMessage);
    connect(m_socket, &QWebSocket::pong, this, [this] { m_deadlineTimer.stop(); });

    setState(State::Connecting);
    m_deadlineTimer.start(m_settings.heartbeatTimeout);
    qCInfo(lcSync) << "Connecting to" << url.toString();
    m_socket->open(url);
}

void SyncEngine::scheduleRetry(const QString& reason)
{
    m_deadlineTimer.stop();
    m_heartbeatTimer.stop();
    m_healthyTimer.stop();
    if (!m_running) {
        setState(State::Offline);
        return;
    }
    // With several servers the next try goes to the next one: a dead server costs one delay.
    if (m_serverUrls.size() > 1) {
        m_serverIndex = (m_serverIndex + 1) % m_serverUrls.size();
    }
    const std::chrono::milliseconds delay = m_policy.nextDelay();
    m_nextRetryAt = QDateTime::currentDateTimeUtc().addMSecs(delay.count());
    qCInfo(lcSync) << "Link down (" << reason << "); next try in" << delay.count() << "ms";
    m_retryTimer.start(delay);
    setState(State::WaitingToRetry);
}

void SyncEngine::failPermanently(const QString& kind, const QString& message)
{
    // Info, not warning: the owner hears about it through stoppedWithError and decides how
    // loudly to tell the user.
    qCInfo(lcSync) << "Stopped for good:" << message;
    m_running = false;
    m_retryTimer.stop();
    m_deadlineTimer.stop();
    m_heartbeatTimer.stop();
    if (m_socket) {
        m_socket->disconnect(this);
        m_socket->close();
    }
    setState(State::Offline);
    Q_EMIT stoppedWithError(kind, message);
}

void SyncEngine::handleConnected()
{
    setState(State::Authenticating);
    v1::Envelope envelope;
    envelope.mutable_hello()->set_protocol_version(ProtocolVersion);
    envelope.mutable_hello()->set_client_name("ferry/" FERRY_VERSION);
    sendEnvelope(envelope);
}

void SyncEngine::handleSocketStateChanged()
{
    if (sender() != m_socket || m_socket->state() != QAbstractSocket::UnconnectedState) {
        return;
    }
    handleDisconnected();
}

void SyncEngine::handleDisconnected()
{
    QString reason = std::exchange(m_abortReason, {});
    if (reason.isEmpty()) {
        reason = m_socket->closeReason();
    }
    if (reason.isEmpty()) {
        reason = m_socket->error() == QAbstractSocket::UnknownSocketError
            ? u"connection closed (code " + QString::number(m_socket->closeCode()) + u')'
            : m_socket->errorString();
    }
    // A link this engine closed itself (stop()) ended as asked: that is no error to report.
    m_lastLinkError = m_running ? reason : QString();
    m_inFlight.clear();
    m_syncRequestId = 0;
    m_authRequestId = 0;
    m_wasIdle = false;
    m_sendHoldOff.stop();
    m_receiptsInFlight.clear();
    m_gapRequests.clear();
    // Requests that went out unanswered go again on the next connection.
    for (OpenRequest& request : m_requests) {
        request.wireId = 0;
    }

    // Most close codes mean "come back later"; these two mean no retry can succeed.
    const int closeCode = m_socket->closeCode();
    if (closeCode == CloseCode::DeviceRemoved) {
        failPermanently(QStringLiteral("device-removed"),
            QStringLiteral("this device was removed from its account; sign in again"));
        return;
    }
    if (closeCode == QWebSocketProtocol::CloseCodePolicyViolated) {
        failPermanently(QStringLiteral("unsupported-version"),
            u"the server refused this client's protocol version: " + reason);
        return;
    }
    scheduleRetry(reason);
}

void SyncEngine::handleHeartbeatTick()
{
    if (m_socket && !m_deadlineTimer.isActive()) {
        m_socket->ping();
        m_deadlineTimer.start(m_settings.heartbeatTimeout);
    }
}

void SyncEngine::handleDeadlineExpired()
{
    if (!m_socket) {
        return;
    }
    qCInfo(lcSync) << "No answer from the server in" << m_settings.heartbeatTimeout.count()
                   << "ms; dropping the link";
    // abort() makes the socket unconnected at once; the state change schedules the retry.
    m_socket->abort();
}

void SyncEngine::handleBinaryMessage(const QByteArray& frame)
{
    v1::Envelope envelope;
    if (!decodeFrame(frame, &envelope)) {
        qCWarning(lcSync) << "Dropping the link: the server sent a frame that is not an Envelope";
        m_socket->abort();
        return;
    }
    qCDebug(lcSync) << "Frame" << envelope.payload_case() << "for request"
                    << envelope.request_id() << frame.size() << "bytes";

    if (handleReply(envelope)) {
        return;
    }
    switch (envelope.payload_case()) {
    case v1::Envelope::kWelcome:
        handleWelcome();
        break;
    case v1::Envelope::kAuthenticated:
        handleAuthenticated(envelope);
        break;
    case v1::Envelope::kEvents:
        handleEventBatch(envelope.request_id(), envelope.events());
        break;
    case v1::Envelope::kSendAck:
        handleSendAck(envelope);
        break;
    case v1::Envelope::kError:
        handleError(envelope);
        break;
    case v1::Envelope::kEphemeral:
        handleEphemeral(envelope);
        break;
    default:
        qCWarning(lcSync) << "Ignoring an unexpected frame" << envelope.payload_case();
        break;
    }
}

void SyncEngine::handleWelcome()
{
    v1::Envelope envelope;
    if (m_passwordLogin) {
        if (m_passwordLogin->createAccount) {
            v1::Register* request = envelope.mutable_register_();
            request->set_user_name(toStd(m_passwordLogin->userName));
            request->set_password(toStd(m_passwordLogin->password));
            request->set_device_name(toStd(m_passwordLogin->deviceName));
        } else {
            v1::Login* request = envelope.mutable_login();
            request->set_user_name(toStd(m_passwordLogin->userName));
            request->set_password(toStd(m_passwordLogin->password));
            request->set_device_name(toStd(m_passwordLogin->deviceName));
        }
    } else if (!m_sessionToken.isEmpty()
        && m_sessionExpiresMs > QDateTime::currentMSecsSinceEpoch() + 60'000) {
        envelope.mutable_authenticate()->set_session_token(toStd(m_sessionToken));
    } else {
        const std::optional<AccountInfo> account = m_store->account();
        if (!account) {
            failPermanently(QStringLiteral("no-account"), QStringLiteral("no account stored"));
            return;
        }
        const QByteArray& token
            = account->deviceToken.isEmpty() ? m_deviceToken : account->deviceToken;
        if (token.isEmpty()) {
            failPermanently(QStringLiteral("no-token"),
                QStringLiteral("this device's sign-in is not available; sign in again"));
            return;
        }
        envelope.mutable_resume()->set_device_id(account->deviceId);
        envelope.mutable_resume()->set_device_token(toStd(token));
    }
    m_authRequestId = sendEnvelope(envelope);
}

void SyncEngine::handleAuthenticated(const v1::Envelope& envelope)
{
    const v1::Authenticated& answer = envelope.authenticated();
    m_authRequestId = 0;
    m_deadlineTimer.stop();
    if (!answer.session_token().empty()) {
        m_sessionToken = toBytes(answer.session_token());
        m_sessionExpiresMs = answer.session_expires_ms();
    }

    if (m_passwordLogin) {
        AccountInfo account;
        account.serverUrl = serverUrl().toString();
        account.userName = toQString(answer.user_name());
        account.deviceId = answer.device_id();
        account.deviceToken = toBytes(answer.device_token());
        sodium_memzero(m_passwordLogin->password.data(),
            static_cast<size_t>(m_passwordLogin->password.size()));
        m_passwordLogin.reset();
        if (auto saved = m_store->saveAccount(account); !saved) {
            failPermanently(QStringLiteral("storage"),
                u"signed in, but could not save the device: " + saved.error().message);
            return;
        }
        qCInfo(lcSync) << "Signed in as" << account.userName << "device" << account.deviceId;
        Q_EMIT authenticated(account.userName, account.deviceId);
    }

    // Reloaded on every connection: the store, not memory, says what is still unacknowledged.
    Result<quint64> offset = m_store->eventOffset();
    if (!offset) {
        Q_EMIT storageFailed(offset.error().message);
        m_socket->abort();
        return;
    }
    m_offset = offset.value();
    if (!loadOutbox()) {
        m_socket->abort();
        return;
    }

    setState(State::CatchingUp);
    m_heartbeatTimer.start();
    requestEvents(m_offset);
    sendPendingMessages();
    sendQueuedRequests();
    sendOwedReceipts();
}

bool SyncEngine::loadOutbox()
{
    Result<QList<StoredMessage>> outbox = m_store->outbox();
    if (!outbox) {
        Q_EMIT storageFailed(outbox.error().message);
        return false;
    }
    m_pending = outbox.value();
    if (!m_pending.isEmpty()) {
        m_lastLoadedLocalId = std::max(m_lastLoadedLocalId, m_pending.last().localId);
    }
    return true;
}

void SyncEngine::requestEvents(quint64 afterOffset)
{
    v1::Envelope envelope;
    envelope.mutable_sync()->set_after_offset(afterOffset);
    envelope.mutable_sync()->set_max_events(m_settings.syncBatch);
    m_syncRequestId = sendEnvelope(envelope);
}

void SyncEngine::handleEventBatch(quint64 requestId, const v1::EventBatch& batch)
{
    if (requestId != 0 && requestId != m_syncRequestId) {
        return; // the answer to a sync request that a newer one replaced
    }
    if (requestId == 0 && m_syncRequestId != 0) {
        return; // a push that raced a restarted catch-up; the catch-up covers it
    }
    if (requestId == 0 && batch.events_size() > 0 && batch.events(0).offset() > m_offset + 1) {
        qCWarning(lcSync) << "Gap in pushed events after offset" << m_offset << "; catching up";
        requestEvents(m_offset);
        return;
    }

    // The next page is asked for before this one is committed, so that the server reads and
    // sends it while this device writes. The stored offset still moves only with a commit: a
    // commit that fails closes the link, and the next connection starts again from the store.
    const bool moreToFetch = requestId != 0 && !batch.caught_up();
    if (moreToFetch) {
        requestEvents(std::max(m_offset, static_cast<quint64>(batch.last_offset())));
    }

    const IncomingEvents incoming = incomingEvents(batch);
    Result<AppliedEvents> applied = m_store->applyEvents(
        incoming.entries, batch.last_offset(), incoming.receipts);
    if (!applied) {
        qCWarning(lcSync) << "Could not store received events:" << applied.error().message;
        Q_EMIT storageFailed(applied.error().message);
        m_socket->abort();
        return;
    }
    m_offset = std::max(m_offset, static_cast<quint64>(batch.last_offset()));

    for (const StoredMessage& confirmed : std::as_const(applied->confirmed)) {
        m_inFlight.remove(confirmed.messageId);
        m_pending.removeIf(
            [&](const StoredMessage& m) { return m.messageId == confirmed.messageId; });
        Q_EMIT messageSent(confirmed.messageId);
    }
    if (!applied->added.isEmpty()) {
        Q_EMIT messagesAdded(applied->added);
        acknowledgeDelivery(applied->added);
    }
    if (!applied->touchedConversations.isEmpty()) {
        Q_EMIT conversationsChanged(applied->touchedConversations);
    }
    if (!applied->gapSuspected.isEmpty()) {
        fillGaps(applied->gapSuspected);
    }

    if (requestId != 0 && !moreToFetch) {
        m_syncRequestId = 0;
        setState(State::Live);
        m_healthyTimer.start();
        sendOwedReceipts();
        Q_EMIT caughtUp();
    }
    sendPendingMessages();
    checkIdle();
}

void SyncEngine::flushOutbox()
{
    Result<QList<StoredMessage>> fresh = m_store->outbox();
    if (!fresh) {
        Q_EMIT storageFailed(fresh.error().message);
        return;
    }
    for (const StoredMessage& message : std::as_const(fresh.value())) {
        if (message.localId > m_lastLoadedLocalId) {
            m_pending.append(message);
            m_lastLoadedLocalId = message.localId;
        }
    }
    if (m_state == State::CatchingUp || m_state == State::Live) {
        sendPendingMessages();
        sendOwedReceipts();
    }
    checkIdle();
}

void SyncEngine::sendPendingMessages()
{
    if ((m_state != State::CatchingUp && m_state != State::Live) || m_sendHoldOff.isActive()) {
        return;
    }
    // Messages go out in the order written; the window only bounds how many are unanswered.
    for (const StoredMessage& message : std::as_const(m_pending)) {
        if (m_inFlight.size() >= m_settings.sendWindow) {
            break;
        }
        if (m_inFlight.contains(message.messageId)) {
            continue;
        }
        v1::Envelope envelope;
        v1::SendMessage* send = envelope.mutable_send();
        send->set_message_id(toStd(message.messageId));
        send->set_conversation_id(toStd(message.conversationId));
        send->set_body(toStd(message.body));
        m_inFlight.insert(message.messageId, sendEnvelope(envelope));
    }
}

void SyncEngine::handleSendAck(const v1::Envelope& envelope)
{
    const v1::SendAck& ack = envelope.send_ack();
    const QByteArray messageId = toBytes(ack.message_id());
    if (auto marked = m_store->markSent(messageId, ack.seq(), ack.server_time_ms()); !marked) {
        Q_EMIT storageFailed(marked.error().message);
        m_socket->abort();
        return;
    }
    qCDebug(lcSync) << "Acknowledged" << describe(messageId) << "seq" << ack.seq();
    m_inFlight.remove(messageId);
    const bool wasPending = m_pending.removeIf(
                                [&](const StoredMessage& m) { return m.messageId == messageId; })
        > 0;
    if (wasPending) {
        Q_EMIT messageSent(messageId);
    }
    sendPendingMessages();
    checkIdle();
}

void SyncEngine::handleError(const v1::Envelope& envelope)
{
    const v1::Error& error = envelope.error();
    const QString message = toQString(error.message());
    const QByteArray messageId = toBytes(error.message_id());

    if (error.code() == v1::RATE_LIMITED) {
        // The server refuses everything until the hold-off ends, so whatever was in flight
        // behind the refused request was refused too (or acknowledged: a resend of it is
        // answered with its first ack). Pause, then send again from the oldest unacknowledged
        // message, in the order written.
        qCInfo(lcSync) << "Rate limited; sending again in" << error.retry_after_ms() << "ms";
        m_inFlight.clear();
        m_sendHoldOff.start(std::chrono::milliseconds(error.retry_after_ms() + 50));
        return;
    }

    if (!messageId.isEmpty() && m_inFlight.contains(messageId)) {
        m_inFlight.remove(messageId);
        if (isPermanentRefusal(error.code())) {
            qCWarning(lcSync) << "The server refused" << describe(messageId) << ":" << message;
            if (auto marked = m_store->markFailed(messageId, message); !marked) {
                Q_EMIT storageFailed(marked.error().message);
            }
            m_pending.removeIf([&](const StoredMessage& m) { return m.messageId == messageId; });
            Q_EMIT messageFailed(messageId, message);
            sendPendingMessages();
            checkIdle();
        } else {
            // A refusal that may pass later (the server could not write): the message stays
            // queued and goes again on the next connection, after a backoff delay.
            qCInfo(lcSync) << "The server could not take" << describe(messageId) << "now:"
                           << message;
            m_abortReason = u"the server could not take a message now: " + message;
            m_socket->abort();
        }
        return;
    }

    const bool aboutAuthentication = envelope.request_id() != 0
        && envelope.request_id() == m_authRequestId;
    if (aboutAuthentication
        && (error.code() == v1::SESSION_EXPIRED || error.code() == v1::INVALID_TOKEN)
        && !m_sessionToken.isEmpty()) {
        // The session ran out (or the server's key changed): fall back to the device token.
        m_sessionToken.clear();
        handleWelcome();
        return;
    }
    if (aboutAuthentication || error.code() == v1::UNSUPPORTED_VERSION) {
        failPermanently(errorKind(error.code()), message);
        return;
    }
    qCWarning(lcSync) << "The server reported an error:" << error.code() << message;
    m_abortReason = u"the server reported an error: " + message;
    m_socket->abort();
}

void SyncEngine::checkIdle()
{
    const bool nowIdle = isIdle();
    if (nowIdle && !m_wasIdle) {
        Q_EMIT idle();
    }
    m_wasIdle = nowIdle;
}

quint64 SyncEngine::sendEnvelope(v1::Envelope& envelope)
{
    const quint64 requestId = m_nextRequestId++;
    envelope.set_request_id(requestId);
    m_socket->sendBinaryMessage(encodeFrame(envelope));
    return requestId;
}

} // namespace ferry
