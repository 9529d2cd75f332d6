// FaultProxy itself, against the real ferry-server on loopback: each fault mode does what it
// says, seen from a raw protocol client on the far side. The suites that use the proxy to break
// links (tst_sync_engine, tst_bugtracker_cases) rely on these checks: a test that passes through
// a fault that silently did nothing would prove nothing.

#include "core/MessageId.h"
#include "ferry.pb.h"
#include "tests/support/FaultProxy.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"

#include <QElapsedTimer>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

Q_DECLARE_METATYPE(ferry::test::ProxyFault)

namespace {

constexpr int WaitMs = 15'000;

v1::Envelope syncRequest()
{
    v1::Envelope envelope;
    envelope.mutable_sync()->set_after_offset(0);
    return envelope;
}

v1::Envelope sendRequest(const QByteArray& id, const QString& conversation)
{
    v1::Envelope envelope;
    envelope.mutable_send()->set_message_id(toStd(id));
    envelope.mutable_send()->set_conversation_id(conversation.toStdString());
    envelope.mutable_send()->set_body("through the proxy");
    return envelope;
}

/// The payload names of a spy on clientFrame or serverFrame, for one connection.
QStringList framesOf(const QSignalSpy& spy, int connection = 1)
{
    QStringList names;
    for (const QList<QVariant>& arguments : spy) {
        if (arguments.at(0).toInt() == connection) {
            names.append(arguments.at(1).toString());
        }
    }
    return names;
}

} // namespace

class TestFaultProxy : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void aPassingLinkForwardsAndCountsEveryFrame();
    void aDelayedLinkHoldsEveryFrameAtLeastTheBaseAndKeepsTheOrder();
    void aHeldSendAckHoldsTheFramesBehindItToo();
    void aCutAroundTheNthSendAckLetsExactlyTheAcksBeforeItThrough_data();
    void aCutAroundTheNthSendAckLetsExactlyTheAcksBeforeItThrough();
    void aCutAfterSomeBytesEndsTheLinkMidFrame_data();
    void aCutAfterSomeBytesEndsTheLinkMidFrame();
    void aDuplicatedSendReachesTheServerTwice();
    void aDuplicatedServerFrameReachesTheClientTwice();
    void aBrokenHandshakeLeavesTheClientUnconnected_data();
    void aBrokenHandshakeLeavesTheClientUnconnected();

private:
    /// A protocol client through `proxy`, signed in as alice's device.
    std::unique_ptr<ProtocolClient> aliceThrough(const FaultProxy& proxy) const;

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    quint64 m_aliceDevice = 0;
    QByteArray m_aliceToken;
};

void TestFaultProxy::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));
    ProtocolClient alice(m_server->url());
    m_aliceDevice = alice.registerUser(u"alice"_s);
    QVERIFY(m_aliceDevice != 0);
    m_aliceToken = alice.deviceToken();
    ProtocolClient bob(m_server->url());
    QVERIFY(bob.registerUser(u"bob"_s) != 0);
}

void TestFaultProxy::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

std::unique_ptr<ProtocolClient> TestFaultProxy::aliceThrough(const FaultProxy& proxy) const
{
    auto client = std::make_unique<ProtocolClient>(proxy.url());
    if (!client->isConnected() || client->resume(m_aliceDevice, m_aliceToken) == 0) {
        return nullptr;
    }
    return client;
}

void TestFaultProxy::aPassingLinkForwardsAndCountsEveryFrame()
{
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);
    QSignalSpy serverFrames(&proxy, &FaultProxy::serverFrame);

    ProtocolClient client(proxy.url());
    QVERIFY(client.isConnected());
    QVERIFY(client.hello());
    v1::Envelope answer;
    QVERIFY(client.reply(client.send(syncRequest()), &answer));
    QCOMPARE(answer.error().code(), v1::NOT_AUTHENTICATED);

    QTRY_COMPARE_WITH_TIMEOUT(
        framesOf(serverFrames), QStringList({ u"welcome"_s, u"error"_s }), WaitMs);
    QCOMPARE(framesOf(clientFrames), QStringList({ u"hello"_s, u"sync"_s }));
    QCOMPARE(proxy.acceptedCount(), 1);
}

void TestFaultProxy::aDelayedLinkHoldsEveryFrameAtLeastTheBaseAndKeepsTheOrder()
{
    constexpr int BaseMs = 120;
    constexpr int JitterMs = 80;
    constexpr int Requests = 20;
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.setDefaultFault(ProxyFault::delay(BaseMs, JitterMs));
    QSignalSpy forwarded(&proxy, &FaultProxy::frameForwarded);

    ProtocolClient client(proxy.url());
    QVERIFY(client.isConnected());
    QElapsedTimer roundTrip;
    roundTrip.start();
    QVERIFY(client.hello());
    // Both ways held: the answer cannot come back before twice the base.
    QVERIFY2(roundTrip.elapsed() >= 2 * BaseMs, qPrintable(QString::number(roundTrip.elapsed())));

    // Requests written back to back, each held for its own random time, still arrive in order.
    QList<quint64> sent;
    for (int i = 0; i < Requests; ++i) {
        sent.append(client.send(syncRequest()));
    }
    QList<quint64> answered;
    for (int i = 0; i < Requests; ++i) {
        v1::Envelope answer;
        QVERIFY(client.next(&answer, WaitMs));
        QCOMPARE(answer.error().code(), v1::NOT_AUTHENTICATED);
        answered.append(answer.request_id());
    }
    QCOMPARE(answered, sent);

    QCOMPARE(forwarded.size(), 2 * (Requests + 1));
    for (const QList<QVariant>& frame : std::as_const(forwarded)) {
        const qint64 heldMs = frame.at(3).toLongLong();
        QVERIFY2(heldMs >= BaseMs,
            qPrintable(frame.at(2).toString() + u" held only "_s + QString::number(heldMs)));
    }
}

void TestFaultProxy::aHeldSendAckHoldsTheFramesBehindItToo()
{
    constexpr int HoldMs = 400;
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.setDefaultFault(ProxyFault::holdSendAck(HoldMs));
    QSignalSpy forwarded(&proxy, &FaultProxy::frameForwarded);
    std::unique_ptr<ProtocolClient> alice = aliceThrough(proxy);
    QVERIFY(alice);

    // A send and a request right behind it: the second answer waits behind the held ack.
    QElapsedTimer sinceSend;
    sinceSend.start();
    const QByteArray id = MessageId::generate().bytes();
    alice->send(sendRequest(id, directId(u"alice"_s, u"bob"_s)));
    alice->send(syncRequest());
    v1::Envelope ack;
    QVERIFY(alice->next(&ack, WaitMs));
    QVERIFY2(ack.has_send_ack(), ack.ShortDebugString().c_str());
    QVERIFY2(sinceSend.elapsed() >= HoldMs, qPrintable(QString::number(sinceSend.elapsed())));
    v1::Envelope batch;
    QVERIFY(alice->next(&batch, WaitMs));
    QVERIFY2(batch.has_events(), batch.ShortDebugString().c_str());

    qint64 ackHeldMs = -1;
    for (const QList<QVariant>& frame : std::as_const(forwarded)) {
        if (frame.at(2).toString() == u"send_ack") {
            ackHeldMs = frame.at(3).toLongLong();
        }
    }
    QVERIFY2(ackHeldMs >= HoldMs, qPrintable(QString::number(ackHeldMs)));
}

void TestFaultProxy::aCutAroundTheNthSendAckLetsExactlyTheAcksBeforeItThrough_data()
{
    QTest::addColumn<ProxyFault>("fault");
    QTest::addColumn<int>("acksReceived");

    QTest::newRow("before the first") << ProxyFault::cutBeforeSendAck() << 0;
    QTest::newRow("after the first") << ProxyFault::cutAfterSendAck() << 1;
    QTest::newRow("before the second") << ProxyFault::cutBeforeSendAck(2) << 1;
    QTest::newRow("after the second") << ProxyFault::cutAfterSendAck(2) << 2;
}

void TestFaultProxy::aCutAroundTheNthSendAckLetsExactlyTheAcksBeforeItThrough()
{
    QFETCH(ProxyFault, fault);
    QFETCH(int, acksReceived);
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ fault });
    QSignalSpy cuts(&proxy, &FaultProxy::linkCut);
    std::unique_ptr<ProtocolClient> alice = aliceThrough(proxy);
    QVERIFY(alice);

    for (int i = 0; i < 3; ++i) {
        alice->send(sendRequest(MessageId::generate().bytes(), directId(u"alice"_s, u"bob"_s)));
    }
    int acks = 0;
    v1::Envelope frame;
    while (alice->next(&frame, WaitMs)) {
        acks += frame.has_send_ack() ? 1 : 0;
    }
    QVERIFY(alice->waitClosed());
    QCOMPARE(acks, acksReceived);
    QCOMPARE(cuts.size(), 1);
}

void TestFaultProxy::aCutAfterSomeBytesEndsTheLinkMidFrame_data()
{
    QTest::addColumn<ProxyDirection>("direction");

    // The Hello and the Welcome are each longer than the five bytes that get through.
    QTest::newRow("what the client sends") << ProxyDirection::ToServer;
    QTest::newRow("what the server sends") << ProxyDirection::ToClient;
}

void TestFaultProxy::aCutAfterSomeBytesEndsTheLinkMidFrame()
{
    QFETCH(ProxyDirection, direction);
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::cutAfterBytes(5, direction) });
    QSignalSpy cuts(&proxy, &FaultProxy::linkCut);
    QSignalSpy forwarded(&proxy, &FaultProxy::frameForwarded);

    ProtocolClient client(proxy.url());
    QVERIFY(client.isConnected());
    QVERIFY(!client.hello());
    QVERIFY(client.waitClosed());
    QCOMPARE(cuts.size(), 1);
    QVERIFY2(cuts.at(0).at(1).toString().contains(u"5 bytes"_s),
        qPrintable(cuts.at(0).at(1).toString()));
    // Nothing whole went the cut way.
    for (const QList<QVariant>& frame : std::as_const(forwarded)) {
        QVERIFY(frame.at(1).value<ProxyDirection>() != direction);
    }

    // The server shrugged off the half frame and serves the next connection.
    ProtocolClient after(m_server->url());
    QVERIFY(after.hello());
}

void TestFaultProxy::aDuplicatedSendReachesTheServerTwice()
{
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::duplicateClientFrame(u"send"_s) });
    std::unique_ptr<ProtocolClient> alice = aliceThrough(proxy);
    QVERIFY(alice);

    const QByteArray id = MessageId::generate().bytes();
    alice->send(sendRequest(id, directId(u"alice"_s, u"bob"_s)));
    v1::Envelope first;
    v1::Envelope second;
    QVERIFY(alice->next(&first, WaitMs));
    QVERIFY(alice->next(&second, WaitMs));
    // The server answered both copies, the second with the first one's ack.
    QVERIFY2(first.has_send_ack(), first.ShortDebugString().c_str());
    QVERIFY2(second.has_send_ack(), second.ShortDebugString().c_str());
    QCOMPARE(toBytes(second.send_ack().message_id()), id);
    QCOMPARE(second.send_ack().seq(), first.send_ack().seq());
    QCOMPARE(second.request_id(), first.request_id());
}

void TestFaultProxy::aDuplicatedServerFrameReachesTheClientTwice()
{
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::duplicateServerFrame(u"events"_s) });
    QSignalSpy serverFrames(&proxy, &FaultProxy::serverFrame);
    std::unique_ptr<ProtocolClient> alice = aliceThrough(proxy);
    QVERIFY(alice);

    const quint64 requestId = alice->send(syncRequest());
    v1::Envelope first;
    v1::Envelope second;
    QVERIFY(alice->reply(requestId, &first, WaitMs));
    QVERIFY(alice->reply(requestId, &second, WaitMs));
    QVERIFY(first.has_events());
    QCOMPARE(second.SerializeAsString(), first.SerializeAsString());
    // The server sent it once.
    QCOMPARE(framesOf(serverFrames).count(u"events"_s), 1);
}

void TestFaultProxy::aBrokenHandshakeLeavesTheClientUnconnected_data()
{
    QTest::addColumn<ProxyFault>("fault");
    QTest::addColumn<QString>("clientError"); ///< part of what the client's socket says

    QTest::newRow("an HTTP 503 answer") << ProxyFault::refuseHandshake(503) << u"503"_s;
    QTest::newRow("half an upgrade answer") << ProxyFault::cutDuringHandshake() << u"closed"_s;
    QTest::newRow("closed at once") << ProxyFault::closeAtOnce() << u"closed"_s;
}

void TestFaultProxy::aBrokenHandshakeLeavesTheClientUnconnected()
{
    QFETCH(ProxyFault, fault);
    QFETCH(QString, clientError);
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ fault });
    QSignalSpy cuts(&proxy, &FaultProxy::linkCut);
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);

    QWebSocket socket;
    QSignalSpy connected(&socket, &QWebSocket::connected);
    QSignalSpy errors(&socket, qOverload<QAbstractSocket::SocketError>(&QWebSocket::error));
    socket.open(proxy.url());
    QTRY_VERIFY_WITH_TIMEOUT(
        socket.state() == QAbstractSocket::UnconnectedState && !errors.isEmpty(), WaitMs);
    QCOMPARE(connected.size(), 0);
    QCOMPARE(cuts.size(), 1);
    QVERIFY(clientFrames.isEmpty());
    QVERIFY2(socket.errorString().contains(clientError), qPrintable(socket.errorString()));

    // The next connection through the same proxy passes.
    ProtocolClient after(proxy.url());
    QVERIFY(after.isConnected());
    QVERIFY(after.hello());
}

QTEST_GUILESS_MAIN(TestFaultProxy)
#include "tst_fault_proxy.moc"
