// #6's load requirement, against the real ferry-server: 10,000 authenticated connections held at
// once by ferry-load (tests/bench/loadgen), with heartbeats every few seconds and messages flowing
// between pairs of them, for a bounded time. Afterwards the server must still be up, every
// connection must still be authenticated, the server's memory must not have grown past its
// plateau, and every acknowledged message must have reached its recipient exactly once.
//
// FERRY_LOAD_SECONDS (default 60; 20 in the sanitizer build) sets how long the load is held;
// FERRY_LOAD_CONNECTIONS (default 10,000; 1,000 in the sanitizer build, whose server is several
// times slower and bigger per connection) sets how many. docs/reliability.md has the figures of a
// several-minutes run.

#include "tests/support/ServerProcess.h"

#include <QDeadlineTimer>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

int fromEnvironment(const char* name, int fallback)
{
    bool ok = false;
    const int value = qEnvironmentVariableIntValue(name, &ok);
    return ok && value > 0 ? value : fallback;
}

} // namespace

class ServerLoadTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void manyConnectionsStayAuthenticatedAndEveryMessageArrivesOnce();
};

void ServerLoadTest::manyConnectionsStayAuthenticatedAndEveryMessageArrivesOnce()
{
#ifdef FERRY_SANITIZED_BUILD
    // The sanitized server is several times slower and bigger per connection, and the sanitizer
    // run of the whole suite should stay within minutes: the same checks on a tenth of the load.
    const int defaultConnections = 1'000;
    const int defaultSeconds = 20;
#else
    const int defaultConnections = 10'000;
    const int defaultSeconds = 60;
#endif
    const int connections = fromEnvironment("FERRY_LOAD_CONNECTIONS", defaultConnections);
    const int seconds = fromEnvironment("FERRY_LOAD_SECONDS", defaultSeconds);

    QTemporaryDir dataDir;
    QVERIFY(dataDir.isValid());
    // Minimal password cost, or registering 10,000 accounts would take half an hour; a short
    // heartbeat, so that every connection is pinged many times and must answer each time.
    ServerProcess server(dataDir.path(),
        { u"--password-cost"_s, u"minimal"_s, u"--heartbeat-interval"_s, u"5"_s,
            u"--heartbeat-timeout"_s, u"15"_s, u"--auth-timeout"_s, u"60"_s });
    QVERIFY2(server.start(), qPrintable(server.errorString()));

    QProcess load;
    load.setProcessChannelMode(QProcess::ForwardedErrorChannel);
    load.start(QStringLiteral(FERRY_LOAD_BINARY),
        { u"soak"_s, u"--url"_s, server.url().toString(), u"--server-pid"_s,
            QString::number(server.pid()), u"--connections"_s, QString::number(connections),
            u"--seconds"_s, QString::number(seconds), u"--rate"_s, u"100"_s });
    QVERIFY(load.waitForStarted());
    // Setting up 10,000 connections takes the current server about two minutes on two cores.
    const int budgetMs = (600 + 2 * seconds) * 1000;
    QVERIFY2(load.waitForFinished(budgetMs), "ferry-load did not finish in time");
    const QByteArray output = load.readAllStandardOutput();
    qInfo().noquote() << QString::fromUtf8(output);
    QCOMPARE(load.exitCode(), 0);

    const qsizetype marker = output.indexOf("SOAK-SUMMARY ");
    QVERIFY2(marker >= 0, "ferry-load printed no summary");
    const QByteArray line = output.mid(marker + 13, output.indexOf('\n', marker) - marker - 13);
    const QJsonObject summary = QJsonDocument::fromJson(line).object();
    QVERIFY(!summary.isEmpty());
    auto number = [&](const char* key) { return summary.value(QLatin1String(key)).toDouble(-1); };

    QVERIFY2(summary.value("server_alive"_L1).toBool(), "the server died under load");
    QVERIFY(server.isRunning());
    QCOMPARE(number("authenticated_at_start"), double(connections));
    QCOMPARE(number("failed_to_connect"), 0.0);
    QVERIFY2(
        number("pings_answered") >= connections, "the heartbeat never pinged some connections");

    // Still authenticated: each connection asked for a fresh session token and got one.
    QCOMPARE(number("closed_by_server"), 0.0);
    QCOMPARE(number("live_at_end"), double(connections));
    QCOMPARE(number("authenticated_at_end"), double(connections));
    QCOMPARE(number("refused_at_end"), 0.0);

    // Flat memory: the end within 10 % of the plateau, read once every connection had sent and
    // received one message and 10 s of steady traffic had passed (ferry-load's warm-up), so
    // first-use buffers and filled caches belong to the plateau.
    const double plateau = number("rss_plateau_kib");
    const double end = number("rss_end_kib");
    QVERIFY(plateau > 0);
    QVERIFY2(end < plateau * 1.10,
        qPrintable(u"server RSS grew from %1 KiB to %2 KiB"_s.arg(plateau).arg(end)));

    // Exactly once: every acknowledged message reached its recipient, none twice, none unanswered.
    QVERIFY(number("acked") >= connections); // the warm-up alone sends one per connection
    QCOMPARE(number("missing"), 0.0);
    QCOMPARE(number("duplicates"), 0.0);
    QCOMPARE(number("unanswered"), 0.0);
    QCOMPARE(number("errors"), 0.0);

    // ferry-load closed its connections on the way out; the server drops them before it is
    // asked to stop, so that its shutdown is measured on its own and not behind 10,000 closes.
    auto openConnections = [&server] {
        const ferry::Result<double> open = server.metric(u"ferry_connections_open"_s);
        return open ? open.value() : -1.0;
    };
    QDeadlineTimer drained(120'000);
    while (openConnections() != 0 && !drained.hasExpired()) {
        QTest::qWait(200);
    }
    QCOMPARE(openConnections(), 0.0);
    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

QTEST_GUILESS_MAIN(ServerLoadTest)
#include "tst_server_load.moc"
