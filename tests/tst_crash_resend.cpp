// A client killed in the middle of a sync loses nothing and doubles nothing: whatever moment the
// kill hits (before connecting, with messages in flight, after the server committed them but
// before the ack was stored, after the ack), the next sync delivers each message exactly once.

#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"

#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QTest>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

// A whole sync takes some 20-30 ms on an idle machine, most of it starting the process. The
// delays are densest there, so the kills land in every phase; the later ones let some runs end
// on their own. On a loaded machine the phases stretch and the same delays land earlier.
const QList<int> KillDelaysMs = { 0, 2, 5, 8, 11, 14, 17, 20, 25, 30, 40, 80 };

// Two messages a round: a kill can then also fall between the first ack and the second.
constexpr int MessagesPerRound = 2;

} // namespace

class TestCrashResend : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void aClientKilledDuringSyncDeliversEachMessageOnce();
};

void TestCrashResend::aClientKilledDuringSyncDeliversEachMessageOnce()
{
    QTemporaryDir root;
    QVERIFY2(root.isValid(), qPrintable(root.errorString()));
    ServerProcess server(root.filePath(u"server"_s));
    // Debug logging shows each resend the server recognised, to report which cases were hit.
    server.setLoggingRules(u"ferry.server.debug=true"_s);
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    const Ctl alice(root.filePath(u"alice"_s), server.url());
    const Ctl bob(root.filePath(u"bob"_s), server.url());
    const CtlRun aliceRegistered = alice.registerUser(u"alice"_s, u"laptop"_s);
    QVERIFY2(aliceRegistered.ok(), qPrintable(aliceRegistered.describe()));
    const CtlRun bobRegistered = bob.registerUser(u"bob"_s, u"desk"_s);
    QVERIFY2(bobRegistered.ok(), qPrintable(bobRegistered.describe()));

    QStringList written;
    int runsLeavingMessagesQueued = 0;
    int runsDeliveringEverything = 0;
    for (const int delayMs : KillDelaysMs) {
        for (int i = 0; i < MessagesPerRound; ++i) {
            const CtlRun send = alice.send(u"bob"_s,
                u"killed after "_s + QString::number(delayMs) + u" ms, message "_s
                    + QString::number(i + 1));
            QVERIFY2(send.ok(), qPrintable(send.describe()));
            written.append(send.out.trimmed());
        }

        // Killed twice in a row at the same moment: the second run starts from whatever the
        // first one left, half-sent messages included.
        for (int attempt = 0; attempt < 2; ++attempt) {
            std::unique_ptr<QProcess> sync = alice.start({ u"sync"_s, u"--timeout"_s, u"20"_s });
            QVERIFY2(sync->waitForStarted(10'000), qPrintable(sync->errorString()));
            // Waiting on the process, not sleeping: a sync that ends before the delay is over
            // is simply not killed.
            if (!sync->waitForFinished(delayMs)) {
                sync->kill();
                QVERIFY(sync->waitForFinished(10'000));
            }
            const Result<QJsonObject> status = alice.status();
            QVERIFY2(status, whyNot(status).constData());
            if (status->value(u"outbox"_s).toInteger() > 0) {
                ++runsLeavingMessagesQueued;
            } else {
                ++runsDeliveringEverything;
            }
        }

        const CtlRun sync = alice.sync();
        QVERIFY2(sync.ok(),
            qPrintable(
                u"after a kill at "_s + QString::number(delayMs) + u" ms: "_s + sync.describe()));
    }
    // Which phases the kills hit depends on the machine's speed; the outcome must not.
    qInfo("%d interrupted syncs left messages queued, %d had delivered everything; the server "
          "recognised %lld resends of a message it had stored",
        runsLeavingMessagesQueued, runsDeliveringEverything,
        static_cast<long long>(server.log().count(u"(resend)"_s)));

    QList<qint64> seqs;
    for (qint64 seq = 1; seq <= written.size(); ++seq) {
        seqs.append(seq);
    }
    const CtlRun bobSynced = bob.sync();
    QVERIFY2(bobSynced.ok(), qPrintable(bobSynced.describe()));
    const Result<QList<QJsonObject>> atBob = bob.history(u"alice"_s);
    QVERIFY2(atBob, whyNot(atBob).constData());
    const QByteArray bobHolds = describeHistory(atBob.value()).toUtf8();
    QVERIFY2(fieldOf(atBob.value(), u"id"_s) == written, bobHolds.constData());
    QVERIFY2(seqsOf(atBob.value()) == seqs, bobHolds.constData());

    const Result<QList<QJsonObject>> atAlice = alice.history(u"bob"_s);
    QVERIFY2(atAlice, whyNot(atAlice).constData());
    const QByteArray aliceHolds = describeHistory(atAlice.value()).toUtf8();
    QVERIFY2(fieldOf(atAlice.value(), u"id"_s) == written, aliceHolds.constData());
    QVERIFY2(seqsOf(atAlice.value()) == seqs, aliceHolds.constData());
    QVERIFY2(fieldOf(atAlice.value(), u"state"_s) == QStringList(written.size(), u"sent"_s),
        aliceHolds.constData());
    QCOMPARE(alice.status()->value(u"outbox"_s).toInteger(), qint64(0));

    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

QTEST_GUILESS_MAIN(TestCrashResend)
#include "tst_crash_resend.moc"
