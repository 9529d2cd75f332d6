#pragma once

#include <QElapsedTimer>
#include <QList>
#include <QObject>
#include <QString>
#include <QTcpServer>
#include <QUrl>

#include <memory>
#include <vector>

namespace ferry::test {

/// Which way bytes travel through the proxy; a fault may be aimed at one or both.
enum class ProxyDirection {
    ToServer = 1, ///< what the client sends
    ToClient = 2, ///< what the server sends
    Both = 3,
};

/// What the proxy does to one connection. Built with the factory functions below; `nth` counts
/// from 1 within the connection, and frames are named as in FaultProxy's signals ("send",
/// "send_ack", "events", …).
struct ProxyFault {
    enum class Kind {
        Pass, ///< forward everything both ways
        CutBeforeServerFrame, ///< drop the server's nth frame named `payload`, then close
        CutAfterSendAck, ///< forward the server's nth SendAck, then close both sides
        CutAfterFrames, ///< forward `count` frames from the server, then close both sides
        CutAfterBytes, ///< forward `count` bytes after the upgrade in `direction`, then close
        Stall, ///< forward nothing either way and keep both TCP connections open
        Delay, ///< hold every frame in `direction` for delayMs plus up to jitterMs, in order
        HoldSendAck, ///< hold the server's nth SendAck, and what follows it, for delayMs
        DuplicateFrame, ///< forward the nth frame named `payload` in `direction` twice
        RefuseHandshake, ///< answer the HTTP upgrade with `httpStatus`, then close
        CutDuringHandshake, ///< forward half of the server's upgrade answer, then close
        CloseAtOnce, ///< accept the TCP connection and close it before a byte is read
    };

    Kind kind = Kind::Pass;
    int count = 0; ///< frames or bytes, for the cuts after a count
    int nth = 1;
    ProxyDirection direction = ProxyDirection::Both;
    int delayMs = 0;
    int jitterMs = 0;
    QString payload;
    int httpStatus = 0;

    static ProxyFault pass() { return {}; }
    static ProxyFault cutBeforeSendAck(int nth = 1)
    {
        return cutBeforeServerFrame(QStringLiteral("send_ack"), nth);
    }
    /// For instance "events": the link dies before the answer to the client's sync request.
    static ProxyFault cutBeforeServerFrame(const QString& payload, int nth = 1)
    {
        return make(Kind::CutBeforeServerFrame, [&](ProxyFault& f) {
            f.payload = payload;
            f.nth = nth;
        });
    }
    static ProxyFault cutAfterSendAck(int nth = 1)
    {
        return make(Kind::CutAfterSendAck, [&](ProxyFault& f) { f.nth = nth; });
    }
    static ProxyFault cutAfterFrames(int frames)
    {
        return make(Kind::CutAfterFrames, [&](ProxyFault& f) { f.count = frames; });
    }
    /// `direction` is ToServer or ToClient; the last frame through is cut short mid-way.
    static ProxyFault cutAfterBytes(int bytes, ProxyDirection direction)
    {
        return make(Kind::CutAfterBytes, [&](ProxyFault& f) {
            f.count = bytes;
            f.direction = direction;
        });
    }
    static ProxyFault stall()
    {
        return make(Kind::Stall, [](ProxyFault&) {});
    }
    static ProxyFault delay(
        int baseMs, int jitterMs = 0, ProxyDirection direction = ProxyDirection::Both)
    {
        return make(Kind::Delay, [&](ProxyFault& f) {
            f.delayMs = baseMs;
            f.jitterMs = jitterMs;
            f.direction = direction;
        });
    }
    static ProxyFault holdSendAck(int ms, int nth = 1)
    {
        return make(Kind::HoldSendAck, [&](ProxyFault& f) {
            f.delayMs = ms;
            f.nth = nth;
            f.direction = ProxyDirection::ToClient;
        });
    }
    /// "send" from the client, or "events", "send_ack" from the server.
    static ProxyFault duplicateClientFrame(const QString& payload, int nth = 1)
    {
        return duplicate(payload, nth, ProxyDirection::ToServer);
    }
    static ProxyFault duplicateServerFrame(const QString& payload, int nth = 1)
    {
        return duplicate(payload, nth, ProxyDirection::ToClient);
    }
    static ProxyFault refuseHandshake(int httpStatus = 503)
    {
        return make(Kind::RefuseHandshake, [&](ProxyFault& f) { f.httpStatus = httpStatus; });
    }
    static ProxyFault cutDuringHandshake()
    {
        return make(Kind::CutDuringHandshake, [](ProxyFault&) {});
    }
    static ProxyFault closeAtOnce()
    {
        return make(Kind::CloseAtOnce, [](ProxyFault&) {});
    }

    /// True when the fault concerns bytes travelling `way`.
    bool aims(ProxyDirection way) const
    {
        return (static_cast<int>(direction) & static_cast<int>(way)) != 0;
    }

private:
    template <typename Setup> static ProxyFault make(Kind kind, Setup setup)
    {
        ProxyFault fault;
        fault.kind = kind;
        setup(fault);
        return fault;
    }
    static ProxyFault duplicate(const QString& payload, int nth, ProxyDirection direction)
    {
        return make(Kind::DuplicateFrame, [&](ProxyFault& f) {
            f.payload = payload;
            f.nth = nth;
            f.direction = direction;
        });
    }
};

/// A TCP proxy in the test's own process, between a client and the real server on loopback,
/// that breaks links in the ways networks do. It reads the WebSocket framing of both directions
/// (after the HTTP upgrade) so that it forwards and cuts only at frame boundaries (except where a
/// fault cuts after a number of bytes), and decodes binary frames as Envelopes, so a fault can be
/// aimed at one kind of frame.
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
    /// A frame was written on to its receiver `heldMs` after it arrived whole at the proxy
    /// (0 unless a fault holds frames back), `copies` times (2 for a duplicated frame).
    void frameForwarded(int connection, ProxyDirection direction, const QString& payload,
        qint64 heldMs, int copies);
    /// The proxy closed both sides of a connection on purpose.
    void linkCut(int connection, const QString& why);

private:
    struct Link;
    struct Lane;

    void handleNewConnection();
    void forwardFromClient(Link& link);
    void forwardFromServer(Link& link);
    /// Forwards, holds, doubles or cuts each whole frame waiting in the lane, as the fault says.
    void forwardFrames(Link& link, Lane& lane);
    /// Hands a whole frame to its lane: written at once, or held back as the fault says.
    void forward(
        Link& link, Lane& lane, const QByteArray& bytes, const QString& payload, int copies);
    void release(Link& link, Lane& lane);
    /// Closes the lane's receiver once whatever the lane still holds has been written to it.
    void closeAfterLane(Link& link, Lane& lane);
    void cut(Link& link, const QString& why);

    QTcpServer m_server;
    quint16 m_serverPort;
    QList<ProxyFault> m_plan;
    ProxyFault m_defaultFault;
    std::vector<std::unique_ptr<Link>> m_links;
    QElapsedTimer m_clock;
};

} // namespace ferry::test
