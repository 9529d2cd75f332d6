#pragma once

#include <QObject>

class QWebSocket;

namespace ferry::v1 {
class Envelope;
class Hello;
class Register;
class Login;
class Resume;
class SendMessage;
class SyncRequest;
}

namespace ferry::server {

class ChatServer;

/// The server's side of one client's WebSocket. It walks through a small state machine:
///
///   AwaitingHello --Hello--> AwaitingAuth --Register/Login/Resume--> Authenticating
///   Authenticating --password or token checked--> Authenticated
///   Authenticated --SyncRequest answered with caught_up--> live (new events are pushed)
///
/// Any state can end in Closed. The connection deletes itself once its socket is gone.
class ClientConnection : public QObject {
    Q_OBJECT
public:
    enum class State { AwaitingHello, AwaitingAuth, Authenticating, Authenticated, Closed };

    ClientConnection(QWebSocket* socket, ChatServer* server);
    ~ClientConnection() override;

    /// Sends every event of this user committed after the connection's cursor.
    void pushNewEvents();

    /// Closes the socket with a close code telling the client to come back later.
    void closeForShutdown();

private:
    void handleBinaryMessage(const QByteArray& frame);
    void handleTextMessage(const QString& text);
    void handleDisconnected();

    void handleHello(quint64 requestId, const v1::Hello& hello);
    void handleRegister(quint64 requestId, const v1::Register& request);
    void handleLogin(quint64 requestId, const v1::Login& request);
    void handleResume(quint64 requestId, const v1::Resume& request);
    void handleSend(quint64 requestId, const v1::SendMessage& request);
    void handleSync(quint64 requestId, const v1::SyncRequest& request);

    /// Creates a device for a user whose password was just checked, and answers.
    void finishDeviceLogin(quint64 requestId, qint64 userId, const QString& userName,
        const QString& deviceName);
    void becomeAuthenticated(quint64 requestId, qint64 userId, const QString& userName,
        quint64 deviceId, const QByteArray& newToken);

    /// Sends one batch of events after `afterOffset`, answering `requestId` (0 for a push), and
    /// turns the connection live when the batch reaches the end of the log. Returns whether it did.
    bool streamEvents(quint64 requestId, quint64 afterOffset, int limit);

    void send(const v1::Envelope& envelope);
    void sendError(quint64 requestId, int code, const QString& message,
        const QByteArray& messageId = {});
    void closeWithError(int code, const QString& message, int closeCode);

    QWebSocket* m_socket;
    ChatServer* m_server;
    State m_state = State::AwaitingHello;
    qint64 m_userId = 0;
    QString m_userName;
    quint64 m_deviceId = 0;
    bool m_live = false;
    quint64 m_cursor = 0; ///< newest offset sent to this connection while live
};

} // namespace ferry::server
