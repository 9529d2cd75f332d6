#pragma once

#include "core/Result.h"
#include "server-stub/WebSocketConnection.h"

#include <QElapsedTimer>
#include <QObject>
#include <QString>

#include <memory>

namespace ferry::v1 {
class Envelope;
}

namespace ferry::server {

class ChatServer;
struct CommittedEvent;
struct NewMessage;
struct StoredMessageAck;

/// The server's side of one client's WebSocket. It walks through a small state machine:
///
///   AwaitingHello --Hello--> AwaitingAuth --Register/Login--> Authenticating --> Authenticated
///   AwaitingAuth --Resume/Authenticate--> Authenticated
///   Authenticated --SyncRequest answered with caught_up--> live (new events are pushed)
///
/// Any state can end in Closed; the connection deletes itself once its socket is gone. It also
/// enforces the per-connection limits: a request rate (token bucket), a bound on unsent output,
/// the time allowed to authenticate (WebSocket handshake included) and the heartbeat.
///
/// It owns its transport, a WebSocketConnection on the accepted descriptor, and hears from it
/// as its Handler. The handler's calls are public so that the fuzz target can feed frames
/// without a socket.
class ClientConnection : public QObject, public WebSocketConnection::Handler {
    Q_OBJECT
public:
    enum class State { AwaitingHello, AwaitingAuth, Authenticating, Authenticated, Closed };

    /// Takes over an accepted, non-blocking TCP descriptor.
    ClientConnection(qintptr descriptor, ChatServer* server);
    ~ClientConnection() override;

    State state() const { return m_state; }
    qint64 userId() const { return m_userId; }
    const QString& userName() const { return m_userName; }
    quint64 deviceId() const { return m_deviceId; }
    /// Bytes written to the socket and not yet handed to the kernel.
    qint64 queuedBytes() const;

    /// Sends every event of this user committed after the connection's cursor, read from the log.
    void pushNewEvents();
    /// Sends the events a group commit has just appended to this user's log, built from the
    /// commit (`events`: ascending, consecutive offsets). When they do not follow this
    /// connection's cursor directly, it reads the log back from the cursor instead.
    void pushCommittedEvents(const QList<CommittedEvent>& events);
    /// Sends one frame; closes the connection as a slow consumer if its backlog is too large.
    void sendEnvelope(const v1::Envelope& envelope);
    /// Sends an encoded Envelope, as sendEnvelope() does; for frames built once for many.
    void sendFrame(const QByteArray& frame);
    /// Closes with a close code and reason; the socket is dropped if the peer does not answer.
    void closeWith(int closeCode, const QString& reason);
    /// Enforces the authentication timeout and the heartbeat; called by the server's sweep.
    void checkDeadlines(qint64 nowMs);
    /// Answers a SendMessage once its group commit is over: the SendAck, or the error.
    void finishSend(quint64 requestId, const NewMessage& message,
        const Result<StoredMessageAck>& stored);

    // WebSocketConnection::Handler
    void binaryMessageReceived(QByteArrayView message) override;
    void textMessageReceived() override;
    void pongReceived() override;
    void framingFailed(int closeCode, const char* reason) override;
    void disconnected() override;

private:
    /// Closes the descriptor now and lets the connection go.
    void dropTransport();
    void dispatch(const v1::Envelope& envelope);
    bool takeRequestToken(const v1::Envelope& envelope);

    // Authentication (ClientConnection.cpp).
    void handleHello(const v1::Envelope& envelope);
    void handleRegister(const v1::Envelope& envelope);
    void handleLogin(const v1::Envelope& envelope);
    void handleResume(const v1::Envelope& envelope);
    void handleAuthenticate(const v1::Envelope& envelope);
    void handleRefreshSession(const v1::Envelope& envelope);
    void finishDeviceLogin(quint64 requestId, qint64 userId, const QString& userName,
        const QString& deviceName);
    void becomeAuthenticated(quint64 requestId, qint64 userId, const QString& userName,
        quint64 deviceId, const QByteArray& newDeviceToken, bool issueSession,
        qint64 sessionExpiresMs);

    // Requests of an authenticated device (ConnectionRequests.cpp).
    void handleSend(const v1::Envelope& envelope);
    void handleSync(const v1::Envelope& envelope);
    void handleListDevices(const v1::Envelope& envelope);
    void handleRenameDevice(const v1::Envelope& envelope);
    void handleRemoveDevice(const v1::Envelope& envelope);
    void handleCreateGroup(const v1::Envelope& envelope);
    void handleAddMembers(const v1::Envelope& envelope);
    void handleRemoveMember(const v1::Envelope& envelope);
    void handleLeave(const v1::Envelope& envelope);
    void handleReceipt(const v1::Envelope& envelope);
    void handleHistory(const v1::Envelope& envelope);
    void handleTyping(const v1::Envelope& envelope);

    /// Sends one batch of events after `afterOffset`, answering `requestId` (0 for a push), and
    /// turns the connection live when the batch reaches the end of the log. Returns whether it did.
    bool streamEvents(quint64 requestId, quint64 afterOffset, int limit);

    /// Hands one frame to the transport, closing a slow consumer whose backlog is too large.
    void writeFrame(const QByteArray& frame);
    void sendOk(quint64 requestId);
    void sendError(quint64 requestId, int code, const QString& message,
        const QByteArray& messageId = {}, quint32 retryAfterMs = 0);
    /// Maps a store error onto the protocol's error codes and sends it.
    void sendStoreError(quint64 requestId, const QString& kind, const QString& message,
        const QByteArray& messageId = {});
    void closeWithError(int code, const QString& message, int closeCode);

    std::unique_ptr<WebSocketConnection> m_transport;
    ChatServer* m_server;
    bool m_disconnected = false; ///< the transport is over; deletion is scheduled
    State m_state = State::AwaitingHello;
    qint64 m_userId = 0;
    QString m_userName;
    quint64 m_deviceId = 0;

    bool m_live = false;
    quint64 m_cursor = 0; ///< newest offset sent to this connection while live

    qint64 m_connectedMs = 0;
    qint64 m_lastHeardMs = 0;   ///< any frame or pong
    bool m_pingOutstanding = false;

    /// SendMessages queued for the server's group commit and not yet answered. Another request
    /// of this connection waits for them to be committed, so it sees them stored.
    int m_sendsInCommit = 0;

    double m_requestTokens = 0; ///< token bucket of the request rate limit
    qint64 m_tokensRefilledMs = 0;
    qint64 m_holdOffUntilMs = 0; ///< after a refusal, every request is refused until then
};

} // namespace ferry::server
