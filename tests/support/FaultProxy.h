#pragma once

#include <QList>
#include <QObject>
#include <QString>
#include <QTcpServer>
#include <QUrl>

#include <memory>
#include <vector>

namespace ferry::test {

/// What the proxy does to one connection.
struct ProxyFault {
    enum class Kind {
        Pass, ///< forward everything both ways
        CutBeforeSendAck, ///< drop the server's first SendAck, then close both sides
        CutAfterFrames, ///< forward `frames` frames from the server, then close both sides
        Stall, ///< forward nothing either way and keep both TCP connections open
    };

    Kind kind = Kind::Pass;
    int frames = 0;

    static ProxyFault pass() { return {}; }
    static ProxyFault cutBeforeSendAck() { return { Kind::CutBeforeSendAck, 0 }; }
    static ProxyFault cutAfterFrames(int frames) { return { Kind::CutAfterFrames, frames }; }
    static ProxyFault stall() { return { Kind::Stall, 0 }; }
};

/// A TCP proxy in the test's own process, between a client and the real server on loopback,
/// that breaks links in the ways networks do. It reads the WebSocket framing of both directions
/// (after the HTTP upgrade) so that it forwards and cuts only at frame boundaries, and decodes the
/// server's binary frames as Envelopes, so a fault can be aimed at one kind of frame.
///
/// A frame here is a whole WebSocket message: the fragments of a message are held back until its
/// last one has arrived, then forwarded together, and counted once.
///
/// Each accepted connection takes the next fault of planConnections(), or the default once the
/// plan is used up. Every connection is numbered from 1 in the order accepted.
class FaultProxy : public QObject {
    Q_OBJECT
public:
    explicit FaultProxy(quint16 serverPort, QObject* parent = nullptr);
    ~FaultProxy() override;

    /// Listens on 127.0.0.1 on a port the system picks; false, with errorString(), if it cannot.
    bool listen();
    /// ws://127.0.0.1:PORT, where clients connect to reach the server through the proxy.
    QUrl url() const;
    QString errorString() const { return m_server.errorString(); }

    /// Where connections accepted from now on are forwarded, for a server that moved.
    void setServerPort(quint16 port) { m_serverPort = port; }

    /// The faults of the next connections accepted, one each in order.
    void planConnections(const QList<ProxyFault>& faults) { m_plan = faults; }
    /// The fault of connections accepted once the plan is used up; passing, unless set.
    void setDefaultFault(ProxyFault fault) { m_defaultFault = fault; }
    /// Changes the fault of every connection open now, for instance to stall a live link.
    void applyToOpenConnections(ProxyFault fault);

    /// Connections accepted so far.
    int acceptedCount() const { return static_cast<int>(m_links.size()); }

Q_SIGNALS:
    void connectionAccepted(int connection);
    /// A whole frame arrived from the server (forwarded or not). `payload` is the name of the
    /// Envelope's payload field ("send_ack", "events"), or "ping", "pong", "close" for control
    /// frames, "text" for a text frame, "undecodable" for bytes that are no Envelope.
    void serverFrame(int connection, const QString& payload);
    /// The same for a whole frame from the client ("hello", "send", "sync", …).
    void clientFrame(int connection, const QString& payload);
    /// The proxy closed both sides of a connection on purpose.
    void linkCut(int connection, const QString& why);

private:
    struct Link;

    void handleNewConnection();
    void forwardFromClient(Link& link);
    void forwardFromServer(Link& link);
    void cut(Link& link, const QString& why);

    QTcpServer m_server;
    quint16 m_serverPort;
    QList<ProxyFault> m_plan;
    ProxyFault m_defaultFault;
    std::vector<std::unique_ptr<Link>> m_links;
};

} // namespace ferry::test
