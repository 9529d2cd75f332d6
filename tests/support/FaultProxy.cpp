#include "tests/support/FaultProxy.h"

#include "core/FrameCodec.h"
#include "ferry.pb.h"

#include <QHash>
#include <QHostAddress>
#include <QPointer>
#include <QRandomGenerator>
#include <QTcpSocket>
#include <QTimer>

#include <algorithm>
#include <deque>
#include <optional>

namespace ferry::test {

namespace {

    // RFC 6455 opcodes; 0x8 and above are control frames, which are never fragmented.
    constexpr int OpText = 0x1;
    constexpr int OpClose = 0x8;
    constexpr int OpPing = 0x9;
    constexpr int OpPong = 0xa;

    struct WireFrame {
        qsizetype size = 0; ///< header and payload, as on the wire
        bool final = false;
        int opcode = 0;
        QByteArray payload; ///< unmasked
    };

    /// The frame that starts at `offset` in `buffer`, or nothing while it has not fully arrived.
    std::optional<WireFrame> peekFrame(const QByteArray& buffer, qsizetype offset)
    {
        const qsizetype available = buffer.size() - offset;
        const auto byte = [&](qsizetype i) { return static_cast<quint8>(buffer.at(offset + i)); };
        if (available < 2) {
            return std::nullopt;
        }
        WireFrame frame;
        frame.final = (byte(0) & 0x80) != 0;
        frame.opcode = byte(0) & 0x0f;
        const bool masked = (byte(1) & 0x80) != 0;
        quint64 length = byte(1) & 0x7f;
        qsizetype header = 2;
        if (length == 126) {
            if (available < 4) {
                return std::nullopt;
            }
            length = (quint64(byte(2)) << 8) | byte(3);
            header = 4;
        } else if (length == 127) {
            if (available < 10) {
                return std::nullopt;
            }
            length = 0;
            for (qsizetype i = 2; i < 10; ++i) {
                length = (length << 8) | byte(i);
            }
            header = 10;
        }
        const qsizetype maskAt = header;
        if (masked) {
            header += 4;
        }
        if (quint64(available) < quint64(header) + length) {
            return std::nullopt;
        }
        frame.size = header + static_cast<qsizetype>(length);
        frame.payload = buffer.mid(offset + header, static_cast<qsizetype>(length));
        if (masked) {
            for (qsizetype i = 0; i < frame.payload.size(); ++i) {
                frame.payload[i] = static_cast<char>(frame.payload[i] ^ byte(maskAt + i % 4));
            }
        }
        return frame;
    }

    /// One whole message at the start of a buffer: its fragments, with any control frame the
    /// sender slipped between them.
    struct WireMessage {
        qsizetype size = 0;
        int opcode = 0;
        QByteArray payload;
    };

    std::optional<WireMessage> peekMessage(const QByteArray& buffer)
    {
        WireMessage message;
        while (true) {
            const std::optional<WireFrame> frame = peekFrame(buffer, message.size);
            if (!frame) {
                return std::nullopt;
            }
            message.size += frame->size;
            if (frame->opcode >= OpClose) {
                if (message.opcode == 0) {
                    message.opcode = frame->opcode;
                    message.payload = frame->payload;
                    return message;
                }
                continue; // a ping between two fragments travels with them
            }
            if (message.opcode == 0) {
                message.opcode = frame->opcode;
            }
            message.payload += frame->payload;
            if (frame->final) {
                return message;
            }
        }
    }

    QString describeMessage(const WireMessage& message)
    {
        switch (message.opcode) {
        case OpText:
            return QStringLiteral("text");
        case OpClose:
            return QStringLiteral("close");
        case OpPing:
            return QStringLiteral("ping");
        case OpPong:
            return QStringLiteral("pong");
        default:
            break;
        }
        v1::Envelope envelope;
        if (!decodeFrame(message.payload, &envelope)) {
            return QStringLiteral("undecodable");
        }
        const google::protobuf::FieldDescriptor* field
            = v1::Envelope::descriptor()->FindFieldByNumber(envelope.payload_case());
        return field ? QString::fromStdString(field->name()) : QStringLiteral("unknown");
    }

    /// Passes the HTTP upgrade request or response on once it is whole; true when it has gone.
    bool passHandshake(QByteArray* buffer, QTcpSocket* to)
    {
        const qsizetype end = buffer->indexOf("\r\n\r\n");
        if (end < 0) {
            return false;
        }
        to->write(buffer->left(end + 4));
        buffer->remove(0, end + 4);
        return true;
    }

} // namespace

/// One direction of a connection: the bytes read and not yet forwarded, the frames held back by
/// a delay, and what has gone through so far.
struct FaultProxy::Lane {
    struct Held {
        qint64 releaseAtMs = 0;
        qint64 arrivedMs = 0;
        QByteArray bytes;
        QString payload;
        int copies = 1;
        bool closeAfter = false; ///< not a frame: the end of the stream, in its place in line
    };

    ProxyDirection direction = ProxyDirection::ToServer;
    QPointer<QTcpSocket> to;
    QByteArray buffer; ///< received and not yet forwarded
    bool upgraded = false; ///< the HTTP request (or answer) has gone; frames follow
    QHash<QString, int> seen; ///< whole frames by payload name
    int framesForwarded = 0;
    qint64 bytesForwarded = 0; ///< frame bytes, after the upgrade
    std::deque<Held> held;
    qint64 lastReleaseAtMs = 0; ///< no frame leaves before the one ahead of it
    QTimer timer;
};

struct FaultProxy::Link {
    int number = 0;
    ProxyFault fault;
    QPointer<QTcpSocket> client;
    QPointer<QTcpSocket> server;
    Lane toServer;
    Lane toClient;
    bool cut = false;

    bool stalled() const { return fault.kind == ProxyFault::Kind::Stall; }
};

FaultProxy::FaultProxy(quint16 serverPort, QObject* parent)
    : QObject(parent)
    , m_serverPort(serverPort)
{
    connect(&m_server, &QTcpServer::newConnection, this, &FaultProxy::handleNewConnection);
    m_clock.start();
}

FaultProxy::~FaultProxy()
{
    // Torn down without signals: whoever listened to them may be gone already.
    for (const std::unique_ptr<Link>& link : m_links) {
        link->toServer.timer.stop();
        link->toClient.timer.stop();
        for (QTcpSocket* socket : { link->client.data(), link->server.data() }) {
            if (socket) {
                socket->disconnect(this);
                socket->abort();
            }
        }
    }
}

bool FaultProxy::listen() { return m_server.listen(QHostAddress::LocalHost, 0); }

QUrl FaultProxy::url() const
{
    QUrl url;
    url.setScheme(QStringLiteral("ws"));
    url.setHost(QStringLiteral("127.0.0.1"));
    url.setPort(m_server.serverPort());
    return url;
}

void FaultProxy::applyToOpenConnections(ProxyFault fault)
{
    for (const std::unique_ptr<Link>& link : m_links) {
        if (!link->cut && link->client
            && link->client->state() == QAbstractSocket::ConnectedState) {
            link->fault = fault;
        }
    }
}

void FaultProxy::handleNewConnection()
{
    while (QTcpSocket* client = m_server.nextPendingConnection()) {
        auto owned = std::make_unique<Link>();
        Link& link = *owned;
        m_links.push_back(std::move(owned));
        link.number = static_cast<int>(m_links.size());
        link.fault = m_plan.isEmpty() ? m_defaultFault : m_plan.takeFirst();
        link.client = client;
        Q_EMIT connectionAccepted(link.number);

        if (link.fault.kind == ProxyFault::Kind::CloseAtOnce) {
            link.cut = true;
            client->disconnectFromHost();
            Q_EMIT linkCut(link.number, QStringLiteral("closed at once"));
            continue;
        }

        link.server = new QTcpSocket(this);
        link.toServer.direction = ProxyDirection::ToServer;
        link.toServer.to = link.server;
        link.toClient.direction = ProxyDirection::ToClient;
        link.toClient.to = client;
        for (Lane* lane : { &link.toServer, &link.toClient }) {
            lane->timer.setSingleShot(true);
            lane->timer.setTimerType(Qt::PreciseTimer);
            connect(&lane->timer, &QTimer::timeout, this,
                [this, &link, lane] { release(link, *lane); });
        }

        connect(client, &QTcpSocket::readyRead, this, [this, &link] { forwardFromClient(link); });
        connect(
            link.server, &QTcpSocket::readyRead, this, [this, &link] { forwardFromServer(link); });
        // A side that goes away takes the other with it, as a router's would, once the frames
        // still on their way have arrived; except on a stalled link: there nothing gets
        // through, not even the news that one end is gone.
        connect(client, &QTcpSocket::disconnected, this, [this, &link] {
            if (!link.stalled()) {
                closeAfterLane(link, link.toServer);
            }
        });
        connect(link.server, &QTcpSocket::disconnected, this, [this, &link] {
            forwardFromServer(link);
            if (!link.stalled()) {
                closeAfterLane(link, link.toClient);
            }
        });
        connect(link.server, &QTcpSocket::errorOccurred, this, [this, &link] {
            // The server is not there: the client sees its connection drop, as it would if it
            // had dialled the server itself.
            if (link.server->state() != QAbstractSocket::ConnectedState && !link.stalled()) {
                closeAfterLane(link, link.toClient);
            }
        });

        // Bytes written while the connection is still being made wait in the socket's buffer.
        link.server->connectToHost(QHostAddress::LocalHost, m_serverPort);
        forwardFromClient(link);
    }
}

void FaultProxy::forwardFromClient(Link& link)
{
    if (!link.client || !link.server || link.cut) {
        return;
    }
    Lane& lane = link.toServer;
    lane.buffer += link.client->readAll();
    if (!lane.upgraded) {
        if (link.stalled()) {
            lane.buffer.clear();
            return;
        }
        if (link.fault.kind == ProxyFault::Kind::RefuseHandshake) {
            if (lane.buffer.contains("\r\n\r\n")) {
                const QByteArray status = QByteArray::number(link.fault.httpStatus);
                link.client->write("HTTP/1.1 " + status
                    + " Refused by FaultProxy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                cut(link, u"refused the upgrade with HTTP " + QString::fromLatin1(status));
            }
            return;
        }
        lane.upgraded = passHandshake(&lane.buffer, link.server);
        if (!lane.upgraded) {
            return;
        }
    }
    forwardFrames(link, lane);
}

void FaultProxy::forwardFromServer(Link& link)
{
    if (!link.server || !link.client || link.cut) {
        return;
    }
    Lane& lane = link.toClient;
    lane.buffer += link.server->readAll();
    if (!lane.upgraded) {
        if (link.stalled()) {
            lane.buffer.clear();
            return;
        }
        if (link.fault.kind == ProxyFault::Kind::CutDuringHandshake) {
            const qsizetype end = lane.buffer.indexOf("\r\n\r\n");
            if (end >= 0) {
                link.client->write(lane.buffer.left((end + 4) / 2));
                cut(link, QStringLiteral("cut half-way through the server's upgrade answer"));
            }
            return;
        }
        lane.upgraded = passHandshake(&lane.buffer, link.client);
        if (!lane.upgraded) {
            return;
        }
    }
    forwardFrames(link, lane);
}

void FaultProxy::forwardFrames(Link& link, Lane& lane)
{
    using Kind = ProxyFault::Kind;
    const bool toClient = lane.direction == ProxyDirection::ToClient;
    const auto announce = [&](const QString& payload) {
        if (toClient) {
            Q_EMIT serverFrame(link.number, payload);
        } else {
            Q_EMIT clientFrame(link.number, payload);
        }
    };

    while (const std::optional<WireMessage> message = peekMessage(lane.buffer)) {
        const QByteArray bytes = lane.buffer.left(message->size);
        lane.buffer.remove(0, message->size);
        const QString payload = describeMessage(*message);
        const int seen = ++lane.seen[payload];
        const ProxyFault& fault = link.fault;
        const bool aimed = fault.aims(lane.direction);
        const bool nthSendAck = toClient && payload == u"send_ack" && seen == fault.nth;

        if (link.stalled()) {
            announce(payload);
            continue;
        }
        if (fault.kind == Kind::CutBeforeServerFrame && toClient && payload == fault.payload
            && seen == fault.nth) {
            announce(payload);
            cut(link,
                u"dropped the server's " + payload + u" number " + QString::number(fault.nth));
            return;
        }
        if (fault.kind == Kind::CutAfterFrames && toClient && lane.framesForwarded >= fault.count) {
            announce(payload);
            cut(link, u"cut after " + QString::number(fault.count) + u" frames");
            return;
        }
        if (fault.kind == Kind::CutAfterBytes && aimed
            && lane.bytesForwarded + bytes.size() >= fault.count) {
            // The receiver gets the start of this frame, and then the end of the stream.
            const qint64 part = fault.count - lane.bytesForwarded;
            lane.to->write(bytes.left(part));
            lane.bytesForwarded += part;
            announce(payload);
            cut(link, u"cut after " + QString::number(fault.count) + u" bytes");
            return;
        }

        int copies = 1;
        if (fault.kind == Kind::DuplicateFrame && aimed && payload == fault.payload
            && seen == fault.nth) {
            copies = 2;
        }
        forward(link, lane, bytes, payload, copies);
        announce(payload);
        if (link.cut) {
            return;
        }
        if ((fault.kind == Kind::CutAfterSendAck && nthSendAck)
            || (fault.kind == Kind::CutAfterFrames && toClient
                && lane.framesForwarded >= fault.count)) {
            const QString why = fault.kind == Kind::CutAfterSendAck
                ? QString(u"cut after the server's SendAck number " + QString::number(fault.nth))
                : QString(u"cut after " + QString::number(fault.count) + u" frames");
            cut(link, why);
            return;
        }
    }
}

void FaultProxy::forward(
    Link& link, Lane& lane, const QByteArray& bytes, const QString& payload, int copies)
{
    using Kind = ProxyFault::Kind;
    const ProxyFault& fault = link.fault;
    qint64 holdMs = 0;
    if (fault.kind == Kind::Delay && fault.aims(lane.direction)) {
        holdMs = fault.delayMs
            + (fault.jitterMs > 0 ? QRandomGenerator::global()->bounded(fault.jitterMs + 1) : 0);
    } else if (fault.kind == Kind::HoldSendAck && lane.direction == ProxyDirection::ToClient
        && payload == u"send_ack" && lane.seen.value(payload) == fault.nth) {
        holdMs = fault.delayMs;
    }
    ++lane.framesForwarded;
    lane.bytesForwarded += bytes.size();

    const qint64 now = m_clock.elapsed();
    if (holdMs == 0 && lane.held.empty()) {
        for (int i = 0; i < copies; ++i) {
            lane.to->write(bytes);
        }
        Q_EMIT frameForwarded(link.number, lane.direction, payload, 0, copies);
        return;
    }
    // A frame behind a held one waits for it, so a direction never reorders.
    Lane::Held held;
    held.releaseAtMs = std::max(now + holdMs, lane.lastReleaseAtMs);
    held.arrivedMs = now;
    held.bytes = bytes;
    held.payload = payload;
    held.copies = copies;
    lane.lastReleaseAtMs = held.releaseAtMs;
    lane.held.push_back(std::move(held));
    if (!lane.timer.isActive()) {
        lane.timer.start(
            static_cast<int>(std::max<qint64>(0, lane.held.front().releaseAtMs - now)));
    }
}

void FaultProxy::release(Link& link, Lane& lane)
{
    const qint64 now = m_clock.elapsed();
    while (!lane.held.empty() && lane.held.front().releaseAtMs <= now && !link.cut) {
        const Lane::Held held = std::move(lane.held.front());
        lane.held.pop_front();
        // A receiver that went away meanwhile misses what was still on its way to it.
        if (!lane.to || lane.to->state() != QAbstractSocket::ConnectedState) {
            continue;
        }
        if (held.closeAfter) {
            lane.to->disconnectFromHost();
            continue;
        }
        for (int i = 0; i < held.copies; ++i) {
            lane.to->write(held.bytes);
        }
        Q_EMIT frameForwarded(
            link.number, lane.direction, held.payload, now - held.arrivedMs, held.copies);
    }
    if (!lane.held.empty() && !link.cut) {
        lane.timer.start(
            static_cast<int>(std::max<qint64>(0, lane.held.front().releaseAtMs - now)));
    }
}

void FaultProxy::closeAfterLane(Link& link, Lane& lane)
{
    if (!lane.to) {
        return;
    }
    if (lane.held.empty() || link.cut) {
        lane.to->disconnectFromHost();
        return;
    }
    Lane::Held end;
    end.releaseAtMs = lane.lastReleaseAtMs;
    end.closeAfter = true;
    lane.held.push_back(std::move(end));
}

void FaultProxy::cut(Link& link, const QString& why)
{
    link.cut = true;
    for (Lane* lane : { &link.toServer, &link.toClient }) {
        lane->buffer.clear();
        lane->held.clear();
        lane->timer.stop();
    }
    // The client still gets every frame forwarded before the cut, then the end of the stream;
    // whatever the server sent after it is thrown away. Only a cut in the middle of what the
    // client sent lets the server have the bytes forwarded before it.
    if (link.client) {
        link.client->disconnectFromHost();
    }
    if (link.server) {
        const bool keepWhatWentToServer = link.fault.kind == ProxyFault::Kind::CutAfterBytes
            && link.fault.direction == ProxyDirection::ToServer;
        if (keepWhatWentToServer) {
            link.server->disconnectFromHost();
        } else {
            link.server->abort();
        }
    }
    Q_EMIT linkCut(link.number, why);
}

} // namespace ferry::test
