// The server's per-connection limits, against the real ferry-server on loopback with small limits
// set by flags: the time to authenticate, the heartbeat (with a real ferryctl that is frozen with
// SIGSTOP and thawed again), the request rate, and the bound on output queued for a consumer that
// does not read, with the server's memory watched meanwhile.

#include "core/CloseCodes.h"
#include "core/MessageId.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/HttpProbe.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"

#include <QDeadlineTimer>
#include <QElapsedTimer>
#include <QFile>
#include <QSet>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <csignal>
#include <functional>
#include <limits>
#include <memory>

#include "ferry.pb.h"

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

constexpr int WaitMs = 20'000;

/// Polls until `condition` holds, at most `timeoutMs`; the event loop runs meanwhile, so every
/// socket of the test keeps answering the server's pings.
bool waitUntil(const std::function<bool()>& condition, int timeoutMs = WaitMs)
{
    QDeadlineTimer deadline(timeoutMs);
    while (!condition()) {
        if (deadline.hasExpired()) {
            return false;
        }
        QTest::qWait(20);
    }
    return true;
}

double metric(const ServerProcess& server, const QString& series)
{
    return scrapeMetric(server.metricsUrl(), series).value_or(-1.0);
}

/// The resident memory of a process, from /proc, in KiB; -1 if it cannot be read.
qint64 residentKiB(qint64 pid)
{
    QFile status(u"/proc/"_s + QString::number(pid) + u"/status"_s);
    if (!status.open(QIODevice::ReadOnly)) {
        return -1;
    }
    for (const QByteArray& line : status.readAll().split('\n')) {
        if (line.startsWith("VmRSS:")) {
            return line.mid(6).trimmed().split(' ').value(0).toLongLong();
        }
    }
    return -1;
}

/// A running `ferryctl listen` that is thawed and ended however the test ends, for a frozen
/// process would otherwise outlive it.
class Listener {
public:
    explicit Listener(std::unique_ptr<QProcess> process)
        : m_process(std::move(process))
    {
    }
    ~Listener()
    {
        if (m_process->state() != QProcess::NotRunning) {
            ::kill(static_cast<pid_t>(m_process->processId()), SIGCONT);
            m_process->kill();
            m_process->waitForFinished(5000);
        }
    }

    bool signal(int number)
    {
        return ::kill(static_cast<pid_t>(m_process->processId()), number) == 0;
    }

    /// Everything it printed so far.
    const QByteArray& output()
    {
        m_output += m_process->readAllStandardOutput();
        return m_output;
    }

    /// SIGTERM, as a user ends it; true for a clean exit with code 0.
    bool stop()
    {
        m_process->terminate();
        return m_process->waitForFinished(10'000) && m_process->exitStatus() == QProcess::NormalExit
            && m_process->exitCode() == 0;
    }

    QString errors() { return QString::fromUtf8(m_process->readAllStandardError()); }

private:
    std::unique_ptr<QProcess> m_process;
    QByteArray m_output;
};

} // namespace

class TestServerLimits : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void aConnectionMustAuthenticateInTime_data();
    void aConnectionMustAuthenticateInTime();
    void aClientThatStopsAnsweringPingsIsClosedWith4001AndComesBack();
    void aFloodingSenderIsRateLimitedWhileOthersAreServed();
    void aConsumerThatNeverReadsIsDisconnectedAndCatchesUpLater();

private:
    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_authServer;
    quint64 m_aliceDeviceId = 0;
    QByteArray m_aliceToken;
};

void TestServerLimits::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));

    // alice registers before the half-second limit applies: her password hash alone may take
    // that long on a busy machine, and how long it takes is not what is tested here.
    const QString dataDir = m_root.filePath(u"auth-timeout"_s);
    {
        ServerProcess server(dataDir);
        QVERIFY2(server.start(), qPrintable(server.errorString()));
        ProtocolClient alice(server.url());
        m_aliceDeviceId = alice.registerUser(u"alice"_s);
        QVERIFY(m_aliceDeviceId != 0);
        m_aliceToken = alice.deviceToken();
        QVERIFY2(server.stop(), qPrintable(server.errorString()));
    }
    m_authServer
        = std::make_unique<ServerProcess>(dataDir, QStringList { u"--auth-timeout"_s, u"0.5"_s });
    QVERIFY2(m_authServer->start(), qPrintable(m_authServer->errorString()));
}

void TestServerLimits::cleanupTestCase()
{
    if (m_authServer && m_authServer->isRunning()) {
        QVERIFY2(m_authServer->stop(), qPrintable(m_authServer->errorString()));
    }
}

void TestServerLimits::aConnectionMustAuthenticateInTime_data()
{
    QTest::addColumn<QString>("behaviour");
    QTest::addColumn<bool>("expectClosed");
    QTest::newRow("a connection that says nothing") << u"silent"_s << true;
    QTest::newRow("a connection that says hello only") << u"hello"_s << true;
    QTest::newRow("a connection that keeps asking without authenticating") << u"busy"_s << true;
    QTest::newRow("a connection that authenticates in time") << u"resume"_s << false;
}

void TestServerLimits::aConnectionMustAuthenticateInTime()
{
    QFETCH(QString, behaviour);
    QFETCH(bool, expectClosed);

    QElapsedTimer sinceConnected;
    ProtocolClient client(m_authServer->url());
    sinceConnected.start();
    QVERIFY(client.isConnected());
    if (behaviour == u"hello") {
        QVERIFY(client.hello());
    } else if (behaviour == u"resume") {
        QCOMPARE(client.resume(m_aliceDeviceId, m_aliceToken), m_aliceDeviceId);
    } else if (behaviour == u"busy") {
        // Being busy is no substitute for authenticating: each request is refused, and the
        // deadline stays where it was.
        QVERIFY(client.hello());
        while (client.socket().state() == QAbstractSocket::ConnectedState
            && sinceConnected.elapsed() < 5000) {
            v1::Envelope sync;
            sync.mutable_sync();
            v1::Envelope answer;
            if (client.reply(client.send(sync), &answer, 100)) {
                QCOMPARE(answer.error().code(), v1::NOT_AUTHENTICATED);
            }
        }
    }

    if (expectClosed) {
        QVERIFY(client.waitClosed(5000));
        const qint64 elapsed = sinceConnected.elapsed();
        QCOMPARE(int(client.socket().closeCode()), CloseCode::AuthenticationTimeout);
        // The limit is 0.5 s, checked by a sweep that runs every 125 ms.
        QVERIFY2(elapsed >= 400 && elapsed < 3000,
            qPrintable(u"closed after "_s + QString::number(elapsed) + u" ms"_s));
    } else {
        // Twice the limit passes and the connection stays.
        QVERIFY(!client.waitClosed(1000));
        QCOMPARE(client.socket().state(), QAbstractSocket::ConnectedState);
    }
}

void TestServerLimits::aClientThatStopsAnsweringPingsIsClosedWith4001AndComesBack()
{
    ServerProcess server(m_root.filePath(u"heartbeat"_s),
        { u"--heartbeat-interval"_s, u"0.3"_s, u"--heartbeat-timeout"_s, u"1"_s });
    QVERIFY2(server.start(), qPrintable(server.errorString()));

    // bob is a real ferryctl; alice, who writes to him later, registers now and goes away.
    Ctl bob(m_root.filePath(u"profiles/bob"_s), server.url());
    const CtlRun registered = bob.registerUser(u"bob"_s, u"laptop"_s);
    QVERIFY2(registered.ok(), qPrintable(registered.describe()));
    quint64 aliceDeviceId = 0;
    QByteArray aliceToken;
    {
        ProtocolClient alice(server.url());
        aliceDeviceId = alice.registerUser(u"alice"_s);
        QVERIFY(aliceDeviceId != 0);
        aliceToken = alice.deviceToken();
    }

    Listener listener(bob.start({ u"listen"_s }));
    QVERIFY2(waitUntil([&] { return metric(server, u"ferry_connections_authenticated"_s) == 1; }),
        qPrintable(listener.errors()));
    const double acceptedBefore = metric(server, u"ferry_connections_accepted_total"_s);
    const QString heartbeatCloses = u"ferry_closes_total{code=\"4001\"}"_s;
    QCOMPARE(metric(server, heartbeatCloses), 0.0);

    // Frozen, bob's ferryctl answers no ping: the server closes it a heartbeat timeout after
    // it last heard from it (which may be up to a ping interval before the freeze).
    QVERIFY(listener.signal(SIGSTOP));
    QElapsedTimer sinceStopped;
    sinceStopped.start();
    QVERIFY2(waitUntil([&] { return metric(server, heartbeatCloses) >= 1; }),
        qPrintable(server.log().right(2000)));
    const qint64 closedAfter = sinceStopped.elapsed();
    qInfo("Closed with 4001 %lld ms after the client froze", closedAfter);
    QVERIFY2(closedAfter >= 300 && closedAfter < 5000, qPrintable(QString::number(closedAfter)));
    QCOMPARE(metric(server, u"ferry_connections_authenticated"_s), 0.0);
    QVERIFY(server.log().contains(u"heartbeat timeout"_s));

    // Thawed, it finds its link gone and connects again by itself.
    QVERIFY(listener.signal(SIGCONT));
    QVERIFY2(waitUntil([&] {
        return metric(server, u"ferry_connections_authenticated"_s) == 1
            && metric(server, u"ferry_connections_accepted_total"_s) > acceptedBefore;
    }),
        qPrintable(listener.errors()));

    // It is live again: a message written to bob now is printed by it.
    ProtocolClient alice(server.url());
    QCOMPARE(alice.resume(aliceDeviceId, aliceToken), aliceDeviceId);
    QVERIFY(alice.sendMessage(directId(u"alice"_s, u"bob"_s), "after the thaw").has_send_ack());
    QVERIFY2(waitUntil([&] { return listener.output().contains("after the thaw"); }),
        qPrintable(listener.errors()));

    // Clients that answer pings are left alone, however quiet: longer than a heartbeat timeout
    // passes with no second close.
    QVERIFY(alice.staysQuiet(1500));
    QCOMPARE(metric(server, heartbeatCloses), 1.0);
    QCOMPARE(alice.socket().state(), QAbstractSocket::ConnectedState);

    QVERIFY(listener.stop());
    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

void TestServerLimits::aFloodingSenderIsRateLimitedWhileOthersAreServed()
{
    ServerProcess server(m_root.filePath(u"flood"_s),
        { u"--request-rate"_s, u"20"_s, u"--request-burst"_s, u"20"_s });
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    ProtocolClient alice(server.url());
    QVERIFY(alice.registerUser(u"alice"_s) != 0);
    ProtocolClient bob(server.url());
    QVERIFY(bob.registerUser(u"bob"_s) != 0);
    ProtocolClient carol(server.url());
    QVERIFY(carol.registerUser(u"carol"_s) != 0);

    // alice sends 200 messages without waiting for any answer; bob, on his own connection,
    // sends 15 in the same moments.
    constexpr int Flood = 200;
    constexpr int Modest = 15;
    QHash<quint64, QByteArray> aliceIds; // request id -> message id
    QList<quint64> bobRequests;
    QElapsedTimer flooding;
    flooding.start();
    for (int i = 0; i < Flood; ++i) {
        const QByteArray id = MessageId::generate().bytes();
        v1::Envelope send;
        send.mutable_send()->set_message_id(toStd(id));
        send.mutable_send()->set_conversation_id(directId(u"alice"_s, u"carol"_s).toStdString());
        send.mutable_send()->set_body("flood");
        aliceIds.insert(alice.send(send), id);
        if (i % (Flood / Modest) == 0 && bobRequests.size() < Modest) {
            v1::Envelope polite;
            polite.mutable_send()->set_message_id(toStd(MessageId::generate().bytes()));
            polite.mutable_send()->set_conversation_id(
                directId(u"bob"_s, u"carol"_s).toStdString());
            polite.mutable_send()->set_body("polite");
            bobRequests.append(bob.send(polite));
        }
    }
    QCOMPARE(bobRequests.size(), Modest);

    QSet<QByteArray> acked;
    int refused = 0;
    quint32 longestRetryAfter = 0;
    quint32 shortestRetryAfter = std::numeric_limits<quint32>::max();
    for (auto it = aliceIds.constBegin(); it != aliceIds.constEnd(); ++it) {
        v1::Envelope answer;
        QVERIFY(alice.reply(it.key(), &answer));
        if (answer.has_send_ack()) {
            acked.insert(toBytes(answer.send_ack().message_id()));
            continue;
        }
        QVERIFY2(answer.has_error(), answer.DebugString().c_str());
        QCOMPARE(answer.error().code(), v1::RATE_LIMITED);
        QCOMPARE(toBytes(answer.error().message_id()), it.value());
        QVERIFY(answer.error().retry_after_ms() > 0);
        longestRetryAfter = std::max(longestRetryAfter, answer.error().retry_after_ms());
        shortestRetryAfter = std::min(shortestRetryAfter, answer.error().retry_after_ms());
        ++refused;
    }
    const double seconds = static_cast<double>(flooding.elapsed()) / 1000.0;
    qInfo("Flood of %d in %.2f s: %lld acknowledged, %d rate limited (retry after %u to %u ms)",
        Flood, seconds, acked.size(), refused, shortestRetryAfter, longestRetryAfter);
    QCOMPARE(int(acked.size()) + refused, Flood);
    QVERIFY(refused > 0);
    // The burst passes (less what registering took from it) plus what the rate refills.
    QVERIFY2(acked.size() >= 15 && acked.size() <= 20 + qsizetype(20 * seconds) + 2,
        qPrintable(QString::number(acked.size())));
    QCOMPARE(alice.socket().state(), QAbstractSocket::ConnectedState);

    // bob's own budget was untouched by alice's flood.
    for (const quint64 requestId : std::as_const(bobRequests)) {
        v1::Envelope answer;
        QVERIFY(bob.reply(requestId, &answer));
        QVERIFY2(answer.has_send_ack(), answer.DebugString().c_str());
    }

    // carol has exactly the messages that were acknowledged.
    QList<v1::Event> events;
    QVERIFY(carol.syncAll(&events));
    QSet<QByteArray> fromAlice;
    int fromBob = 0;
    for (const v1::Event& event : std::as_const(events)) {
        if (event.message().sender() == "alice") {
            fromAlice.insert(toBytes(event.message().message_id()));
        } else if (event.message().sender() == "bob") {
            ++fromBob;
        }
    }
    QCOMPARE(fromAlice, acked);
    QCOMPARE(fromBob, Modest);

    // After the time the server named, alice is served again.
    QTest::qWait(int(longestRetryAfter) + 50);
    const v1::Envelope again = alice.sendMessage(directId(u"alice"_s, u"carol"_s), "calmer");
    QVERIFY2(again.has_send_ack(), again.DebugString().c_str());

    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

void TestServerLimits::aConsumerThatNeverReadsIsDisconnectedAndCatchesUpLater()
{
    // Any sender may go as fast as it likes here; the only limit is on queued output.
    ServerProcess server(m_root.filePath(u"slow-consumer"_s),
        { u"--max-queued-bytes"_s, u"65536"_s, u"--request-rate"_s, u"100000"_s,
            u"--request-burst"_s, u"100000"_s });
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    Ctl bob(m_root.filePath(u"profiles/slow-bob"_s), server.url());
    const CtlRun registered = bob.registerUser(u"bob"_s, u"laptop"_s);
    QVERIFY2(registered.ok(), qPrintable(registered.describe()));
    ProtocolClient alice(server.url());
    QVERIFY(alice.registerUser(u"alice"_s) != 0);
    const QString conversation = directId(u"alice"_s, u"bob"_s);

    // bob listens, and is live once he has printed a first message.
    Listener listener(bob.start({ u"listen"_s, u"--json"_s }));
    QVERIFY(alice.sendMessage(conversation, "are you there").has_send_ack());
    QVERIFY2(waitUntil([&] { return listener.output().contains("are you there"); }),
        qPrintable(listener.errors()));

    QVERIFY(listener.signal(SIGSTOP));
    const qint64 residentBefore = residentKiB(server.pid());
    QVERIFY(residentBefore > 0);

    // 400 messages of 40 KiB, 16 MiB in all: far more than the socket buffers between the
    // server and a process that does not read can hold.
    constexpr int Count = 400;
    constexpr int BodyBytes = 40 * 1024;
    QHash<quint64, QByteArray> sent; // request id -> message id
    for (int i = 0; i < Count; ++i) {
        const QByteArray id = MessageId::generate().bytes();
        QByteArray body = "big " + QByteArray::number(i) + ' ';
        body.append(QByteArray(BodyBytes - body.size(), 'x'));
        v1::Envelope send;
        send.mutable_send()->set_message_id(toStd(id));
        send.mutable_send()->set_conversation_id(conversation.toStdString());
        send.mutable_send()->set_body(toStd(body));
        sent.insert(alice.send(send), id);
    }

    qint64 residentPeak = residentBefore;
    QSet<QByteArray> acked;
    int answered = 0;
    const bool allAnswered = waitUntil([&] {
        residentPeak = std::max(residentPeak, residentKiB(server.pid()));
        for (const v1::Envelope& answer : alice.collect(0)) {
            if (sent.contains(answer.request_id())) {
                ++answered;
                if (answer.has_send_ack()) {
                    acked.insert(toBytes(answer.send_ack().message_id()));
                }
            }
        }
        return answered == Count;
    });
    QVERIFY2(allAnswered, qPrintable(QString::number(answered) + u" answered"_s));
    QCOMPARE(acked.size(), qsizetype(Count));

    const QString slowCloses = u"ferry_closes_total{code=\"4002\"}"_s;
    QVERIFY2(waitUntil([&] {
        residentPeak = std::max(residentPeak, residentKiB(server.pid()));
        return metric(server, slowCloses) >= 1;
    }),
        qPrintable(server.log().right(2000)));
    const qint64 growthKiB = residentPeak - residentBefore;
    qInfo("Server resident memory: %lld KiB before, %lld KiB at the peak, growth %lld KiB",
        residentBefore, residentPeak, growthKiB);
    QVERIFY2(growthKiB < 100 * 1024, qPrintable(QString::number(growthKiB) + u" KiB"_s));

    // Thawed, bob reconnects and catches up from his stored offset.
    QVERIFY(listener.signal(SIGCONT));
    QVERIFY2(waitUntil([&] { return listener.output().count('\n') >= Count + 1; }, 60'000),
        qPrintable(
            QString::number(listener.output().count('\n')) + u" lines; "_s + listener.errors()));
    QVERIFY(listener.stop());

    const Result<QList<QJsonObject>> history = bob.history(u"alice"_s);
    QVERIFY2(history, whyNot(history).constData());
    QCOMPARE(history->size(), qsizetype(Count + 1));
    QSet<QString> ids;
    for (const QJsonObject& message : history.value()) {
        ids.insert(message.value(u"id"_s).toString());
    }
    QSet<QString> expected;
    for (const QByteArray& id : std::as_const(acked)) {
        expected.insert(MessageId::fromBytes(id)->toString());
    }
    // Every message once: as many distinct ids as messages, the acknowledged ones among them.
    QCOMPARE(qsizetype(ids.size()), qsizetype(Count + 1));
    QVERIFY(ids.contains(expected));
    QList<qint64> seqs = seqsOf(history.value());
    std::sort(seqs.begin(), seqs.end());
    QList<qint64> everySeq;
    for (qint64 seq = 1; seq <= Count + 1; ++seq) {
        everySeq.append(seq);
    }
    QCOMPARE(seqs, everySeq);

    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

QTEST_GUILESS_MAIN(TestServerLimits)
#include "tst_server_limits.moc"
