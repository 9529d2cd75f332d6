#include "ui/ChatSession.h"

#include "core/ConversationId.h"
#include "core/Logging.h"
#include "core/MessageId.h"
#include "ui/Notifier.h"

#include <QLocale>
#include <QMetaEnum>
#include <QRegularExpression>
#include <QSysInfo>

namespace ferry::ui {

ChatSession::ChatSession(const QString& profileDir, const QUrl& serverOverride, QObject* parent)
    : QObject(parent)
    , m_worker(std::make_unique<StoreWorker>(profileDir, serverOverride))
    , m_conversations(new ConversationListModel(this))
    , m_messages(new MessageListModel(this))
    , m_devices(new DeviceListModel(this))
    , m_serverUrl(serverOverride.isValid() ? serverOverride.toString()
                                           : QString::fromLatin1(DefaultServer))
{
    qRegisterMetaType<ProfileInfo>();
    qRegisterMetaType<EngineSnapshot>();
    qRegisterMetaType<QList<StoredMessage>>();
    qRegisterMetaType<QList<ConversationSummary>>();
    qRegisterMetaType<QList<DeviceInfo>>();
    qRegisterMetaType<QList<QByteArray>>();

    m_thread.setObjectName(QStringLiteral("ferry-store"));
    m_worker->moveToThread(&m_thread);

    StoreWorker* worker = m_worker.get();
    connect(worker, &StoreWorker::opened, this, &ChatSession::handleOpened);
    connect(worker, &StoreWorker::openFailed, this, [this](const QString& message) {
        m_signInError = tr("Could not open this device's data: %1").arg(message);
        Q_EMIT signInErrorChanged();
        setPhase(Phase::Broken);
    });
    connect(worker, &StoreWorker::signedIn, this, [this](const QString& userName) {
        m_userName = userName;
        m_conversations->setSelfName(userName);
        setPhase(Phase::SignedIn);
    });
    connect(worker, &StoreWorker::stopped, this, &ChatSession::handleStopped);
    connect(worker, &StoreWorker::engineChanged, this, &ChatSession::handleEngineChanged);
    connect(worker, &StoreWorker::conversationsLoaded, this,
        &ChatSession::handleConversationsUpdated);
    connect(worker, &StoreWorker::conversationsUpdated, this,
        &ChatSession::handleConversationsUpdated);
    connect(worker, &StoreWorker::historyLoaded, m_messages, &MessageListModel::appendPage);
    connect(worker, &StoreWorker::messagesStored, this, &ChatSession::handleMessagesStored);
    connect(worker, &StoreWorker::messagesUpdated, m_messages, &MessageListModel::updateEntries);
    connect(worker, &StoreWorker::messagesRemoved, m_messages, &MessageListModel::removeEntries);
    connect(worker, &StoreWorker::devicesListed, m_devices, &DeviceListModel::setDevices);
    connect(worker, &StoreWorker::groupCreated, this, &ChatSession::openConversation);
    connect(worker, &StoreWorker::actionFailed, this, &ChatSession::setNotice);
    connect(worker, &StoreWorker::credentialsStored, this, [this](bool inKeychain) {
        m_tokenInKeychain = inKeychain;
        Q_EMIT credentialsChanged();
    });
    connect(worker, &StoreWorker::typingChanged, this, &ChatSession::handleTyping);
    connect(worker, &StoreWorker::presenceChanged, this,
        [this](const QString& userName, bool online, const QDateTime& lastSeen) {
            m_presence.insert(userName, { online, lastSeen });
            Q_EMIT currentConversationChanged();
        });

    connect(m_messages, &MessageListModel::pageRequested, this,
        [this](quint64 token, const QString& conversationId, quint64 beforeSeq, int limit) {
            toWorker([=](StoreWorker* w) {
                w->loadHistory(token, conversationId, beforeSeq, limit);
            });
        });

    m_typingIdle.setInterval(TypingIdleMs);
    m_typingIdle.setSingleShot(true);
    connect(&m_typingIdle, &QTimer::timeout, this, &ChatSession::stopTyping);

    m_countdown.setInterval(1000);
    connect(&m_countdown, &QTimer::timeout, this, &ChatSession::connectionChanged);

    m_thread.start();
    toWorker([](StoreWorker* w) { w->open(); });
}

ChatSession::~ChatSession()
{
    // The engine and the store were created on the worker thread and are closed there; only
    // then may the thread end.
    QMetaObject::invokeMethod(
        m_worker.get(), [w = m_worker.get()] { w->shutDown(); }, Qt::BlockingQueuedConnection);
    m_thread.quit();
    m_thread.wait();
}

template <typename Call> void ChatSession::toWorker(Call&& call)
{
    QMetaObject::invokeMethod(m_worker.get(),
        [w = m_worker.get(), call = std::forward<Call>(call)] { call(w); }, Qt::QueuedConnection);
}

QString ChatSession::deviceName() const
{
    const QString host = QSysInfo::machineHostName();
    return host.isEmpty() ? tr("This computer") : host;
}

void ChatSession::setPhase(Phase phase)
{
    if (m_phase == phase) {
        return;
    }
    qCInfo(lcUi) << "Session phase" << phase;
    m_phase = phase;
    Q_EMIT phaseChanged();
    Q_EMIT connectionChanged();
}

void ChatSession::setNotice(const QString& text)
{
    m_notice = text;
    Q_EMIT noticeChanged();
}

void ChatSession::dismissNotice()
{
    setNotice({});
}

void ChatSession::handleOpened(const ProfileInfo& info)
{
    if (!info.serverUrl.isEmpty()) {
        m_serverUrl = info.serverUrl;
    }
    m_userName = info.userName;
    m_conversations->setSelfName(info.userName);
    m_tokenInKeychain = info.tokenInKeychain;
    Q_EMIT credentialsChanged();
    setPhase(info.hasAccount ? Phase::SignedIn : Phase::SignedOut);
}

void ChatSession::signIn(const QString& serverUrl, const QString& userName,
    const QString& password, const QString& deviceName, bool createAccount)
{
    const QUrl url(serverUrl.trimmed());
    QString problem;
    if (!url.isValid() || (url.scheme() != u"ws" && url.scheme() != u"wss")) {
        problem = tr("The server address must start with ws:// or wss://.");
    } else if (!isValidUserName(userName.trimmed())) {
        problem = tr("A user name has 1 to 32 characters: a–z, 0–9, '.', '_' or '-'.");
    } else if (password.isEmpty()) {
        problem = tr("Enter your password.");
    }
    m_signInError = problem;
    Q_EMIT signInErrorChanged();
    if (!problem.isEmpty()) {
        return;
    }

    m_serverUrl = url.toString();
    setPhase(Phase::SigningIn);
    toWorker([=, user = userName.trimmed(), secret = password.toUtf8()](StoreWorker* w) {
        w->signIn(url.toString(), user, secret, deviceName.trimmed(), createAccount);
    });
}

void ChatSession::handleStopped(const QString& kind, const QString& message)
{
    qCInfo(lcUi) << "The sync engine stopped:" << kind;
    if (m_phase == Phase::SigningIn) {
        if (kind == u"bad-credentials") {
            m_signInError = tr("Wrong user name or password.");
        } else if (kind == u"name-taken") {
            m_signInError = tr("That user name is taken. Choose another one, or sign in.");
        } else if (kind == u"unreachable") {
            m_signInError = tr("Could not reach %1 (%2). Check the address and that the server "
                               "is running.")
                                .arg(m_serverUrl, message);
        } else {
            m_signInError = tr("The server refused: %1").arg(message);
        }
        Q_EMIT signInErrorChanged();
        setPhase(Phase::SignedOut);
        return;
    }
    m_stoppedMessage = kind == u"device-removed"
        ? tr("This device was signed out of its account.")
        : tr("Stopped syncing: %1").arg(message);
    Q_EMIT connectionChanged();
}

void ChatSession::handleEngineChanged(const EngineSnapshot& snapshot)
{
    m_engine = snapshot;
    m_stoppedMessage.clear();
    if (snapshot.state == SyncEngine::State::WaitingToRetry) {
        m_countdown.start();
    } else {
        m_countdown.stop();
    }
    Q_EMIT connectionChanged();
}

QString ChatSession::bannerTextFor(const EngineSnapshot& snapshot, const QDateTime& now)
{
    switch (snapshot.state) {
    case SyncEngine::State::Live:
        return {};
    case SyncEngine::State::Offline:
        return tr("Offline");
    case SyncEngine::State::Connecting:
    case SyncEngine::State::Authenticating:
        return tr("Connecting…");
    case SyncEngine::State::CatchingUp:
        return tr("Catching up…");
    case SyncEngine::State::WaitingToRetry: {
        const qint64 seconds = (now.msecsTo(snapshot.nextRetryAt) + 999) / 1000;
        if (seconds <= 0) {
            return tr("Offline, retrying…");
        }
        return tr("Offline, retrying in %1 s").arg(seconds);
    }
    }
    return {};
}

QString ChatSession::bannerText() const
{
    if (m_phase != Phase::SignedIn) {
        return {};
    }
    if (!m_stoppedMessage.isEmpty()) {
        return m_stoppedMessage;
    }
    return bannerTextFor(m_engine, QDateTime::currentDateTimeUtc());
}

bool ChatSession::bannerCanRetry() const
{
    return m_phase == Phase::SignedIn && m_stoppedMessage.isEmpty()
        && m_engine.state == SyncEngine::State::WaitingToRetry;
}

QString ChatSession::connectionState() const
{
    return QString::fromLatin1(
        QMetaEnum::fromType<SyncEngine::State>().valueToKey(static_cast<int>(m_engine.state)));
}

void ChatSession::retryNow()
{
    toWorker([](StoreWorker* w) { w->retryNow(); });
}

void ChatSession::handleConversationsUpdated(const QList<ConversationSummary>& summaries)
{
    m_conversations->upsert(summaries);
    for (const ConversationSummary& summary : summaries) {
        if (summary.id == m_currentId) {
            Q_EMIT currentConversationChanged();
        }
    }
}

void ChatSession::handleMessagesStored(const QList<StoredMessage>& entries)
{
    m_messages->addEntries(entries);

    bool readHere = false;
    for (const StoredMessage& entry : entries) {
        if (entry.conversationId == m_currentId && entry.kind == EntryKind::Message
            && entry.sender != m_userName) {
            readHere = true;
        }
        if (!shouldNotify(entry, m_userName, m_currentId, m_windowActive)) {
            continue;
        }
        const std::optional<ConversationSummary> summary
            = m_conversations->summary(entry.conversationId);
        const QString title = summary ? m_conversations->nameOf(*summary) : entry.sender;
        const QString text = tr("%1: %2").arg(entry.sender, describeEntry(entry));
        Q_EMIT notificationPosted(title, text);
        if (!m_desktopNotifications) {
            Q_EMIT toastRequested(tr("%1 — %2").arg(title, text));
        }
    }
    if (readHere) {
        toWorker([id = m_currentId](StoreWorker* w) { w->markRead(id); });
    }
}

QString ChatSession::credentialsNote() const
{
    // Where a system keychain took the device token, the profile keeps none (StoreWorker).
    return m_tokenInKeychain
        ? tr("Your sign-in is kept in the system keychain.")
        : tr("Your sign-in is kept in this profile's folder, readable only by you.");
}

void ChatSession::setWindowActive(bool active)
{
    if (m_windowActive == active) {
        return;
    }
    m_windowActive = active;
    Q_EMIT windowActiveChanged();
}

void ChatSession::handleTyping(const QString& conversationId, const QString& userName, bool active)
{
    QStringList& typing = m_typing[conversationId];
    typing.removeAll(userName);
    if (active) {
        typing.append(userName);
    }
    if (conversationId == m_currentId) {
        Q_EMIT typingChanged();
    }
}

QString ChatSession::typingText() const
{
    return typingTextFor(m_typing.value(m_currentId));
}

QString ChatSession::typingTextFor(const QStringList& userNames)
{
    switch (userNames.size()) {
    case 0:
        return {};
    case 1:
        return tr("%1 is typing…").arg(userNames.at(0));
    case 2:
        return tr("%1 and %2 are typing…").arg(userNames.at(0), userNames.at(1));
    default:
        return tr("%n people are typing…", nullptr, static_cast<int>(userNames.size()));
    }
}

QString ChatSession::presenceTextFor(bool online, const QDateTime& lastSeen, const QDateTime& now)
{
    if (online) {
        return tr("online");
    }
    if (!lastSeen.isValid()) {
        return {};
    }
    if (lastSeen.toLocalTime().date() == now.toLocalTime().date()) {
        return tr("last seen %1").arg(shortTime(lastSeen));
    }
    return tr("last seen %1 %2")
        .arg(QLocale().toString(lastSeen.toLocalTime().date(), QLocale::ShortFormat),
            shortTime(lastSeen));
}

void ChatSession::composerEdited(const QString& text)
{
    if (m_currentId.isEmpty()) {
        return;
    }
    if (text.trimmed().isEmpty()) {
        stopTyping();
        return;
    }
    if (m_typingIn != m_currentId) {
        stopTyping();
        m_typingIn = m_currentId;
        toWorker([id = m_currentId](StoreWorker* w) { w->sendTyping(id, true); });
    }
    m_typingIdle.start();
}

void ChatSession::stopTyping()
{
    m_typingIdle.stop();
    if (m_typingIn.isEmpty()) {
        return;
    }
    toWorker([id = m_typingIn](StoreWorker* w) { w->sendTyping(id, false); });
    m_typingIn.clear();
}

void ChatSession::openConversation(const QString& conversationId)
{
    if (conversationId.isEmpty()) {
        return;
    }
    stopTyping();
    const std::optional<ConversationSummary> summary = m_conversations->summary(conversationId);
    m_currentId = conversationId;
    m_messages->open(conversationId, m_userName, summary ? summary->readSeq : 0);
    Q_EMIT currentConversationChanged();
    Q_EMIT typingChanged();
    toWorker([conversationId](StoreWorker* w) { w->markRead(conversationId); });
}

void ChatSession::closeConversation()
{
    stopTyping();
    m_currentId.clear();
    m_messages->close();
    Q_EMIT currentConversationChanged();
    Q_EMIT typingChanged();
}

QString ChatSession::currentTitle() const
{
    if (m_currentId.isEmpty()) {
        return {};
    }
    const std::optional<ConversationSummary> summary = m_conversations->summary(m_currentId);
    if (summary) {
        return m_conversations->nameOf(*summary);
    }
    const QString peer = directConversationPeer(m_currentId, m_userName);
    return peer.isEmpty() ? m_currentId : peer;
}

QString ChatSession::currentSubtitle() const
{
    if (directConversationMembers(m_currentId).size() == 2) {
        const QString peer = directConversationPeer(m_currentId, m_userName);
        const auto presence = m_presence.constFind(peer);
        if (presence == m_presence.cend()) {
            return {};
        }
        return presenceTextFor(
            presence->online, presence->lastSeen, QDateTime::currentDateTime());
    }
    const std::optional<ConversationSummary> summary = m_conversations->summary(m_currentId);
    if (!summary) {
        return {};
    }
    return tr("%n member(s)", nullptr, static_cast<int>(summary->members.size()));
}

QString ChatSession::startDirect(const QString& userName)
{
    const QString peer = userName.trimmed().toLower();
    if (!isValidUserName(peer)) {
        return tr("A user name has 1 to 32 characters: a–z, 0–9, '.', '_' or '-'.");
    }
    if (peer == m_userName) {
        return tr("That is you. Pick someone else to talk to.");
    }
    openConversation(directConversationId(m_userName, peer));
    return {};
}

QString ChatSession::createGroup(const QString& title, const QString& members)
{
    static const QRegularExpression separators(QStringLiteral("[,\\s]+"));
    QStringList names = members.toLower().split(separators, Qt::SkipEmptyParts);
    names.removeAll(m_userName);
    names.removeDuplicates();
    if (title.trimmed().isEmpty()) {
        return tr("Give the group a name.");
    }
    if (names.isEmpty()) {
        return tr("Add at least one member.");
    }
    for (const QString& name : std::as_const(names)) {
        if (!isValidUserName(name)) {
            return tr("\"%1\" is not a user name.").arg(name);
        }
    }
    toWorker([title = title.trimmed(), names](StoreWorker* w) { w->createGroup(title, names); });
    return {};
}

bool ChatSession::sendMessage(const QString& text)
{
    const QString trimmed = text.trimmed();
    if (trimmed.isEmpty() || m_currentId.isEmpty()) {
        return false;
    }
    stopTyping();
    toWorker([id = m_currentId, body = trimmed.toUtf8()](StoreWorker* w) { w->send(id, body); });
    return true;
}

void ChatSession::cancelMessage(const QString& messageId)
{
    const std::optional<MessageId> id = MessageId::fromString(messageId);
    if (id) {
        toWorker([bytes = id->bytes()](StoreWorker* w) { w->cancel(bytes); });
    }
}

void ChatSession::retryMessage(const QString& messageId)
{
    const std::optional<MessageId> id = MessageId::fromString(messageId);
    if (id) {
        toWorker([bytes = id->bytes()](StoreWorker* w) { w->retry(bytes); });
    }
}

void ChatSession::refreshDevices()
{
    toWorker([](StoreWorker* w) { w->listDevices(); });
}

void ChatSession::removeDevice(const QString& deviceId)
{
    bool ok = false;
    const quint64 id = deviceId.toULongLong(&ok);
    if (ok) {
        toWorker([id](StoreWorker* w) { w->removeDevice(id); });
    }
}

} // namespace ferry::ui
