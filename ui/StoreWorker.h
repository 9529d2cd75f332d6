#pragma once

#include "core/ClientStore.h"
#include "sync/SyncEngine.h"
#include "ui/CredentialVault.h"

#include <QDateTime>
#include <QList>
#include <QObject>
#include <QString>
#include <QUrl>

#include <memory>
#include <optional>

namespace ferry::ui {

/// What the GUI learns about the profile once the worker has opened it.
struct ProfileInfo {
    bool hasAccount = false;
    QString userName;
    QString serverUrl;
    bool tokenInKeychain = false; ///< the device token is in the system keychain, not the profile
};

/// The engine's state as plain values, so that it can cross from the worker to the GUI thread.
struct EngineSnapshot {
    SyncEngine::State state = SyncEngine::State::Offline;
    QDateTime nextRetryAt;
    QString lastLinkError;
    int pending = 0;
};

/// Owns the device's ClientStore and SyncEngine on a thread of its own, so that no database
/// read, password hash or socket work ever runs on the GUI thread. Everything it tells the GUI
/// goes out as signals carrying value types; everything the GUI asks of it comes in as a queued
/// call to one of its public functions (see ChatSession). Every function here runs on the worker
/// thread only.
class StoreWorker : public QObject {
    Q_OBJECT
public:
    StoreWorker(QString profileDir, QUrl serverOverride);
    ~StoreWorker() override;

    /// Opens the store (recovering a damaged one) and, with an account, starts the engine.
    void open();
    /// Stops the engine and closes the store; called before the thread ends.
    void shutDown();

    void signIn(const QString& serverUrl, const QString& userName, const QByteArray& password,
        const QString& deviceName, bool createAccount);
    void retryNow();

    void loadConversations();
    /// Reads a page of history: with `beforeSeq` 0, the newest page and every unsent message.
    /// When the store holds nothing older and the conversation does not start with it, the page
    /// is asked of the server first (SyncEngine::fetchOlderHistory) and answered once it is in.
    void loadHistory(quint64 token, const QString& conversationId, quint64 beforeSeq, int limit);
    void send(const QString& conversationId, const QByteArray& body);
    void cancel(const QByteArray& messageId);
    void retry(const QByteArray& messageId);
    void markRead(const QString& conversationId);

    void listDevices();
    void removeDevice(quint64 deviceId);
    void createGroup(const QString& title, const QStringList& members);
    void sendTyping(const QString& conversationId, bool active);

Q_SIGNALS:
    void opened(const ferry::ui::ProfileInfo& info);
    void openFailed(const QString& message);
    void signedIn(const QString& userName);
    /// The engine gave up: `kind` as SyncEngine::stoppedWithError reports it.
    void stopped(const QString& kind, const QString& message);
    void engineChanged(const ferry::ui::EngineSnapshot& snapshot);
    void conversationsLoaded(const QList<ferry::ConversationSummary>& conversations);
    void conversationsUpdated(const QList<ferry::ConversationSummary>& conversations);
    void historyLoaded(quint64 token, const QString& conversationId,
        const QList<ferry::StoredMessage>& entries, bool complete);
    /// Entries stored for the first time: new messages, own ones just written.
    void messagesStored(const QList<ferry::StoredMessage>& entries);
    /// Entries whose state changed (sent, delivered, read, failed, queued again).
    void messagesUpdated(const QList<ferry::StoredMessage>& entries);
    void messagesRemoved(const QList<QByteArray>& messageIds);
    void devicesListed(const QList<ferry::DeviceInfo>& devices);
    void groupCreated(const QString& conversationId);
    void typingChanged(const QString& conversationId, const QString& userName, bool active);
    void presenceChanged(const QString& userName, bool online, const QDateTime& lastSeen);
    /// A user action could not be carried out; `message` is for people.
    void actionFailed(const QString& message);
    /// Where the device token is now kept: the system keychain, or the profile folder.
    void credentialsStored(bool inKeychain);

private:
    void moveTokenToKeychain();
    void startEngine();
    void publishEngineState();
    void publishConversations(const QStringList& conversationIds);
    void publishMessage(const QByteArray& messageId);
    void handleMessagesAdded(const QList<StoredMessage>& entries);
    void handleConversationsChanged(const QStringList& conversationIds);
    void handleRequestFinished(quint64 requestId, const QString& error);
    void finishOlderFetch(const QString& error);
    /// Reads a page from the store; `complete` is true when nothing older is held.
    QList<StoredMessage> readPage(
        const QString& conversationId, quint64 beforeSeq, int limit, bool* complete);

    QString m_profileDir;
    QUrl m_serverOverride;
    // The engine holds a raw pointer to the store, so it is declared after it and goes first.
    std::unique_ptr<ClientStore> m_store;
    std::unique_ptr<SyncEngine> m_engine;
    CredentialVault* m_vault;
    bool m_signingIn = false;
    quint64 m_removeRequest = 0;
    quint64 m_groupRequest = 0;

    /// A page of history being fetched from the server; the model's request waits for it.
    struct OlderFetch {
        quint64 requestId = 0;
        quint64 token = 0;
        QString conversationId;
        quint64 beforeSeq = 0;
        int limit = 0;
        /// Entries below this sequence number come with the page, not as new messages.
        quint64 belowSeq = 0;
    };
    std::optional<OlderFetch> m_olderFetch;
};

} // namespace ferry::ui
