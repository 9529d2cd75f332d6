#pragma once

#include "core/ClientStore.h"
#include "sync/ReconnectPolicy.h"

#include <QDateTime>
#include <QHash>
#include <QObject>
#include <QPointer>
#include <QTimer>
#include <QUrl>

#include <optional>

class QWebSocket;

namespace ferry::v1 {
class Envelope;
class EventBatch;
}

namespace ferry {

/// Keeps one device in step with its server over a single WebSocket. It connects, proves who the
/// device is, catches up on the device's event log from the stored offset, then stays live; it
/// drains the outbox in the order messages were written and marks each sent only on the server's
/// acknowledgement. When the link fails it waits (exponential backoff with full jitter) and
/// starts again; every unacknowledged message is then sent again under the same id, which the
/// server recognises, so nothing is lost and nothing is doubled.
///
/// The engine owns its socket; the store is the caller's and must outlive the engine. It has no
/// GUI dependency, so a command-line client and an app drive it alike.
class SyncEngine : public QObject {
    Q_OBJECT
    Q_PROPERTY(State state READ state NOTIFY stateChanged)
    Q_PROPERTY(QDateTime nextRetryAt READ nextRetryAt NOTIFY stateChanged)
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
        /// Events asked for per sync request.
        quint32 syncBatch = 500;
    };

    SyncEngine(ClientStore* store, Settings settings, QObject* parent = nullptr);
    explicit SyncEngine(ClientStore* store, QObject* parent = nullptr);
    ~SyncEngine() override;

    State state() const { return m_state; }
    QDateTime nextRetryAt() const { return m_nextRetryAt; }

    /// The server to use; defaults to the one stored with the account.
    void setServerUrl(const QUrl& url) { m_serverUrl = url; }
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

    /// Tries to connect now instead of waiting for the backoff timer.
    void retryNow();

    /// Picks up messages written to the outbox since the last look, and sends them if live.
    void flushOutbox();

    /// Live, with nothing written and unacknowledged.
    bool isIdle() const;

    /// Messages known to be waiting for the server (queued or in flight).
    int pendingCount() const { return static_cast<int>(m_pending.size()); }

    /// Why the last link failed ("Connection refused", a close reason), empty if none did.
    QString lastLinkError() const { return m_lastLinkError; }

Q_SIGNALS:
    void stateChanged(ferry::SyncEngine::State state);
    /// Account and device saved after startWithPassword succeeded.
    void authenticated(const QString& userName, quint64 deviceId);
    /// Messages stored for the first time by events from the server.
    void messagesAdded(const QList<ferry::StoredMessage>& messages);
    /// An own message the server acknowledged (by ack or by its event).
    void messageSent(const QByteArray& messageId);
    /// An own message the server refused for good.
    void messageFailed(const QByteArray& messageId, const QString& reason);
    /// The event log is applied up to its end as of now.
    void caughtUp();
    /// Live with an empty outbox; emitted each time that becomes true.
    void idle();
    /// The engine stopped retrying: bad credentials, a taken name, an incompatible server or
    /// client that is too old. `kind` is machine-readable.
    void stoppedWithError(const QString& kind, const QString& message);
    /// The local store refused a write (a full disk, a read-only file). The engine keeps
    /// retrying; what was stored before stays stored.
    void storageFailed(const QString& message);

private:
    void setState(State state);
    bool loadOutbox();
    void openSocket();
    void scheduleRetry(const QString& reason);
    void failPermanently(const QString& kind, const QString& message);

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

    void requestEvents(quint64 afterOffset);
    void sendPendingMessages();
    void checkIdle();
    quint64 sendEnvelope(v1::Envelope& envelope);

    ClientStore* m_store;
    Settings m_settings;
    ReconnectPolicy m_policy;
    QUrl m_serverUrl;

    QPointer<QWebSocket> m_socket;
    State m_state = State::Offline;
    bool m_running = false;
    QDateTime m_nextRetryAt;
    QString m_lastLinkError;
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

    quint64 m_nextRequestId = 1;
    quint64 m_authRequestId = 0; ///< the Register, Login or Resume awaiting its answer
    quint64 m_syncRequestId = 0; ///< the sync request whose answer is awaited, 0 if none
    quint64 m_offset = 0;        ///< the stored event offset, cached
    bool m_wasIdle = false;

    /// Queued messages in the order written, as loaded from the store.
    QList<StoredMessage> m_pending;
    qint64 m_lastLoadedLocalId = 0;
    QHash<QByteArray, quint64> m_inFlight; ///< message id -> request id, on this connection
};

} // namespace ferry
