// Running the server, against the real ferry-server binary: a clean stop on SIGTERM loses nothing
// it acknowledged, the --config file is read and a flag overrides it, a bad setting stops the
// server with a reason, --help and --version answer, and /healthz and /metrics on loopback say
// what the server is doing.

#include "core/CloseCodes.h"
#include "core/MessageId.h"
#include "tests/support/HttpProbe.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"

#include <QDeadlineTimer>
#include <QElapsedTimer>
#include <QFile>
#include <QScopeGuard>
#include <QSet>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

#include "ferry.pb.h"

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

/// Every setting the server knows, as a config file would set them. The listen address and the
/// data folder are overridden by the flags ServerProcess passes.
const QString EverySetting = u"listen = 127.0.0.1:0\n"
                             "http-listen = 127.0.0.1:0\n"
                             "data = /nonexistent/overridden-by-the-flag\n"
                             "sync-batch = 100\n"
                             "wal-checkpoint-pages = 4096\n"
                             "commit-interval = 0.5\n"
                             "max-frame-bytes = 32768\n"
                             "max-queued-bytes = 1048576\n"
                             "auth-timeout = 0.5\n"
                             "heartbeat-interval = 20\n"
                             "heartbeat-timeout = 40\n"
                             "session-lifetime = 3600\n"
                             "request-rate = 10\n"
                             "request-burst = 30\n"_s;

QUrl healthzUrl(const ServerProcess& server)
{
    return server.metricsUrl().resolved(QUrl(u"/healthz"_s));
}

} // namespace

class TestServerOperations : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void healthzAnswersOk();
    void metricsCountWhatFlows();
    void theLogIsCheckpointedOffTheCommitAndStaysShort();
    void commitsOfMessagesArePacedButAQuietServerAnswersAtOnce();
    void nothingAcknowledgedIsLostWhenTheServerStopsOnSigterm();
    void theConfigFileIsReadAndAFlagOverridesIt_data();
    void theConfigFileIsReadAndAFlagOverridesIt();
    void aBadSettingStopsTheServerWithAReason_data();
    void aBadSettingStopsTheServerWithAReason();
    void aBadDispatcherInTheEnvironmentStopsTheServer();
    void helpAndVersionAnswerAndExitZero_data();
    void helpAndVersionAnswerAndExitZero();

private:
    /// Writes a config file into the test's folder and returns its path.
    QString writeConfig(const QString& name, const QString& text);

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    std::unique_ptr<ProtocolClient> m_alice;
    quint64 m_bobDeviceId = 0;
    int m_configCounter = 0;
};

void TestServerOperations::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    m_alice = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_alice->registerUser(u"alice"_s) != 0);
    ProtocolClient bob(m_server->url());
    m_bobDeviceId = bob.registerUser(u"bob"_s);
    QVERIFY(m_bobDeviceId != 0);
}

void TestServerOperations::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

QString TestServerOperations::writeConfig(const QString& name, const QString& text)
{
    const QString path = m_root.filePath(name + QString::number(++m_configCounter) + u".ini"_s);
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly) || file.write(text.toUtf8()) != text.toUtf8().size()) {
        return {};
    }
    return path;
}

void TestServerOperations::healthzAnswersOk()
{
    const HttpAnswer health = httpGet(healthzUrl(*m_server));
    QVERIFY2(health.error.isEmpty(), qPrintable(health.error));
    QCOMPARE(health.status, 200);
    QCOMPARE(health.body.trimmed(), QByteArray("ok"));

    const HttpAnswer elsewhere = httpGet(m_server->metricsUrl().resolved(QUrl(u"/nothing"_s)));
    QCOMPARE(elsewhere.status, 404);
}

void TestServerOperations::metricsCountWhatFlows()
{
    const HttpAnswer before = httpGet(m_server->metricsUrl());
    QCOMPARE(before.status, 200);
    const auto value = [](const HttpAnswer& scrape, const char* series) {
        return metricValue(scrape.body, QString::fromLatin1(series)).value_or(0.0);
    };

    constexpr int Count = 5;
    QByteArray firstId;
    for (int i = 0; i < Count; ++i) {
        const QByteArray id = MessageId::generate().bytes();
        firstId = firstId.isEmpty() ? id : firstId;
        QVERIFY(m_alice->sendMessage(directId(u"alice"_s, u"bob"_s), "counted", id).has_send_ack());
    }
    const HttpAnswer afterSends = httpGet(m_server->metricsUrl());
    QCOMPARE(afterSends.status, 200);
    QCOMPARE(value(afterSends, "ferry_messages_stored_total"),
        value(before, "ferry_messages_stored_total") + Count);
    QCOMPARE(value(afterSends, "ferry_send_to_ack_seconds_count"),
        value(before, "ferry_send_to_ack_seconds_count") + Count);
    QVERIFY(value(afterSends, "ferry_frames_in_total")
        >= value(before, "ferry_frames_in_total") + Count);
    QVERIFY(value(afterSends, "ferry_frames_out_total")
        >= value(before, "ferry_frames_out_total") + Count);
    QVERIFY(value(afterSends, "ferry_send_to_ack_seconds_sum")
        > value(before, "ferry_send_to_ack_seconds_sum"));
    QVERIFY(value(afterSends, "ferry_connections_authenticated") >= 1);

    // A resend is answered, and counted as one, without storing anything.
    QVERIFY(
        m_alice->sendMessage(directId(u"alice"_s, u"bob"_s), "counted", firstId).has_send_ack());
    const HttpAnswer afterResend = httpGet(m_server->metricsUrl());
    QCOMPARE(value(afterResend, "ferry_messages_stored_total"),
        value(afterSends, "ferry_messages_stored_total"));
    QCOMPARE(value(afterResend, "ferry_messages_resent_total"),
        value(afterSends, "ferry_messages_resent_total") + 1);
}

void TestServerOperations::theLogIsCheckpointedOffTheCommitAndStaysShort()
{
    // A checkpoint every 64 pages of write-ahead log: a few hundred messages pass it many times
    // over. The checkpoints must be the thread's (and the short ones that let the log start
    // over), never the commit's at the log's bound (4 x 64 pages), and the log stays short.
    ServerProcess server(m_root.filePath(u"checkpoints"_s),
        QStringList { u"--wal-checkpoint-pages"_s, u"64"_s, u"--request-burst"_s, u"100000"_s });
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    ProtocolClient carol(server.url());
    QVERIFY(carol.registerUser(u"carol"_s) != 0);
    ProtocolClient dave(server.url());
    QVERIFY(dave.registerUser(u"dave"_s) != 0);

    constexpr int Count = 600;
    qint64 longestLog = 0;
    for (int i = 0; i < Count; ++i) {
        const QByteArray body = QByteArray("checkpointed ") + QByteArray::number(i);
        QVERIFY(carol.sendMessage(directId(u"carol"_s, u"dave"_s), body).has_send_ack());
        if (i % 50 == 49) {
            const HttpAnswer scrape = httpGet(server.metricsUrl());
            longestLog = std::max(longestLog,
                qint64(metricValue(scrape.body, u"ferry_store_wal_pages"_s).value_or(-1)));
        }
    }
    const HttpAnswer scrape = httpGet(server.metricsUrl());
    const auto checkpoints = [&](const QString& by) {
        return metricValue(scrape.body, u"ferry_store_checkpoints_total{by=\"%1\"}"_s.arg(by))
            .value_or(-1);
    };
    qInfo("%d messages: checkpoints by the thread %.0f, finished by a commit %.0f, at the bound "
          "%.0f; the longest log seen %lld pages",
        Count, checkpoints(u"thread"_s), checkpoints(u"commit_finish"_s),
        checkpoints(u"commit_limit"_s), longestLog);
    QVERIFY(checkpoints(u"thread"_s) >= 1);
    QCOMPARE(checkpoints(u"commit_limit"_s), 0.0);
    QVERIFY(longestLog > 0);
    QVERIFY2(longestLog < 4 * 64, "the log reached its bound");
    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

void TestServerOperations::commitsOfMessagesArePacedButAQuietServerAnswersAtOnce()
{
    // With a commit interval of a second (the default is 1 ms; a second makes the pacing plain
    // to see on any machine). Pacing starts once a commit held several messages: a message
    // that arrives just after such a commit started waits for the rest of the second. A lone
    // sender that waits for each ack (a commit of one message each time) is never held back,
    // nor is a message after a quiet spell.
    ServerProcess server(m_root.filePath(u"pacing"_s),
        QStringList { u"--commit-interval"_s, u"1000"_s, u"--request-burst"_s, u"100000"_s });
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    ProtocolClient erin(server.url());
    QVERIFY(erin.registerUser(u"erin"_s) != 0);
    ProtocolClient frank(server.url());
    QVERIFY(frank.registerUser(u"frank"_s) != 0);
    const QString conversation = directId(u"erin"_s, u"frank"_s);

    QElapsedTimer lone;
    lone.start();
    for (int i = 0; i < 5; ++i) {
        QVERIFY(erin.sendMessage(conversation, "one at a time").has_send_ack());
    }
    qInfo("five messages one at a time acknowledged after %lld ms", lone.elapsed());
    QVERIFY2(lone.elapsed() < 900, "a lone sender was held back");

    // Two messages written back to back reach the server in one pass: one commit of two.
    QList<quint64> requests;
    for (const char* body : { "pair one", "pair two" }) {
        v1::Envelope envelope;
        v1::SendMessage* send = envelope.mutable_send();
        send->set_message_id(MessageId::generate().bytes().toStdString());
        send->set_conversation_id(conversation.toStdString());
        send->set_body(body);
        requests.append(erin.send(envelope));
    }
    QElapsedTimer sincePair;
    sincePair.start();
    for (const quint64 request : std::as_const(requests)) {
        v1::Envelope answer;
        QVERIFY(erin.reply(request, &answer));
        QVERIFY2(answer.has_send_ack(), answer.DebugString().c_str());
    }
    QVERIFY(erin.sendMessage(conversation, "right after the pair").has_send_ack());
    const qint64 pacedMs = sincePair.elapsed();
    qInfo("a message right after a commit of two acknowledged after %lld ms", pacedMs);
    QVERIFY2(pacedMs >= 900, "the commit after a commit of two did not wait for the interval");

    QTest::qWait(1200);
    QElapsedTimer quiet;
    quiet.start();
    QVERIFY(frank.sendMessage(conversation, "after a quiet spell").has_send_ack());
    qInfo("a message after a quiet spell acknowledged after %lld ms", quiet.elapsed());
    QVERIFY2(quiet.elapsed() < 800, "a quiet server held a message back");
    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

void TestServerOperations::nothingAcknowledgedIsLostWhenTheServerStopsOnSigterm()
{
    QSet<quint64> requests;
    const auto sendOne = [&] {
        v1::Envelope send;
        send.mutable_send()->set_message_id(toStd(MessageId::generate().bytes()));
        send.mutable_send()->set_conversation_id(directId(u"alice"_s, u"bob"_s).toStdString());
        send.mutable_send()->set_body("around the stop " + std::to_string(requests.size()));
        requests.insert(m_alice->send(send));
    };
    QMap<QByteArray, quint64> acked; // message id -> seq
    const auto takeAcks = [&](int waitMs) {
        for (const v1::Envelope& answer : m_alice->collect(waitMs)) {
            if (requests.contains(answer.request_id()) && answer.has_send_ack()) {
                acked.insert(toBytes(answer.send_ack().message_id()), answer.send_ack().seq());
            }
        }
    };

    // alice keeps writing, without waiting for answers, from before SIGTERM until the server
    // closes her connection: some messages are acknowledged, those at the end are not.
    for (int i = 0; i < 50; ++i) {
        sendOne();
    }
    QDeadlineTimer deadline(10'000);
    while (acked.size() < 10 && !deadline.hasExpired()) {
        takeAcks(1);
    }
    QVERIFY(acked.size() >= 10);
    m_server->requestStop();
    while (m_alice->socket().state() == QAbstractSocket::ConnectedState && !deadline.hasExpired()) {
        sendOne();
        takeAcks(2);
    }
    QVERIFY(m_alice->waitClosed());
    takeAcks(0);
    QVERIFY2(m_server->waitForExit(), qPrintable(m_server->errorString()));
    QCOMPARE(int(m_alice->socket().closeCode()), int(QWebSocketProtocol::CloseCodeGoingAway));
    qInfo("%lld of %lld messages were acknowledged before the server stopped", acked.size(),
        requests.size());

    // Started again on the same data, a new device of bob's finds every acknowledged message,
    // each once and at the seq it was acknowledged with.
    QVERIFY2(m_server->restart(), qPrintable(m_server->errorString()));
    ProtocolClient bobsNewDevice(m_server->url());
    const quint64 newDevice = bobsNewDevice.login(u"bob"_s);
    QVERIFY(newDevice != 0 && newDevice != m_bobDeviceId);
    QList<v1::Event> events;
    QVERIFY(bobsNewDevice.syncAll(&events));
    QMap<QByteArray, quint64> found;
    for (const v1::Event& event : std::as_const(events)) {
        const QByteArray id = toBytes(event.message().message_id());
        QVERIFY2(!found.contains(id), "a message is in the log twice");
        found.insert(id, event.message().seq());
    }
    for (auto it = acked.constBegin(); it != acked.constEnd(); ++it) {
        QVERIFY2(found.contains(it.key()),
            qPrintable(u"acknowledged message "_s + MessageId::fromBytes(it.key())->toString()
                + u" is lost"_s));
        QCOMPARE(found.value(it.key()), it.value());
    }

    // alice, for the tests after this one.
    m_alice = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_alice->login(u"alice"_s) != 0);
}

void TestServerOperations::theConfigFileIsReadAndAFlagOverridesIt_data()
{
    QTest::addColumn<QString>("file");
    QTest::addColumn<QStringList>("flags");
    QTest::addColumn<bool>("expectClosedInTime");

    // The authentication timeout is the witness: 0.5 s closes an idle connection at once, the
    // default 10 s and 30 s do not within the test.
    QTest::newRow("a setting from the file") << u"auth-timeout = 0.5\n"_s << QStringList() << true;
    QTest::newRow("a flag over the file's setting")
        << u"auth-timeout = 0.5\n"_s << QStringList { u"--auth-timeout"_s, u"30"_s } << false;
    QTest::newRow("a file's setting under a flag")
        << u"auth-timeout = 30\n"_s << QStringList { u"--auth-timeout"_s, u"0.5"_s } << true;
    QTest::newRow("every setting in one file") << EverySetting << QStringList() << true;
    QTest::newRow("an empty file") << QString() << QStringList() << false;
}

void TestServerOperations::theConfigFileIsReadAndAFlagOverridesIt()
{
    QFETCH(QString, file);
    QFETCH(QStringList, flags);
    QFETCH(bool, expectClosedInTime);

    const QString config = writeConfig(u"config"_s, file);
    QVERIFY(!config.isEmpty());
    ServerProcess server(m_root.filePath(u"configured"_s + QString::number(m_configCounter)),
        QStringList { u"--config"_s, config } + flags);
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    QCOMPARE(httpGet(healthzUrl(server)).status, 200);

    ProtocolClient idle(server.url());
    QVERIFY(idle.isConnected());
    if (expectClosedInTime) {
        QVERIFY(idle.waitClosed(3000));
        QCOMPARE(int(idle.socket().closeCode()), CloseCode::AuthenticationTimeout);
    } else {
        QVERIFY(!idle.waitClosed(1500));
    }
    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

void TestServerOperations::aBadSettingStopsTheServerWithAReason_data()
{
    QTest::addColumn<QString>("file"); // no config file when null
    QTest::addColumn<QStringList>("flags");
    QTest::addColumn<QString>("reason");

    QTest::newRow("an unknown key in the file")
        << u"colour = blue\n"_s << QStringList() << u"unknown setting 'colour'"_s;
    QTest::newRow("a known key inside a section")
        << u"[server]\nauth-timeout = 1\n"_s << QStringList()
        << u"unknown setting 'server/auth-timeout'"_s;
    QTest::newRow("a value that is no number in the file")
        << u"sync-batch = many\n"_s << QStringList() << u"bad value for sync-batch: many"_s;
    QTest::newRow("a value out of range in the file")
        << u"max-queued-bytes = 10\n"_s << QStringList() << u"bad value for max-queued-bytes"_s;
    QTest::newRow("a checkpoint too small to be worth one")
        << QString() << QStringList { u"--wal-checkpoint-pages"_s, u"10"_s }
        << u"bad value for --wal-checkpoint-pages: 10"_s;
    QTest::newRow("a negative commit interval")
        << QString() << QStringList { u"--commit-interval"_s, u"-1"_s }
        << u"bad value for --commit-interval: -1"_s;
    QTest::newRow("an address that is none in the file")
        << u"http-listen = nowhere\n"_s << QStringList() << u"bad value for http-listen"_s;
    QTest::newRow("a bad flag value") << QString() << QStringList { u"--auth-timeout"_s, u"soon"_s }
                                      << u"bad value for --auth-timeout: soon"_s;
    QTest::newRow("an unknown flag")
        << QString() << QStringList { u"--colour"_s, u"blue"_s } << u"colour"_s;
    QTest::newRow("a password cost that is neither interactive nor minimal")
        << QString() << QStringList { u"--password-cost"_s, u"fast"_s }
        << u"bad value for --password-cost: fast"_s;
    QTest::newRow("a config file that does not exist")
        << QString() << QStringList { u"--config"_s, u"/nonexistent/ferry.ini"_s }
        << u"cannot read the config file /nonexistent/ferry.ini"_s;
    QTest::newRow("a heartbeat timeout no longer than its interval")
        << QString()
        << QStringList { u"--heartbeat-interval"_s, u"5"_s, u"--heartbeat-timeout"_s, u"5"_s }
        << u"heartbeat-timeout must be longer than heartbeat-interval"_s;
}

void TestServerOperations::aBadSettingStopsTheServerWithAReason()
{
    QFETCH(QString, file);
    QFETCH(QStringList, flags);
    QFETCH(QString, reason);

    // A listen address and data folder of the test's own, so that a server that wrongly
    // accepted the setting would disturb nothing else before it is killed.
    QStringList arguments { u"--listen"_s, u"127.0.0.1:0"_s, u"--http-listen"_s, u"127.0.0.1:0"_s,
        u"--data"_s, m_root.filePath(u"refused"_s) };
    if (!file.isNull()) {
        const QString config = writeConfig(u"bad"_s, file);
        QVERIFY(!config.isEmpty());
        arguments << u"--config"_s << config;
    }
    const ServerRun run = runServerBinary(arguments + flags, 5000);
    QVERIFY2(!run.timedOut, "the server accepted the setting and kept running");
    QVERIFY2(run.exitCode != 0, qPrintable(run.err));
    QVERIFY2(run.err.contains(reason), qPrintable(run.err));
    QVERIFY2(!run.out.contains(u"listening on"_s), qPrintable(run.out));
}

void TestServerOperations::aBadDispatcherInTheEnvironmentStopsTheServer()
{
    // The variable is read before the configuration, to install the dispatcher; a name that is
    // neither epoll nor qt once left Qt's dispatcher running while the log said "epoll".
    qputenv("FERRY_EVENT_DISPATCHER", "bogus");
    const auto unset = qScopeGuard([] { qunsetenv("FERRY_EVENT_DISPATCHER"); });
    const QStringList arguments { u"--listen"_s, u"127.0.0.1:0"_s, u"--http-listen"_s, u"off"_s,
        u"--data"_s, m_root.filePath(u"refused"_s) };
    const ServerRun run = runServerBinary(arguments, 5000);
    QVERIFY2(!run.timedOut, "the server accepted the dispatcher's name and kept running");
    QVERIFY2(run.exitCode != 0, qPrintable(run.err));
    QVERIFY2(
        run.err.contains(u"bad value for FERRY_EVENT_DISPATCHER: bogus"_s), qPrintable(run.err));
    QVERIFY2(!run.out.contains(u"listening on"_s), qPrintable(run.out));
}

void TestServerOperations::helpAndVersionAnswerAndExitZero_data()
{
    QTest::addColumn<QString>("option");
    QTest::addColumn<QStringList>("expectedOutput");
    QTest::newRow("--help") << u"--help"_s
                            << QStringList { u"--config"_s, u"--listen"_s, u"--session-lifetime"_s,
                                   u"--max-queued-bytes"_s, u"--request-rate"_s };
    QTest::newRow("--version") << u"--version"_s
                               << QStringList { u"ferry-server " FERRY_VERSION ""_s };
}

void TestServerOperations::helpAndVersionAnswerAndExitZero()
{
    QFETCH(QString, option);
    QFETCH(QStringList, expectedOutput);

    const ServerRun run = runServerBinary({ option }, 5000);
    QVERIFY2(!run.timedOut, qPrintable(run.out));
    QCOMPARE(run.exitCode, 0);
    for (const QString& expected : expectedOutput) {
        QVERIFY2(run.out.contains(expected), qPrintable(expected + u" missing in:\n"_s + run.out));
    }
}

QTEST_GUILESS_MAIN(TestServerOperations)
#include "tst_server_operations.moc"
