#pragma once

#include "core/ClientStore.h"
#include "sync/ReconnectPolicy.h"

#include <QDateTime>
#include <QHash>
#include <QObject>
#include <QPointer>
#include <QTimer>
#include <QUrl>

#include <functional>
#include <optional>

class QWebSocket;

namespace ferry::v1 {
class Envelope;
class EventBatch;
}

namespace ferry {

/// A device of the account, as the server lists it.
struct DeviceInfo {
    quint64 id = 0;
    QString name;
    qint64 createdMs = 0;
    bool current = false; ///< the device this engine runs as
    bool online = false;
};

/// Keeps one device in step with its server over a single WebSocket. It connects, proves who the
/// device is, catches up on the device's event log from the stored offset, then stays live; it
/// drains the outbox in the order messages were written and marks each sent only on the server's
/// acknowledgement. When the link fails it waits (exponential backoff with full jitter) and
/// starts again, on the next of its server addresses; every unacknowledged message is then sent
/// again under the same id, which the server recognises, so nothing is lost and nothing doubled.
///
/// It also reports receipts (delivered automatically, read when the store says so), fills gaps
/// in a conversation's sequence numbers from the server's history, and carries the requests of
/// device and group management.
///
/// The engine owns its socket; the store is the caller's and must outlive the engine. It has no
/// GUI dependency, so a command-line client and an app drive it alike.
class SyncEngine : public QObject {
    Q_OBJECT
    Q_PROPERTY(State state READ state NOTIFY stateChanged)
    Q_PROPERTY(QDateTime nextRetryAt READ nextRetryAt NOTIFY stateChanged)
    Q_PROPERTY(QString lastLinkError READ lastLinkError NOTIFY stateChanged)
public:
    enum class State {
        Offline,        ///< not started, or stopped for good
        Connecting,     ///< opening the WebSocket
        Authenticating, ///< handshake and device authentication
        CatchingUp,     ///< fetching events committed while this device was away
        Live,           ///< caught up; new events arrive as they are committed
        WaitingToRetry, ///< the link failed; the next try is at nextRetryAt
    };
    Q_ENUM(State)

    struct Settings {
        ReconnectPolicy::Settings backoff;
        std::chrono::milliseconds heartbeatInterval { 15'000 };
        std::chrono::milliseconds heartbeatTimeout { 10'000 };
        /// A connection that stays live this long forgets earlier failures.
        std::chrono::milliseconds healthyAfter { 10'000 };
        /// Most messages sent and not yet acknowledged at one time.
        int sendWindow = 64;
        /// Events asked for per sync request; 0 leaves it to the server, which sends up to its
        /// --sync-batch (and about 1 MiB) per batch. Fewer events per batch cost a round trip
        /// and a commit each while catching up.
        quint32 syncBatch = 0;
        /// Try at once when the system reports the network is back (where Qt can tell).
        bool watchNetwork = true;
        /// Tell senders when their messages reached this device ("delivered").
        bool sendDeliveryReceipts = true;
    };

    SyncEngine(ClientStore* store, Settings settings, QObject* parent = nullptr);
    explicit SyncEngine(ClientStore* store, QObject* parent = nullptr);
    ~SyncEngine() override;

    State state() const { return m_state; }
    QDateTime nextRetryAt() const { return m_nextRetryAt; }

    /// The servers to use, tried in turn; defaults to the one stored with the account.
    void setServerUrls(const QList<QUrl>& urls);
    void setServerUrl(const QUrl& url) { setServerUrls({ url }); }
    /// The server the engine is using, or will try next.
    QUrl serverUrl() const;

    /// Connects as the device stored in the profile and keeps the link up until stop().
    void start();

    /// Creates an account (or, with `createAccount` false, signs in to one) and a new device for
    /// it, saves the device's identity in the store, then carries on as start() does. The
    /// password is kept only until the server has answered.
    void startWithPassword(const QString& userName, const QByteArray& password,
        const QString& deviceName, bool createAccount);

    /// Closes the link and stops retrying.
    void stop();

    /// The device token, for an owner that keeps it outside the store (a system keychain): used
    /// whenever the stored account holds none.
    void setDeviceToken(const QByteArray& token) { m_deviceToken = token; }

    /// Tries to connect now instead of waiting for the backoff timer.
    void retryNow();

    /// Picks up messages written to the outbox and receipts owed since the last look, and sends
    /// them if connected.
    void flushOutbox();

    /// Live, with nothing written and unacknowledged, no receipt owed and no gap being filled.
    bool isIdle() const;

    /// Messages known to be waiting for the server (queued or in flight).
    int pendingCount() const { return static_cast<int>(m_pending.size()); }

    /// Why the last link failed ("Connection refused", a close reason), empty if none did.
    QString lastLinkError() const { return m_lastLinkError; }

    // Requests that need the server. Each is sent once the engine is authenticated (at once if
    // it is) and answered by requestFinished with the id returned here; data comes with the
    // typed signals below. A request made while offline waits for the next connection.

    quint64 listDevices();
    quint64 renameDevice(quint64 deviceId, const QString& name);
    quint64 removeDevice(quint64 deviceId);
    /// Creates a group with a fresh id, which groupCreated reports.
    quint64 createGroup(const QString& title, const QStringList& members);
    quint64 addMembers(const QString& conversationId, const QStringList& userNames);
    quint64 removeMember(const QString& conversationId, const QString& userName);
    quint64 leaveGroup(const QString& conversationId);
    /// Fetches the page of history just older than the oldest entry this device holds.
    quint64 fetchOlderHistory(const QString& conversationId, int limit = 200);
    /// Tells the other members this account is typing (or stopped).
    void sendTyping(const QString& conversationId, bool active);

Q_SIGNALS:
    void stateChanged(ferry::SyncEngine::State state);
    /// Account and device saved after startWithPassword succeeded.
    void authenticated(const QString& userName, quint64 deviceId);
    /// Entries (messages, membership changes) stored for the first time.
    void messagesAdded(const QList<ferry::StoredMessage>& messages);
    /// Receipts or membership changed what these conversations show (states, unread counts).
    void conversationsChanged(const QStringList& conversationIds);
    /// An own message the server acknowledged (by ack or by its event).
    void messageSent(const QByteArray& messageId);
    /// An own message the server refused for good.
    void messageFailed(const QByteArray& messageId, const QString& reason);
    /// The event log is applied up to its end as of now.
    void caughtUp();
    /// Live and nothing left to send; emitted each time that becomes true.
    void idle();
    /// The engine stopped retrying: bad credentials, a taken name, a removed device, an
    /// incompatible server or client. `kind` is machine-readable.
    void stoppedWithError(const QString& kind, const QString& message);
    /// The local store refused a write (a full disk, a read-only file). The engine keeps
    /// retrying; what was stored before stays stored.
    void storageFailed(const QString& message);

    /// The answer to a request: `error` is empty on success.
    void requestFinished(quint64 requestId, const QString& error);
    void devicesListed(quint64 requestId, const QList<ferry::DeviceInfo>& devices);
    void groupCreated(quint64 requestId, const QString& conversationId);
    /// Another member started or stopped typing. Never stored.
    void typingChanged(const QString& conversationId, const QString& userName, bool active);
    /// A contact came online or went offline. Never stored.
    void presenceChanged(const QString& userName, bool online, const QDateTime& lastSeen);

private:
    void setState(State state);
    bool loadOutbox();
    void openSocket();
    void scheduleRetry(const QString& reason);
    void failPermanently(const QString& kind, const QString& message);
    void watchNetworkReachability();

    void handleConnected();
    void handleDisconnected();
    void handleBinaryMessage(const QByteArray& frame);
    void handleSocketStateChanged();
    void handleHeartbeatTick();
    void handleDeadlineExpired();

    void handleWelcome();
    void handleAuthenticated(const v1::Envelope& envelope);
    void handleEventBatch(quint64 requestId, const v1::EventBatch& batch);
    void handleSendAck(const v1::Envelope& envelope);
    void handleError(const v1::Envelope& envelope);
    void handleEphemeral(const v1::Envelope& envelope);

    void requestEvents(quint64 afterOffset);
    void sendPendingMessages();
    void checkIdle();
    quint64 sendEnvelope(v1::Envelope& envelope);

    // Requests, receipts and gap filling (EngineRequests.cpp).
    using ReplyHandler = std::function<void(const v1::Envelope&)>;
    /// Sends `envelope` now if authenticated, else when authenticated; calls `onReply` with the
    /// answer (which may be an Error). Returns the id requestFinished will report.
    quint64 startRequest(const v1::Envelope& envelope, ReplyHandler onReply);
    bool handleReply(const v1::Envelope& envelope);
    void sendQueuedRequests();
    void failOpenRequests(const QString& why);
    void sendOwedReceipts();
    void acknowledgeDelivery(const QList<StoredMessage>& added);
    void fillGaps(const QStringList& conversationIds);

    ClientStore* m_store;
    Settings m_settings;
    ReconnectPolicy m_policy;
    QList<QUrl> m_serverUrls;
    int m_serverIndex = 0;

    QPointer<QWebSocket> m_socket;
    State m_state = State::Offline;
    bool m_running = false;
    QDateTime m_nextRetryAt;
    QString m_lastLinkError;
    /// Why this engine aborted the link itself (an error the server answered), so that
    /// lastLinkError says that rather than "connection closed".
    QString m_abortReason;
    QTimer m_retryTimer;
    QTimer m_heartbeatTimer;
    /// Bounds the wait for the handshake and for each pong: a link that stays silent past it is
    /// taken as dead (a half-open TCP connection looks exactly like a quiet one otherwise).
    QTimer m_deadlineTimer;
    QTimer m_healthyTimer;
    QTimer m_sendHoldOff; ///< running while the server asked this client to slow down

    struct PasswordLogin {
        QString userName;
        QByteArray password;
        QString deviceName;
        bool createAccount = false;
    };
    std::optional<PasswordLogin> m_passwordLogin;
    /// The server-signed session of this process; reconnects present it instead of the device
    /// token, so the server needs no database read. Kept in memory only.
    QByteArray m_sessionToken;
    qint64 m_sessionExpiresMs = 0;
    QByteArray m_deviceToken; ///< from the owner, when the store keeps none

    quint64 m_nextRequestId = 1;
    quint64 m_authRequestId = 0; ///< the Register, Login, Resume or Authenticate awaiting answer
    quint64 m_syncRequestId = 0; ///< the sync request whose answer is awaited, 0 if none
    quint64 m_offset = 0;        ///< the stored event offset, cached
    bool m_wasIdle = false;

    /// Queued messages in the order written, as loaded from the store.
    QList<StoredMessage> m_pending;
    qint64 m_lastLoadedLocalId = 0;
    QHash<QByteArray, quint64> m_inFlight; ///< message id -> request id, on this connection

    struct OpenRequest {
        quint64 publicId = 0;
        QByteArray frame; ///< the encoded request, its wire request id filled in when sent
        ReplyHandler onReply;
        quint64 wireId = 0; ///< 0 until sent on the current connection
    };
    QList<OpenRequest> m_requests;
    quint64 m_nextPublicRequestId = 1;
    QHash<quint64, OutgoingReceipt> m_receiptsInFlight; ///< wire request id -> receipt
    QHash<quint64, QString> m_gapRequests;              ///< wire request id -> conversation
};

} // namespace ferry
