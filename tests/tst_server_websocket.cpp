// The server's WebSocket transport (server-stub/WebSocketConnection and WebSocketFraming), byte
// by byte: a raw TCP client in this process writes hand-made HTTP requests and frames to the real
// ferry-server binary on loopback and checks what RFC 6455 and docs/protocol.md promise: the
// handshake's answer or its HTTP error, the close code of each framing violation, fragments
// reassembled, limits, ping and close, frames split anywhere or packed together, and a peer that
// vanishes mid-frame.

#include "core/FrameCodec.h"
#include "tests/support/ServerProcess.h"

#include <QCryptographicHash>
#include <QElapsedTimer>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QTest>
#include <QtEndian>

#include "ferry.pb.h"

using namespace ferry;
using ferry::test::ServerProcess;

namespace {

constexpr int WaitMs = 10'000;
constexpr quint8 Continuation = 0x0;
constexpr quint8 Text = 0x1;
constexpr quint8 Binary = 0x2;
constexpr quint8 Close = 0x8;
constexpr quint8 Ping = 0x9;

/// The example key of RFC 6455 section 1.3 and the accept value the RFC gives for it.
const QByteArray ExampleKey = QByteArrayLiteral("dGhlIHNhbXBsZSBub25jZQ==");
const QByteArray ExampleAccept = QByteArrayLiteral("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

QByteArray upgradeRequest(const QByteArray& extraHeaders = {})
{
    return "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: "
        + ExampleKey + "\r\nSec-WebSocket-Version: 13\r\n" + extraHeaders + "\r\n";
}

/// One client frame: masked unless told otherwise, with the given first byte's bits.
QByteArray clientFrame(quint8 opcode, const QByteArray& payload, bool final = true,
    bool masked = true, quint8 reservedBits = 0)
{
    QByteArray frame;
    frame.append(static_cast<char>((final ? 0x80 : 0) | reservedBits | opcode));
    const char maskBit = masked ? char(0x80) : char(0);
    if (payload.size() < 126) {
        frame.append(static_cast<char>(maskBit | payload.size()));
    } else if (payload.size() <= 0xFFFF) {
        frame.append(static_cast<char>(maskBit | 126));
        char length[2];
        qToBigEndian(static_cast<quint16>(payload.size()), length);
        frame.append(length, 2);
    } else {
        frame.append(static_cast<char>(maskBit | 127));
        char length[8];
        qToBigEndian(static_cast<quint64>(payload.size()), length);
        frame.append(length, 8);
    }
    if (!masked) {
        return frame + payload;
    }
    const QByteArray mask = QByteArrayLiteral("\x5a\x13\xc7\x80");
    frame.append(mask);
    for (qsizetype i = 0; i < payload.size(); ++i) {
        frame.append(static_cast<char>(payload[i] ^ mask[i % 4]));
    }
    return frame;
}

QByteArray envelopeBytes(const v1::Envelope& envelope) { return encodeFrame(envelope); }

QByteArray helloBytes(quint64 requestId = 1)
{
    v1::Envelope hello;
    hello.set_request_id(requestId);
    hello.mutable_hello()->set_protocol_version(ProtocolVersion);
    return envelopeBytes(hello);
}

QByteArray closePayload(int code, const QByteArray& reason = {})
{
    char bytes[2];
    qToBigEndian(static_cast<quint16>(code), bytes);
    return QByteArray(bytes, 2) + reason;
}

/// One server frame as read off the wire.
struct ServerFrame {
    quint8 opcode = 0xFF;
    QByteArray payload;
    int closeCode() const
    {
        return payload.size() >= 2 ? qFromBigEndian<quint16>(payload.constData()) : 1005;
    }
};

/// A raw TCP client speaking WebSocket by hand. Every wait is bounded.
class RawClient {
public:
    explicit RawClient(quint16 port)
    {
        m_socket.connectToHost(QStringLiteral("127.0.0.1"), port);
        m_connected = m_socket.waitForConnected(WaitMs);
    }

    bool isConnected() const { return m_connected; }
    QTcpSocket& socket() { return m_socket; }

    void write(const QByteArray& bytes)
    {
        m_socket.write(bytes);
        m_socket.flush();
    }

    /// Sends a valid upgrade request; true on a 101 with the right accept value.
    bool handshake()
    {
        write(upgradeRequest());
        const QByteArray head = readHttpHead();
        return head.startsWith("HTTP/1.1 101")
            && head.contains(QByteArray("Sec-WebSocket-Accept: " + ExampleAccept));
    }

    /// The server's HTTP answer up to its blank line (what follows stays buffered).
    QByteArray readHttpHead()
    {
        if (!fill([this] { return m_buffer.contains("\r\n\r\n"); })) {
            return {};
        }
        const qsizetype end = m_buffer.indexOf("\r\n\r\n") + 4;
        const QByteArray head = m_buffer.first(end);
        m_buffer.remove(0, end);
        return head;
    }

    /// The rest of what the server sent until it closed the connection.
    QByteArray readToEnd()
    {
        fill([] { return false; });
        return std::exchange(m_buffer, {});
    }

    /// The next frame from the server; false if none came in time.
    bool nextFrame(ServerFrame* frame)
    {
        qsizetype used = 0;
        if (!fill([&] { return parseFrame(frame, &used); })) {
            return false;
        }
        m_buffer.remove(0, used);
        return true;
    }

    /// The next binary frame decoded as an envelope, skipping control frames.
    bool nextEnvelope(v1::Envelope* envelope)
    {
        ServerFrame frame;
        while (nextFrame(&frame)) {
            if (frame.opcode == Binary) {
                return decodeFrame(frame.payload, envelope);
            }
        }
        return false;
    }

    /// Waits for a close frame (skipping others), then for the server to close the connection.
    bool expectClose(int expectedCode)
    {
        ServerFrame frame;
        while (nextFrame(&frame)) {
            if (frame.opcode == Close) {
                if (frame.closeCode() != expectedCode) {
                    qWarning() << "close code" << frame.closeCode() << "expected" << expectedCode;
                    return false;
                }
                write(clientFrame(Close, frame.payload.first(2)));
                return waitDisconnected();
            }
        }
        return false;
    }

    bool waitDisconnected()
    {
        QElapsedTimer clock;
        clock.start();
        while (m_socket.state() != QAbstractSocket::UnconnectedState && clock.elapsed() < WaitMs) {
            m_socket.waitForReadyRead(100);
            m_buffer += m_socket.readAll();
        }
        return m_socket.state() == QAbstractSocket::UnconnectedState;
    }

private:
    /// Reads until `done` holds or the connection ends or time runs out; returns `done()`.
    template <typename Done> bool fill(Done done)
    {
        QElapsedTimer clock;
        clock.start();
        while (!done()) {
            if (clock.elapsed() > WaitMs || m_socket.state() == QAbstractSocket::UnconnectedState) {
                m_buffer += m_socket.readAll();
                return done();
            }
            m_socket.waitForReadyRead(100);
            m_buffer += m_socket.readAll();
        }
        return true;
    }

    bool parseFrame(ServerFrame* frame, qsizetype* used) const
    {
        if (m_buffer.size() < 2) {
            return false;
        }
        const auto first = static_cast<quint8>(m_buffer[0]);
        const auto second = static_cast<quint8>(m_buffer[1]);
        if ((second & 0x80) != 0) {
            qWarning() << "the server masked a frame";
            return false;
        }
        qsizetype header = 2;
        quint64 length = second & 0x7F;
        if (length == 126) {
            if (m_buffer.size() < 4) {
                return false;
            }
            length = qFromBigEndian<quint16>(m_buffer.constData() + 2);
            header = 4;
        } else if (length == 127) {
            if (m_buffer.size() < 10) {
                return false;
            }
            length = qFromBigEndian<quint64>(m_buffer.constData() + 2);
            header = 10;
        }
        if (static_cast<quint64>(m_buffer.size() - header) < length) {
            return false;
        }
        frame->opcode = first & 0x0F;
        frame->payload = m_buffer.sliced(header, static_cast<qsizetype>(length));
        *used = header + static_cast<qsizetype>(length);
        return true;
    }

    QTcpSocket m_socket;
    QByteArray m_buffer;
    bool m_connected = false;
};

} // namespace

class TestServerWebSocket : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dataDir.isValid());
        // A short authentication timeout, which also bounds a handshake that never ends.
        m_server = std::make_unique<ServerProcess>(m_dataDir.path(),
            QStringList { QStringLiteral("--auth-timeout"), QStringLiteral("2") });
        QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));
    }

    void cleanupTestCase()
    {
        if (m_server && m_server->isRunning()) {
            QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
        }
    }

    void handshakeAnswersWithTheAcceptValue()
    {
        RawClient client(m_server->port());
        QVERIFY(client.isConnected());
        client.write(upgradeRequest());
        const QByteArray head = client.readHttpHead();
        QVERIFY2(head.startsWith("HTTP/1.1 101 Switching Protocols\r\n"), head.constData());
        QVERIFY(head.contains("\r\nUpgrade: websocket\r\n"));
        QVERIFY(head.contains("\r\nConnection: Upgrade\r\n"));
        QVERIFY(head.contains(QByteArray("\r\nSec-WebSocket-Accept: " + ExampleAccept + "\r\n")));

        client.write(clientFrame(Binary, helloBytes()));
        v1::Envelope welcome;
        QVERIFY(client.nextEnvelope(&welcome));
        QVERIFY(welcome.has_welcome());
    }

    void badUpgradeRequestGetsAnHttpError_data()
    {
        QTest::addColumn<QByteArray>("request");
        QTest::addColumn<QByteArray>("status");

        const QByteArray valid = upgradeRequest();
        QTest::newRow("no key") << QByteArray(valid).replace(
            QByteArray("Sec-WebSocket-Key: " + ExampleKey + "\r\n"), "")
                                << QByteArray("400");
        QTest::newRow("key of the wrong length")
            << QByteArray(valid).replace(ExampleKey, "c2hvcnQ=") << QByteArray("400");
        QTest::newRow("two keys") << upgradeRequest("Sec-WebSocket-Key: " + ExampleKey + "\r\n")
                                  << QByteArray("400");
        QTest::newRow("version 8")
            << QByteArray(valid).replace("Version: 13", "Version: 8") << QByteArray("426");
        QTest::newRow("POST") << QByteArray(valid).replace("GET /", "POST /") << QByteArray("405");
        QTest::newRow("HTTP/1.0") << QByteArray(valid).replace("HTTP/1.1", "HTTP/1.0")
                                  << QByteArray("400");
        QTest::newRow("no upgrade header")
            << QByteArray(valid).replace("Upgrade: websocket\r\n", "") << QByteArray("400");
        QTest::newRow("connection keep-alive") << QByteArray(valid).replace("Connection: Upgrade",
            "Connection: keep-alive") << QByteArray("400");
        QTest::newRow("no host") << QByteArray(valid).replace("Host: 127.0.0.1\r\n", "")
                                 << QByteArray("400");
        QTest::newRow("header line without a colon")
            << upgradeRequest("this is not a header\r\n") << QByteArray("400");
        QTest::newRow("header larger than 8 KiB")
            << upgradeRequest("X-Padding: " + QByteArray(9000, 'p') + "\r\n") << QByteArray("431");
        QTest::newRow("endless header without its blank line")
            << QByteArray("GET / HTTP/1.1\r\nX-Padding: " + QByteArray(9000, 'p'))
            << QByteArray("431");
    }

    void badUpgradeRequestGetsAnHttpError()
    {
        QFETCH(QByteArray, request);
        QFETCH(QByteArray, status);
        RawClient client(m_server->port());
        QVERIFY(client.isConnected());
        client.write(request);

        const QByteArray head = client.readHttpHead();
        QVERIFY2(head.startsWith(QByteArray("HTTP/1.1 " + status + ' ')), head.constData());
        QVERIFY(head.contains("\r\nConnection: close\r\n"));
        if (status == "426") {
            QVERIFY(head.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        }
        // The server closes its side; once this side closes too, the connection is gone.
        QVERIFY(!client.readToEnd().isEmpty()); // the reason, as the body
        client.socket().disconnectFromHost();
        QVERIFY(client.waitDisconnected());
    }

    void uppercaseAndListHeadersAreAccepted()
    {
        RawClient client(m_server->port());
        client.write("GET /ws HTTP/1.1\r\nHOST: localhost\r\nupgrade: WebSocket\r\n"
                     "connection: keep-alive, Upgrade\r\nsec-websocket-key: "
            + ExampleKey + "\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n");
        QVERIFY(client.readHttpHead().startsWith("HTTP/1.1 101"));
    }

    void framingViolationIsAProtocolError_data()
    {
        QTest::addColumn<QByteArray>("frame");
        QTest::addColumn<int>("closeCode");
        QTest::newRow("unmasked frame") << clientFrame(Binary, helloBytes(), true, false) << 1002;
        QTest::newRow("reserved data opcode 3") << clientFrame(0x3, "x") << 1002;
        QTest::newRow("reserved control opcode 11") << clientFrame(0xB, "x") << 1002;
        QTest::newRow("reserved bit 1 set")
            << clientFrame(Binary, helloBytes(), true, true, 0x40) << 1002;
        QTest::newRow("reserved bit 3 set")
            << clientFrame(Binary, helloBytes(), true, true, 0x10) << 1002;
        QTest::newRow("fragmented ping") << clientFrame(Ping, "x", false) << 1002;
        QTest::newRow("ping over 125 bytes") << clientFrame(Ping, QByteArray(126, 'p')) << 1002;
        QTest::newRow("continuation without a message") << clientFrame(Continuation, "x") << 1002;
        QTest::newRow("new message inside a fragmented one")
            << clientFrame(Binary, "ab", false) + clientFrame(Binary, "cd") << 1002;
        QTest::newRow("close frame of one byte") << clientFrame(Close, "x") << 1002;
        QTest::newRow("close frame with a reserved code")
            << clientFrame(Close, closePayload(1005)) << 1002;
    }

    void framingViolationIsAProtocolError()
    {
        QFETCH(QByteArray, frame);
        QFETCH(int, closeCode);
        RawClient client(m_server->port());
        QVERIFY(client.handshake());
        client.write(frame);
        QVERIFY(client.expectClose(closeCode));
    }

    void textFrameIsRefusedWith1003()
    {
        RawClient client(m_server->port());
        QVERIFY(client.handshake());
        client.write(clientFrame(Text, "{\"hello\": 1}"));
        v1::Envelope error;
        QVERIFY(client.nextEnvelope(&error));
        QCOMPARE(error.error().code(), v1::MALFORMED_FRAME);
        QVERIFY(client.expectClose(1003));
    }

    void fragmentedMessageIsReassembled()
    {
        RawClient client(m_server->port());
        QVERIFY(client.handshake());
        const QByteArray hello = helloBytes(7);
        QVERIFY(hello.size() >= 3);
        // Three fragments, with a ping between them: control frames may interleave.
        client.write(clientFrame(Binary, hello.first(1), false));
        client.write(clientFrame(Ping, "between"));
        client.write(clientFrame(Continuation, hello.sliced(1, 1), false));
        client.write(clientFrame(Continuation, hello.sliced(2)));

        ServerFrame pong;
        QVERIFY(client.nextFrame(&pong));
        QCOMPARE(pong.opcode, quint8(0xA));
        QCOMPARE(pong.payload, QByteArray("between"));
        v1::Envelope welcome;
        QVERIFY(client.nextEnvelope(&welcome));
        QCOMPARE(welcome.request_id(), quint64(7));
        QVERIFY(welcome.has_welcome());
    }

    void messageOverTheLimitIsRefusedWith1009_data()
    {
        QTest::addColumn<QByteArray>("frames");
        // The server's default limit is 64 KiB a message.
        QTest::newRow("one frame of 70 KiB") << clientFrame(Binary, QByteArray(70 * 1024, 'x'));
        QTest::newRow("fragments adding up to 70 KiB")
            << clientFrame(Binary, QByteArray(40 * 1024, 'x'), false)
                + clientFrame(Continuation, QByteArray(30 * 1024, 'x'));
        // Refused from its header: the server does not wait for (or keep) 1 GiB.
        QByteArray header("\x82\xff", 2);
        char length[8];
        qToBigEndian(quint64(1) << 30, length);
        QTest::newRow("a header announcing 1 GiB") << header + QByteArray(length, 8) + "mask";
    }

    void messageOverTheLimitIsRefusedWith1009()
    {
        QFETCH(QByteArray, frames);
        RawClient client(m_server->port());
        QVERIFY(client.handshake());
        client.write(frames);
        QVERIFY(client.expectClose(1009));
    }

    void messageAtTheLimitIsDelivered()
    {
        RawClient client(m_server->port());
        QVERIFY(client.handshake());
        // 64 KiB of bytes that are no envelope: it reaches the protocol, which refuses it.
        client.write(clientFrame(Binary, QByteArray(64 * 1024, '\xff')));
        v1::Envelope error;
        QVERIFY(client.nextEnvelope(&error));
        QCOMPARE(error.error().code(), v1::MALFORMED_FRAME);
        QVERIFY(client.expectClose(1002));
    }

    void pingIsAnsweredWithItsPayload()
    {
        RawClient client(m_server->port());
        QVERIFY(client.handshake());
        client.write(clientFrame(Ping, "are you there"));
        ServerFrame pong;
        QVERIFY(client.nextFrame(&pong));
        QCOMPARE(pong.opcode, quint8(0xA));
        QCOMPARE(pong.payload, QByteArray("are you there"));
    }

    void closeHandshakeFromTheClient()
    {
        RawClient client(m_server->port());
        QVERIFY(client.handshake());
        client.write(clientFrame(Close, closePayload(1000, "bye")));
        ServerFrame close;
        QVERIFY(client.nextFrame(&close));
        QCOMPARE(close.opcode, Close);
        QCOMPARE(close.closeCode(), 1000);
        // The server closes the TCP connection first (RFC 6455 section 7.1.1).
        QVERIFY(client.waitDisconnected());
    }

    void emptyCloseFrameIsAnsweredWithAnEmptyOne()
    {
        RawClient client(m_server->port());
        QVERIFY(client.handshake());
        client.write(clientFrame(Close, {}));
        ServerFrame close;
        QVERIFY(client.nextFrame(&close));
        QCOMPARE(close.opcode, Close);
        QVERIFY(close.payload.isEmpty());
        QVERIFY(client.waitDisconnected());
    }

    void everythingSplitByteByByteIsStillRead()
    {
        RawClient client(m_server->port());
        QVERIFY(client.isConnected());
        // Each byte in a segment of its own, without waiting for the last one's ACK.
        client.socket().setSocketOption(QAbstractSocket::LowDelayOption, 1);
        const QByteArray bytes
            = upgradeRequest() + clientFrame(Binary, helloBytes(3)) + clientFrame(Ping, "p");
        for (const char byte : bytes) {
            client.write(QByteArray(1, byte));
            client.socket().waitForBytesWritten(WaitMs);
        }
        QVERIFY(client.readHttpHead().startsWith("HTTP/1.1 101"));
        v1::Envelope welcome;
        QVERIFY(client.nextEnvelope(&welcome));
        QCOMPARE(welcome.request_id(), quint64(3));
        ServerFrame pong;
        QVERIFY(client.nextFrame(&pong));
        QCOMPARE(pong.opcode, quint8(0xA));
    }

    void manyFramesInOneWriteAreAllHandled()
    {
        RawClient client(m_server->port());
        QVERIFY(client.isConnected());
        // The handshake, Hello and 50 requests in one write; sync requests are not rate
        // limited, and before authentication each is answered with NOT_AUTHENTICATED.
        QByteArray bytes = upgradeRequest() + clientFrame(Binary, helloBytes(1));
        constexpr int Requests = 50;
        for (int i = 0; i < Requests; ++i) {
            v1::Envelope sync;
            sync.set_request_id(100 + i);
            sync.mutable_sync()->set_after_offset(0);
            bytes += clientFrame(Binary, envelopeBytes(sync));
        }
        client.write(bytes);

        QVERIFY(client.readHttpHead().startsWith("HTTP/1.1 101"));
        v1::Envelope reply;
        QVERIFY(client.nextEnvelope(&reply));
        QVERIFY(reply.has_welcome());
        for (int i = 0; i < Requests; ++i) {
            QVERIFY(client.nextEnvelope(&reply));
            QCOMPARE(reply.request_id(), quint64(100 + i));
            QCOMPARE(reply.error().code(), v1::NOT_AUTHENTICATED);
        }
    }

    void peerVanishingMidFrameFreesTheConnection()
    {
        const Result<double> before = m_server->metric(QStringLiteral("ferry_connections_open"));
        QVERIFY(before.ok());
        {
            RawClient client(m_server->port());
            QVERIFY(client.handshake());
            const QByteArray frame = clientFrame(Binary, QByteArray(1000, 'x'));
            client.write(frame.first(500));
            client.socket().waitForBytesWritten(WaitMs);
            client.socket().abort();
        }
        {
            RawClient client(m_server->port());
            client.write(upgradeRequest().first(40));
            client.socket().waitForBytesWritten(WaitMs);
            client.socket().abort();
        }

        // Everyone else is served as before.
        RawClient other(m_server->port());
        QVERIFY(other.handshake());
        other.write(clientFrame(Binary, helloBytes()));
        v1::Envelope welcome;
        QVERIFY(other.nextEnvelope(&welcome));
        QVERIFY(welcome.has_welcome());
        other.write(clientFrame(Close, closePayload(1000)));
        QVERIFY(other.waitDisconnected());

        // The two vanished ones, and this one, are gone from the server.
        QTRY_COMPARE_WITH_TIMEOUT(
            m_server->metric(QStringLiteral("ferry_connections_open")).value(), before.value(),
            WaitMs);
    }

    void handshakeThatNeverEndsIsClosed()
    {
        RawClient client(m_server->port());
        QVERIFY(client.isConnected());
        client.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        // The authentication timeout (2 s here) covers the handshake too.
        QVERIFY(client.waitDisconnected());
    }

private:
    QTemporaryDir m_dataDir;
    std::unique_ptr<ServerProcess> m_server;
};

QTEST_GUILESS_MAIN(TestServerWebSocket)
#include "tst_server_websocket.moc"
