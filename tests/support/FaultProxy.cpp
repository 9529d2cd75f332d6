#include "tests/support/FaultProxy.h"

#include "core/FrameCodec.h"

#include <QHostAddress>
#include <QPointer>
#include <QTcpSocket>

#include <optional>

#include "ferry.pb.h"

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

struct FaultProxy::Link {
    int number = 0;
    ProxyFault fault;
    QPointer<QTcpSocket> client;
    QPointer<QTcpSocket> server;
    QByteArray fromClient; ///< received and not yet forwarded
    QByteArray fromServer;
    bool clientUpgraded = false; ///< the HTTP request has gone; frames follow
    bool serverUpgraded = false;
    int serverFramesForwarded = 0;
    bool cut = false;
};

FaultProxy::FaultProxy(quint16 serverPort, QObject* parent)
    : QObject(parent)
    , m_serverPort(serverPort)
{
    connect(&m_server, &QTcpServer::newConnection, this, &FaultProxy::handleNewConnection);
}

FaultProxy::~FaultProxy()
{
    // Torn down without signals: whoever listened to them may be gone already.
    for (const std::unique_ptr<Link>& link : m_links) {
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
        link.server = new QTcpSocket(this);

        connect(client, &QTcpSocket::readyRead, this, [this, &link] { forwardFromClient(link); });
        connect(
            link.server, &QTcpSocket::readyRead, this, [this, &link] { forwardFromServer(link); });
        // A side that goes away takes the other with it, as a router's would, except on a
        // stalled link: there nothing gets through, not even the news that one end is gone.
        connect(client, &QTcpSocket::disconnected, this, [&link] {
            if (link.fault.kind != ProxyFault::Kind::Stall && link.server) {
                link.server->disconnectFromHost();
            }
        });
        connect(link.server, &QTcpSocket::disconnected, this, [this, &link] {
            forwardFromServer(link);
            if (link.fault.kind != ProxyFault::Kind::Stall && link.client) {
                link.client->disconnectFromHost();
            }
        });
        connect(link.server, &QTcpSocket::errorOccurred, this, [&link] {
            // The server is not there: the client sees its connection drop, as it would if it
            // had dialled the server itself.
            if (link.server->state() != QAbstractSocket::ConnectedState && link.client
                && link.fault.kind != ProxyFault::Kind::Stall) {
                link.client->disconnectFromHost();
            }
        });

        // Bytes written while the connection is still being made wait in the socket's buffer.
        link.server->connectToHost(QHostAddress::LocalHost, m_serverPort);
        Q_EMIT connectionAccepted(link.number);
        forwardFromClient(link);
    }
}

void FaultProxy::forwardFromClient(Link& link)
{
    if (!link.client || link.cut) {
        return;
    }
    link.fromClient += link.client->readAll();
    if (!link.clientUpgraded) {
        if (link.fault.kind == ProxyFault::Kind::Stall) {
            link.fromClient.clear();
            return;
        }
        link.clientUpgraded = passHandshake(&link.fromClient, link.server);
        if (!link.clientUpgraded) {
            return;
        }
    }
    while (const std::optional<WireMessage> message = peekMessage(link.fromClient)) {
        const QByteArray bytes = link.fromClient.left(message->size);
        link.fromClient.remove(0, message->size);
        if (link.fault.kind != ProxyFault::Kind::Stall) {
            link.server->write(bytes);
        }
        Q_EMIT clientFrame(link.number, describeMessage(*message));
        if (link.cut) {
            return;
        }
    }
}

void FaultProxy::forwardFromServer(Link& link)
{
    if (!link.server || link.cut) {
        return;
    }
    link.fromServer += link.server->readAll();
    if (!link.serverUpgraded) {
        if (link.fault.kind == ProxyFault::Kind::Stall) {
            link.fromServer.clear();
            return;
        }
        link.serverUpgraded = passHandshake(&link.fromServer, link.client);
        if (!link.serverUpgraded) {
            return;
        }
    }
    while (const std::optional<WireMessage> message = peekMessage(link.fromServer)) {
        const QByteArray bytes = link.fromServer.left(message->size);
        link.fromServer.remove(0, message->size);
        const QString payload = describeMessage(*message);

        switch (link.fault.kind) {
        case ProxyFault::Kind::Stall:
            Q_EMIT serverFrame(link.number, payload);
            continue;
        case ProxyFault::Kind::CutBeforeSendAck:
            if (payload == u"send_ack") {
                Q_EMIT serverFrame(link.number, payload);
                cut(link, QStringLiteral("dropped the server's first SendAck"));
                return;
            }
            break;
        case ProxyFault::Kind::CutAfterFrames:
            if (link.serverFramesForwarded >= link.fault.frames) {
                Q_EMIT serverFrame(link.number, payload);
                cut(link, u"cut after " + QString::number(link.fault.frames) + u" frames");
                return;
            }
            break;
        case ProxyFault::Kind::Pass:
            break;
        }

        link.client->write(bytes);
        ++link.serverFramesForwarded;
        Q_EMIT serverFrame(link.number, payload);
        if (link.cut) {
            return;
        }
        if (link.fault.kind == ProxyFault::Kind::CutAfterFrames
            && link.serverFramesForwarded >= link.fault.frames) {
            cut(link, u"cut after " + QString::number(link.fault.frames) + u" frames");
            return;
        }
    }
}

void FaultProxy::cut(Link& link, const QString& why)
{
    link.cut = true;
    link.fromClient.clear();
    link.fromServer.clear();
    // The client still gets every frame forwarded before the cut, then the end of the stream;
    // whatever the server sent after it is thrown away.
    if (link.client) {
        link.client->disconnectFromHost();
    }
    if (link.server) {
        link.server->abort();
    }
    Q_EMIT linkCut(link.number, why);
}

} // namespace ferry::test
