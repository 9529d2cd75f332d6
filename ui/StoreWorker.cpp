#include "ui/StoreWorker.h"

#include "core/Logging.h"

#include <limits>

namespace ferry::ui {

StoreWorker::StoreWorker(QString profileDir, QUrl serverOverride)
    : m_profileDir(std::move(profileDir))
    , m_serverOverride(std::move(serverOverride))
    , m_vault(new CredentialVault(this))
{
}

StoreWorker::~StoreWorker() = default;

void StoreWorker::open()
{
    Result<std::unique_ptr<ClientStore>> store = ClientStore::open(m_profileDir);
    if (!store && store.error().kind == u"damaged") {
        // A damaged database is moved aside whole, never overwritten; what can still be read of
        // it is carried into a fresh one and the rest comes back from the server.
        qCWarning(lcUi) << "The profile database is damaged, recovering:" << store.error().message;
        Result<RecoveryReport> recovered = ClientStore::recover(m_profileDir);
        if (recovered) {
            store = ClientStore::open(m_profileDir);
        }
    }
    if (!store) {
        qCWarning(lcUi) << "Could not open the profile:" << store.error().message;
        Q_EMIT openFailed(store.error().message);
        return;
    }
    m_store = std::move(store.value());

    m_engine = std::make_unique<SyncEngine>(m_store.get());
    connect(m_engine.get(), &SyncEngine::stateChanged, this, &StoreWorker::publishEngineState);
    connect(m_engine.get(), &SyncEngine::messagesAdded, this, &StoreWorker::handleMessagesAdded);
    connect(m_engine.get(), &SyncEngine::conversationsChanged, this,
        &StoreWorker::handleConversationsChanged);
    connect(m_engine.get(), &SyncEngine::messageSent, this, &StoreWorker::publishMessage);
    connect(m_engine.get(), &SyncEngine::messageFailed, this,
        [this](const QByteArray& messageId, const QString&) { publishMessage(messageId); });
    connect(m_engine.get(), &SyncEngine::authenticated, this, [this](const QString& userName) {
        m_signingIn = false;
        Q_EMIT signedIn(userName);
        loadConversations();
        moveTokenToKeychain();
    });
    connect(m_engine.get(), &SyncEngine::stoppedWithError, this,
        [this](const QString& kind, const QString& message) {
            m_signingIn = false;
            Q_EMIT stopped(kind, message);
        });
    connect(m_engine.get(), &SyncEngine::storageFailed, this, &StoreWorker::actionFailed);
    connect(m_engine.get(), &SyncEngine::devicesListed, this,
        [this](quint64, const QList<DeviceInfo>& devices) { Q_EMIT devicesListed(devices); });
    connect(m_engine.get(), &SyncEngine::groupCreated, this,
        [this](quint64, const QString& conversationId) { Q_EMIT groupCreated(conversationId); });
    connect(m_engine.get(), &SyncEngine::requestFinished, this,
        &StoreWorker::handleRequestFinished);
    connect(m_engine.get(), &SyncEngine::typingChanged, this, &StoreWorker::typingChanged);
    connect(m_engine.get(), &SyncEngine::presenceChanged, this, &StoreWorker::presenceChanged);

    const std::optional<AccountInfo> account = m_store->account();
    ProfileInfo info;
    info.hasAccount = account.has_value();
    if (account) {
        info.userName = account->userName;
        info.serverUrl = account->serverUrl;
    }
    if (m_serverOverride.isValid()) {
        info.serverUrl = m_serverOverride.toString();
    }
    info.tokenInKeychain = account && account->deviceToken.isEmpty();
    Q_EMIT opened(info);

    if (!account) {
        return;
    }
    loadConversations();
    if (!info.tokenInKeychain) {
        startEngine();
        return;
    }
    // The token was moved to the system keychain at sign-in; the engine waits for it.
    m_vault->load(CredentialVault::keyFor(m_profileDir, account->deviceId),
        [this](std::optional<QByteArray> token) {
            if (!token) {
                Q_EMIT stopped(QStringLiteral("no-token"),
                    tr("This device's sign-in could not be read from the system keychain. "
                       "Sign in again."));
                return;
            }
            m_engine->setDeviceToken(*token);
            startEngine();
        });
}

void StoreWorker::moveTokenToKeychain()
{
    const std::optional<AccountInfo> account = m_store->account();
    if (!account || account->deviceToken.isEmpty()) {
        return;
    }
    // Where a keychain takes the token, the profile keeps none; where none does, the token
    // stays in the profile's database, in a folder only its owner can read.
    m_vault->store(CredentialVault::keyFor(m_profileDir, account->deviceId), account->deviceToken,
        [this, account = *account](bool stored) {
            if (stored) {
                AccountInfo withoutToken = account;
                withoutToken.deviceToken.clear();
                if (auto saved = m_store->saveAccount(withoutToken); !saved) {
                    qCWarning(lcUi) << "Could not clear the token from the profile:"
                                    << saved.error().message;
                    stored = false;
                } else {
                    m_engine->setDeviceToken(account.deviceToken);
                }
            }
            Q_EMIT credentialsStored(stored);
        });
}

void StoreWorker::shutDown()
{
    if (m_engine) {
        m_engine->stop();
    }
    m_engine.reset();
    m_store.reset();
}

void StoreWorker::startEngine()
{
    if (m_serverOverride.isValid()) {
        m_engine->setServerUrl(m_serverOverride);
    }
    m_engine->start();
}

void StoreWorker::signIn(const QString& serverUrl, const QString& userName,
    const QByteArray& password, const QString& deviceName, bool createAccount)
{
    if (!m_engine) {
        return;
    }
    m_signingIn = true;
    m_serverOverride = QUrl(serverUrl);
    m_engine->stop();
    m_engine->setServerUrl(m_serverOverride);
    m_engine->startWithPassword(userName, password, deviceName, createAccount);
}

void StoreWorker::retryNow()
{
    if (m_engine) {
        m_engine->retryNow();
    }
}

void StoreWorker::publishEngineState()
{
    EngineSnapshot snapshot;
    snapshot.state = m_engine->state();
    snapshot.nextRetryAt = m_engine->nextRetryAt();
    snapshot.lastLinkError = m_engine->lastLinkError();
    snapshot.pending = m_engine->pendingCount();

    // While signing in, an unreachable server is an answer: the person probably mistyped the
    // address, and waiting through backoff with their password in memory helps nobody.
    if (m_signingIn && snapshot.state == SyncEngine::State::WaitingToRetry) {
        m_signingIn = false;
        m_engine->stop();
        Q_EMIT stopped(QStringLiteral("unreachable"), snapshot.lastLinkError);
        return;
    }
    Q_EMIT engineChanged(snapshot);
}

void StoreWorker::loadConversations()
{
    Result<QList<ConversationSummary>> conversations = m_store->conversations();
    if (!conversations) {
        qCWarning(lcUi) << "Could not read the conversation list:"
                        << conversations.error().message;
        return;
    }
    Q_EMIT conversationsLoaded(conversations.value());
}

void StoreWorker::publishConversations(const QStringList& conversationIds)
{
    QList<ConversationSummary> summaries;
    for (const QString& id : conversationIds) {
        Result<ConversationSummary> summary = m_store->conversation(id);
        if (summary) {
            summaries.append(summary.value());
        }
    }
    if (!summaries.isEmpty()) {
        Q_EMIT conversationsUpdated(summaries);
    }
}

QList<StoredMessage> StoreWorker::readPage(
    const QString& conversationId, quint64 beforeSeq, int limit, bool* complete)
{
    const bool newest = beforeSeq == 0;
    const quint64 before = newest ? std::numeric_limits<qint64>::max() : beforeSeq;
    Result<QList<StoredMessage>> page = m_store->history(conversationId, before, limit);
    if (!page) {
        qCWarning(lcUi) << "Could not read the history:" << page.error().message;
        *complete = true;
        return {};
    }
    QList<StoredMessage> entries = page.value();
    *complete = entries.size() < limit
        || (!entries.isEmpty() && entries.first().seq && *entries.first().seq <= 1);

    // Unsent messages have no sequence number yet; they are the newest of all and come with
    // the first page.
    if (newest) {
        Result<QList<StoredMessage>> unsent = m_store->unsentMessages();
        if (unsent) {
            for (const StoredMessage& message : unsent.value()) {
                if (message.conversationId == conversationId) {
                    entries.append(message);
                }
            }
        }
    }
    return entries;
}

void StoreWorker::loadHistory(
    quint64 token, const QString& conversationId, quint64 beforeSeq, int limit)
{
    bool complete = true;
    const QList<StoredMessage> entries = readPage(conversationId, beforeSeq, limit, &complete);

    // The oldest sequence number this page reaches; the conversation starts at 1, so anything
    // above it that the store does not hold may still be on the server.
    quint64 oldest = beforeSeq;
    for (const StoredMessage& entry : entries) {
        if (entry.seq) {
            oldest = *entry.seq;
            break;
        }
    }
    const bool serverMayHaveMore = oldest != 1 && !m_olderFetch && m_engine
        && m_engine->state() == SyncEngine::State::Live;
    if (!complete || !serverMayHaveMore) {
        Q_EMIT historyLoaded(token, conversationId, entries, complete);
        return;
    }

    // The model keeps its "Loading earlier messages…" row until the answer: the page is read
    // again from the store once the server's entries are in it. Offline, the page ends here;
    // opening the conversation again once connected asks again.
    OlderFetch fetch;
    fetch.token = token;
    fetch.conversationId = conversationId;
    fetch.beforeSeq = beforeSeq;
    fetch.limit = limit;
    fetch.belowSeq = oldest == 0 ? std::numeric_limits<quint64>::max() : oldest;
    fetch.requestId = m_engine->fetchOlderHistory(conversationId);
    qCDebug(lcUi) << "Asking the server for history below" << oldest << "of" << conversationId;
    m_olderFetch = fetch;
}

void StoreWorker::finishOlderFetch(const QString& error)
{
    const OlderFetch fetch = *m_olderFetch;
    m_olderFetch.reset();
    if (!error.isEmpty()) {
        qCWarning(lcUi) << "Could not fetch older history from the server:" << error;
    }

    bool complete = true;
    const QList<StoredMessage> entries
        = readPage(fetch.conversationId, fetch.beforeSeq, fetch.limit, &complete);
    // A page still short after the server answered is all there is (or all this account may
    // read); asking again would only repeat the answer.
    Q_EMIT historyLoaded(fetch.token, fetch.conversationId, entries,
        complete || !error.isEmpty());
}

void StoreWorker::send(const QString& conversationId, const QByteArray& body)
{
    Result<StoredMessage> stored = m_store->enqueue(conversationId, body);
    if (!stored) {
        qCWarning(lcUi) << "Could not write a message to the outbox:" << stored.error().message;
        Q_EMIT actionFailed(tr("Could not save the message: %1").arg(stored.error().message));
        return;
    }
    Q_EMIT messagesStored({ stored.value() });
    publishConversations({ conversationId });
    m_engine->flushOutbox();
}

void StoreWorker::cancel(const QByteArray& messageId)
{
    const std::optional<StoredMessage> message = m_store->message(messageId);
    Result<Done> cancelled = m_store->cancel(messageId);
    if (!message || !cancelled) {
        Q_EMIT actionFailed(tr("This message can no longer be cancelled."));
        return;
    }
    Q_EMIT messagesRemoved({ messageId });
    publishConversations({ message->conversationId });
}

void StoreWorker::retry(const QByteArray& messageId)
{
    Result<Done> queued = m_store->retry(messageId);
    if (!queued) {
        Q_EMIT actionFailed(tr("This message cannot be sent again."));
        return;
    }
    publishMessage(messageId);
    m_engine->flushOutbox();
}

void StoreWorker::markRead(const QString& conversationId)
{
    Result<quint64> marked = m_store->markRead(conversationId);
    if (!marked) {
        return; // nothing to mark in an empty conversation
    }
    publishConversations({ conversationId });
    m_engine->flushOutbox();
}

void StoreWorker::publishMessage(const QByteArray& messageId)
{
    const std::optional<StoredMessage> message = m_store->message(messageId);
    if (!message) {
        return;
    }
    Q_EMIT messagesUpdated({ *message });
    publishConversations({ message->conversationId });
}

void StoreWorker::handleMessagesAdded(const QList<StoredMessage>& entries)
{
    // Older history fetched for the model arrives with its page, in one insertion, and is no
    // news to notify about.
    QList<StoredMessage> fresh = entries;
    if (m_olderFetch) {
        fresh.removeIf([fetch = *m_olderFetch](const StoredMessage& entry) {
            return entry.conversationId == fetch.conversationId && entry.seq
                && *entry.seq < fetch.belowSeq;
        });
    }
    if (!fresh.isEmpty()) {
        Q_EMIT messagesStored(fresh);
    }
    QStringList touched;
    for (const StoredMessage& entry : entries) {
        if (!touched.contains(entry.conversationId)) {
            touched.append(entry.conversationId);
        }
    }
    publishConversations(touched);
}

void StoreWorker::handleConversationsChanged(const QStringList& conversationIds)
{
    // Receipts change the derived state (delivered, read) of own messages; the newest page is
    // where they show, so it is read again and the models update the rows that differ.
    constexpr int ReceiptWindow = 100;
    for (const QString& id : conversationIds) {
        Result<QList<StoredMessage>> recent
            = m_store->history(id, std::numeric_limits<qint64>::max(), ReceiptWindow);
        if (recent) {
            Q_EMIT messagesUpdated(recent.value());
        }
    }
    publishConversations(conversationIds);
}

void StoreWorker::listDevices()
{
    m_engine->listDevices();
}

void StoreWorker::removeDevice(quint64 deviceId)
{
    m_removeRequest = m_engine->removeDevice(deviceId);
}

void StoreWorker::createGroup(const QString& title, const QStringList& members)
{
    m_groupRequest = m_engine->createGroup(title, members);
}

void StoreWorker::sendTyping(const QString& conversationId, bool active)
{
    if (m_engine && m_engine->state() == SyncEngine::State::Live) {
        m_engine->sendTyping(conversationId, active);
    }
}

void StoreWorker::handleRequestFinished(quint64 requestId, const QString& error)
{
    if (m_olderFetch && requestId == m_olderFetch->requestId) {
        finishOlderFetch(error);
    } else if (requestId == m_removeRequest) {
        if (!error.isEmpty()) {
            Q_EMIT actionFailed(tr("Could not sign the device out: %1").arg(error));
        }
        listDevices();
    } else if (requestId == m_groupRequest && !error.isEmpty()) {
        Q_EMIT actionFailed(tr("Could not create the group: %1").arg(error));
    }
}

} // namespace ferry::ui
