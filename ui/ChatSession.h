#pragma once

#include "ui/ConversationListModel.h"
#include "ui/DeviceListModel.h"
#include "ui/MessageListModel.h"
#include "ui/StoreWorker.h"

#include <QHash>
#include <QObject>
#include <QThread>
#include <QTimer>
#include <QUrl>
#include <QtQml/qqmlregistration.h>

#include <memory>

namespace ferry::ui {

/// The app's one object on the GUI thread that QML talks to: it owns the worker thread (which
/// owns the store and the sync engine) and the list models, turns what the worker reports into
/// properties, and passes the user's actions on as queued calls. Nothing here blocks: every
/// answer comes back as a signal from the worker.
class ChatSession : public QObject {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("Created by the app with its profile")
    Q_PROPERTY(Phase phase READ phase NOTIFY phaseChanged)
    Q_PROPERTY(QString userName READ userName NOTIFY phaseChanged)
    Q_PROPERTY(QString serverUrl READ serverUrl NOTIFY phaseChanged)
    Q_PROPERTY(QString deviceName READ deviceName CONSTANT)
    Q_PROPERTY(QString signInError READ signInError NOTIFY signInErrorChanged)
    Q_PROPERTY(bool bannerVisible READ isBannerVisible NOTIFY connectionChanged)
    Q_PROPERTY(QString bannerText READ bannerText NOTIFY connectionChanged)
    Q_PROPERTY(bool bannerCanRetry READ bannerCanRetry NOTIFY connectionChanged)
    Q_PROPERTY(QString connectionState READ connectionState NOTIFY connectionChanged)
    Q_PROPERTY(QString currentConversationId READ currentConversationId
            NOTIFY currentConversationChanged)
    Q_PROPERTY(QString currentTitle READ currentTitle NOTIFY currentConversationChanged)
    Q_PROPERTY(QString currentSubtitle READ currentSubtitle NOTIFY currentConversationChanged)
    Q_PROPERTY(QString notice READ notice NOTIFY noticeChanged)
    Q_PROPERTY(QString typingText READ typingText NOTIFY typingChanged)
    Q_PROPERTY(QString credentialsNote READ credentialsNote NOTIFY credentialsChanged)
    Q_PROPERTY(bool windowActive READ isWindowActive WRITE setWindowActive
            NOTIFY windowActiveChanged)
    Q_PROPERTY(ferry::ui::ConversationListModel* conversations READ conversations CONSTANT)
    Q_PROPERTY(ferry::ui::MessageListModel* messages READ messages CONSTANT)
    Q_PROPERTY(ferry::ui::DeviceListModel* devices READ devices CONSTANT)
public:
    enum class Phase {
        Opening,   ///< the worker is opening the profile
        SignedOut, ///< no account in the profile: the sign-in page
        SigningIn, ///< waiting for the server to accept a sign-in or sign-up
        SignedIn,  ///< the chat
        Broken,    ///< the profile could not be opened
    };
    Q_ENUM(Phase)

    static constexpr auto DefaultServer = "ws://127.0.0.1:8765";

    /// Opens the profile in `profileDir` on a worker thread; `serverOverride`, if valid, is
    /// used instead of the server stored with the account.
    explicit ChatSession(
        const QString& profileDir, const QUrl& serverOverride = {}, QObject* parent = nullptr);
    ~ChatSession() override;

    Phase phase() const { return m_phase; }
    QString userName() const { return m_userName; }
    QString serverUrl() const { return m_serverUrl; }
    QString deviceName() const;
    QString signInError() const { return m_signInError; }
    bool isBannerVisible() const { return !bannerText().isEmpty(); }
    QString bannerText() const;
    bool bannerCanRetry() const;
    QString connectionState() const;
    QString currentConversationId() const { return m_currentId; }
    QString currentTitle() const;
    QString currentSubtitle() const;
    QString notice() const { return m_notice; }
    /// Where this device's sign-in (its device token) is kept, in words for the devices page.
    QString credentialsNote() const;
    bool isWindowActive() const { return m_windowActive; }
    void setWindowActive(bool active);
    /// Set by TrayNotifier when the desktop shows notifications; the window then shows no toast.
    void setDesktopNotifications(bool enabled) { m_desktopNotifications = enabled; }
    bool hasDesktopNotifications() const { return m_desktopNotifications; }
    ConversationListModel* conversations() const { return m_conversations; }
    MessageListModel* messages() const { return m_messages; }
    DeviceListModel* devices() const { return m_devices; }

    /// Who is typing in the open conversation, in words ("bob is typing…"); empty if nobody.
    QString typingText() const;
    static QString typingTextFor(const QStringList& userNames);
    /// A person's presence for a conversation header: "online", "last seen 17:40".
    static QString presenceTextFor(bool online, const QDateTime& lastSeen, const QDateTime& now);

    /// The banner's words for an engine state, at `now`; empty when nothing needs saying.
    static QString bannerTextFor(const EngineSnapshot& snapshot, const QDateTime& now);

    Q_INVOKABLE void signIn(const QString& serverUrl, const QString& userName,
        const QString& password, const QString& deviceName, bool createAccount);
    Q_INVOKABLE void retryNow();
    Q_INVOKABLE void openConversation(const QString& conversationId);
    Q_INVOKABLE void closeConversation();
    /// Opens the direct conversation with `userName`; returns an error for people, or "".
    Q_INVOKABLE QString startDirect(const QString& userName);
    /// Creates a group of `members` (names separated by commas or spaces); error or "".
    Q_INVOKABLE QString createGroup(const QString& title, const QString& members);
    /// Writes a message to the open conversation; false when there was nothing to send.
    Q_INVOKABLE bool sendMessage(const QString& text);
    Q_INVOKABLE void cancelMessage(const QString& messageId);
    Q_INVOKABLE void retryMessage(const QString& messageId);
    Q_INVOKABLE void refreshDevices();
    Q_INVOKABLE void removeDevice(const QString& deviceId);
    Q_INVOKABLE void dismissNotice();
    /// The composer's text changed: tells the others this account is typing, and that it
    /// stopped after TypingIdleMs without an edit (or on sending).
    Q_INVOKABLE void composerEdited(const QString& text);

    static constexpr int TypingIdleMs = 3000;

Q_SIGNALS:
    void credentialsChanged();
    void phaseChanged();
    void signInErrorChanged();
    void connectionChanged();
    void currentConversationChanged();
    void noticeChanged();
    void windowActiveChanged();
    void typingChanged();
    /// A message arrived that the person has not seen (see shouldNotify()).
    void notificationPosted(const QString& title, const QString& text);
    /// The same, for the window's own toast: only where the desktop does not show it.
    void toastRequested(const QString& text);

private:
    template <typename Call> void toWorker(Call&& call);
    void setPhase(Phase phase);
    void setNotice(const QString& text);
    void handleOpened(const ProfileInfo& info);
    void handleStopped(const QString& kind, const QString& message);
    void handleEngineChanged(const EngineSnapshot& snapshot);
    void handleMessagesStored(const QList<StoredMessage>& entries);
    void handleConversationsUpdated(const QList<ConversationSummary>& summaries);
    void handleTyping(const QString& conversationId, const QString& userName, bool active);
    void stopTyping();

    QThread m_thread;
    /// Lives on m_thread; deleted here only after the thread has finished.
    std::unique_ptr<StoreWorker> m_worker;
    ConversationListModel* m_conversations;
    MessageListModel* m_messages;
    DeviceListModel* m_devices;
    QTimer m_countdown; ///< refreshes "retrying in N s" once a second
    QTimer m_typingIdle; ///< running while this account is marked as typing
    QString m_typingIn;  ///< the conversation this account is marked as typing in

    Phase m_phase = Phase::Opening;
    QString m_userName;
    QString m_serverUrl;
    QString m_signInError;
    EngineSnapshot m_engine;
    QString m_stoppedMessage;
    QString m_currentId;
    QString m_notice;
    bool m_windowActive = true;
    bool m_tokenInKeychain = false; ///< the device token is in the system keychain
    QHash<QString, QStringList> m_typing; ///< conversation -> who is typing there
    struct Presence {
        bool online = false;
        QDateTime lastSeen;
    };
    QHash<QString, Presence> m_presence; ///< user name -> last heard presence
    bool m_desktopNotifications = false;
};

} // namespace ferry::ui
