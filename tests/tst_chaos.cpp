// Exactly-once under faults (issue #6): randomised runs of several accounts and devices writing
// to direct and group conversations, online and offline, while links are cut and stalled and
// clients and the server are killed; at the end every device must hold the same history, every
// message exactly once, in order, with the read state agreed. See docs/reliability.md.
//
//   tst_chaos                          runs seeds 1, 2, 3, … until the time budget is spent
//   FERRY_CHAOS_SEED=N tst_chaos       replays one seed (or: tst_chaos --seed N)
//   FERRY_CHAOS_SECONDS=1800 tst_chaos soak: random seeds for that long, with a summary
//
// FERRY_CHAOS_BUDGET_SECONDS sets the bounded run's budget (ctest sets it); FERRY_CHAOS_BASE_SEED
// its first seed. A run is never cut short: the budget only stops new runs from starting.

#include "tests/chaos/ChaosChecker.h"
#include "tests/chaos/ChaosExecutor.h"
#include "tests/chaos/ChaosScenario.h"

#include <QDateTime>
#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QTest>

#include <optional>

using namespace ferry::test::chaos;
using namespace Qt::StringLiterals;

namespace {

constexpr quint64 DefaultBudgetSeconds = 90;

// Set by main() from --seed N.
std::optional<quint64> seedFromCommandLine;

std::optional<quint64> numberFromEnvironment(const char* name)
{
    bool ok = false;
    const quint64 value = qEnvironmentVariable(name).toULongLong(&ok);
    return ok ? std::optional<quint64>(value) : std::nullopt;
}

/// Totals over all runs, printed at the end.
struct Totals {
    int runs = 0;
    QMap<FaultKind, int> faults;
    MessageTally messages;
    int readMarks = 0;
    int serverRestarts = 0;
    int violations = 0;
    QList<quint64> failingSeeds;

    void add(const RunRecord& record, const MessageTally& tally, int runViolations)
    {
        ++runs;
        for (auto it = record.faultsInjected.begin(); it != record.faultsInjected.end(); ++it) {
            faults[it.key()] += it.value();
        }
        messages.written += tally.written;
        messages.confirmed += tally.confirmed;
        messages.unconfirmedStored += tally.unconfirmedStored;
        messages.unconfirmedAbsent += tally.unconfirmedAbsent;
        messages.cancelled += tally.cancelled;
        messages.cancelledButSent += tally.cancelledButSent;
        messages.sequenced += tally.sequenced;
        readMarks += record.readMarks;
        serverRestarts += record.serverRestarts;
        violations += runViolations;
    }
};

QString describeFaults(const QMap<FaultKind, int>& faults)
{
    QStringList parts;
    for (const FaultKindInfo& info : faultKinds()) {
        parts.append(
            QString::fromLatin1(info.name) + u' ' + QString::number(faults.value(info.kind)));
    }
    return parts.join(u", ");
}

QString describeMessages(const MessageTally& tally)
{
    return QString::number(tally.written) + u" written (" + QString::number(tally.confirmed)
        + u" confirmed, " + QString::number(tally.unconfirmedStored) + u" killed but stored, "
        + QString::number(tally.unconfirmedAbsent) + u" killed before stored, "
        + QString::number(tally.cancelled) + u" cancelled, "
        + QString::number(tally.cancelledButSent) + u" cancelled too late), "
        + QString::number(tally.sequenced) + u" acknowledged";
}

} // namespace

class TestChaos : public QObject {
    Q_OBJECT

private Q_SLOTS:
    // A seed stands for one sequence of decisions, so that a failing run can be replayed.
    void theSameSeedMakesTheSameDecisions();
    // The checker itself, on made-up device states: each broken invariant is found by its check.
    void theCheckerFindsEachBrokenInvariant_data();
    void theCheckerFindsEachBrokenInvariant();
    // The runs.
    void everyRunDeliversEachMessageExactlyOnce();

private:
    /// One seed, start to end; the number of violations (a run that could not even be set up
    /// counts as one).
    int runSeed(quint64 seed, bool printSteps, Totals& totals);
};

namespace {

enum class Damage {
    None,
    MessageMissing,
    MessageTwice,
    MessageNobodyWrote,
    SenderOrderSwapped,
    DevicesDisagreeOnOrder,
    MessageLeftQueued,
    UnreadDisagrees,
    KilledSendReachedOnlyItsWriter,
    FinalSyncFailed,
    SendFailedUnhit,
    CancelledMessageReachedSome,
    ServerDiedOnSigterm,
};

QJsonObject entry(
    const QString& id, qint64 seq, const QString& sender, const QString& body, const QString& state)
{
    return { { u"id"_s, id }, { u"conversation"_s, u"direct:alice:bob"_s }, { u"sender"_s, sender },
        { u"seq"_s, seq }, { u"kind"_s, u"message"_s }, { u"body"_s, body },
        { u"state"_s, state } };
}

} // namespace

void TestChaos::theSameSeedMakesTheSameDecisions()
{
    const auto decisions = [](quint64 seed) {
        const Scenario scenario = generateScenario(seed);
        QStringList lines { scenario.deviceNames().join(u' '),
            QString::number(scenario.conversations.size()), QString::number(scenario.syncBatch) };
        for (const Step& step : scenario.steps) {
            lines.append(step.describe(scenario.deviceNames()));
        }
        return lines;
    };
    QCOMPARE(decisions(42), decisions(42));
    QVERIFY(decisions(42) != decisions(43));
}

void TestChaos::theCheckerFindsEachBrokenInvariant_data()
{
    QTest::addColumn<Damage>("damage");
    QTest::addColumn<QString>("check");

    QTest::newRow("nothing wrong") << Damage::None << QString();
    QTest::newRow("a device lacks a message")
        << Damage::MessageMissing << u"written-messages-exactly-once"_s;
    QTest::newRow("a device holds a message twice")
        << Damage::MessageTwice << u"written-messages-exactly-once"_s;
    QTest::newRow("a message nobody wrote")
        << Damage::MessageNobodyWrote << u"no-unknown-messages"_s;
    QTest::newRow("a sender's messages in the wrong order")
        << Damage::SenderOrderSwapped << u"sender-order-kept"_s;
    QTest::newRow("two devices disagree on the order")
        << Damage::DevicesDisagreeOnOrder << u"histories-identical"_s;
    QTest::newRow("a message left queued") << Damage::MessageLeftQueued << u"outboxes-drained"_s;
    QTest::newRow("an account's devices count unread differently")
        << Damage::UnreadDisagrees << u"read-state-agrees"_s;
    QTest::newRow("a killed send's message reached only its writer")
        << Damage::KilledSendReachedOnlyItsWriter << u"written-messages-exactly-once"_s;
    QTest::newRow("a final sync failed") << Damage::FinalSyncFailed << u"every-device-synced"_s;
    QTest::newRow("a cancelled message reached some devices only")
        << Damage::CancelledMessageReachedSome << u"written-messages-exactly-once"_s;
    QTest::newRow("the server died of a SIGTERM")
        << Damage::ServerDiedOnSigterm << u"server-stopped-cleanly"_s;
    QTest::newRow("a send failed with no fault to blame")
        << Damage::SendFailedUnhit << u"unfaulted-sends-succeeded"_s;
}

void TestChaos::theCheckerFindsEachBrokenInvariant()
{
    QFETCH(Damage, damage);
    QFETCH(QString, check);

    // alice has two devices, bob one; alice-1 wrote two messages, bob-1 one.
    Scenario scenario;
    scenario.users = QStringList { u"alice"_s, u"bob"_s };
    scenario.devices = { { 0, u"alice-1"_s }, { 0, u"alice-2"_s }, { 1, u"bob-1"_s } };
    scenario.conversations = { { false, { 0, 1 }, {} } };
    const QStringList conversationIds { u"direct:alice:bob"_s };
    RunRecord record;
    record.writes = { { 0, 0, u"a1"_s, u"id-1"_s }, { 0, 0, u"a2"_s, u"id-2"_s },
        { 2, 0, u"b1"_s, u"id-3"_s } };
    QList<DeviceState> states(3);
    for (int device = 0; device < 3; ++device) {
        const QString own = device < 2 ? u"delivered"_s : u"received"_s;
        const QString others = device < 2 ? u"received"_s : u"delivered"_s;
        states[device].histories[0] = { entry(u"id-1"_s, 1, u"alice"_s, u"a1"_s, own),
            entry(u"id-2"_s, 2, u"alice"_s, u"a2"_s, own),
            entry(u"id-3"_s, 3, u"bob"_s, u"b1"_s, others) };
        states[device].summaries[0]
            = { { u"conversation"_s, u"direct:alice:bob"_s }, { u"unread"_s, device < 2 ? 1 : 0 } };
    }

    QList<QJsonObject>& bobHolds = states[2].histories[0];
    switch (damage) {
    case Damage::None:
        break;
    case Damage::MessageMissing:
        bobHolds.removeLast();
        break;
    case Damage::MessageTwice:
        bobHolds.append(entry(u"id-2"_s, 4, u"alice"_s, u"a2"_s, u"received"_s));
        break;
    case Damage::MessageNobodyWrote:
        for (DeviceState& state : states) {
            state.histories[0].append(entry(u"id-9"_s, 4, u"bob"_s, u"zz"_s, u"received"_s));
        }
        break;
    case Damage::SenderOrderSwapped:
        for (DeviceState& state : states) {
            std::swap(state.histories[0][0], state.histories[0][1]);
            state.histories[0][0][u"seq"_s] = 1;
            state.histories[0][1][u"seq"_s] = 2;
        }
        break;
    case Damage::DevicesDisagreeOnOrder:
        bobHolds[0][u"id"_s] = u"id-2"_s;
        bobHolds[1][u"id"_s] = u"id-1"_s;
        break;
    case Damage::MessageLeftQueued:
        states[1].outbox.append(entry(u"id-4"_s, 0, u"alice"_s, u"a3"_s, u"queued"_s));
        break;
    case Damage::UnreadDisagrees:
        states[1].summaries[0][u"unread"_s] = 0;
        break;
    case Damage::KilledSendReachedOnlyItsWriter:
        record.writes.append({ 0, 0, u"a3"_s, QString() });
        states[0].histories[0].append(entry(u"id-5"_s, 4, u"alice"_s, u"a3"_s, u"sent"_s));
        break;
    case Damage::FinalSyncFailed:
        record.unsyncedDevices.insert(1, u"timed out"_s);
        break;
    case Damage::CancelledMessageReachedSome:
        // Cancelled after the server had it: it stays with alice-1 and bob-1, not alice-2.
        record.writes[1].cancelled = true;
        states[1].histories[0].removeAt(1);
        break;
    case Damage::ServerDiedOnSigterm:
        record.uncleanServerStops.append(u"the server ended with status 1 and code 15"_s);
        break;
    case Damage::SendFailedUnhit:
        record.failedSends.append(u"alice-2: database is locked"_s);
        break;
    }

    ChaosChecker checker(scenario, conversationIds, record, states);
    const QList<Violation> violations = checker.check();
    QStringList found;
    for (const Violation& violation : violations) {
        found.append(violation.check + u": "_s + violation.detail);
    }
    const QByteArray foundText = found.join(u'\n').toUtf8();
    if (check.isEmpty()) {
        QVERIFY2(violations.isEmpty(), foundText.constData());
        return;
    }
    QVERIFY2(std::any_of(violations.begin(), violations.end(),
                 [&](const Violation& violation) { return violation.check == check; }),
        qPrintable(u"expected a violation of "_s + check + u", found:\n"_s + found.join(u'\n')));
}

void TestChaos::everyRunDeliversEachMessageExactlyOnce()
{
    const std::optional<quint64> replay
        = seedFromCommandLine ? seedFromCommandLine : numberFromEnvironment("FERRY_CHAOS_SEED");
    const std::optional<quint64> soakSeconds = numberFromEnvironment("FERRY_CHAOS_SECONDS");
    const quint64 budgetSeconds = soakSeconds.value_or(
        numberFromEnvironment("FERRY_CHAOS_BUDGET_SECONDS").value_or(DefaultBudgetSeconds));
    // A soak explores new seeds each time; the bounded run makes the same decisions every time.
    const quint64 baseSeed = numberFromEnvironment("FERRY_CHAOS_BASE_SEED")
                                 .value_or(soakSeconds ? QDateTime::currentMSecsSinceEpoch() : 1);

    Totals totals;
    QElapsedTimer elapsed;
    elapsed.start();
    if (replay) {
        qInfo("chaos: replaying seed %llu", static_cast<unsigned long long>(*replay));
        runSeed(*replay, true, totals);
    } else {
        qInfo("chaos: seeds from %llu for %llu s (FERRY_CHAOS_SEED=N replays one)",
            static_cast<unsigned long long>(baseSeed),
            static_cast<unsigned long long>(budgetSeconds));
        for (quint64 seed = baseSeed; elapsed.elapsed() < static_cast<qint64>(budgetSeconds) * 1000;
             ++seed) {
            runSeed(seed, false, totals);
        }
    }

    qInfo("chaos summary: %d runs in %lld s; %d violations; server restarts %d, read marks %d",
        totals.runs, elapsed.elapsed() / 1000, totals.violations, totals.serverRestarts,
        totals.readMarks);
    qInfo("chaos summary: faults injected: %s", qPrintable(describeFaults(totals.faults)));
    qInfo("chaos summary: messages: %s", qPrintable(describeMessages(totals.messages)));
    QStringList failing;
    for (const quint64 seed : totals.failingSeeds) {
        failing.append(QString::number(seed));
    }
    QVERIFY2(totals.failingSeeds.isEmpty(),
        qPrintable(u"violations in seeds "_s + failing.join(u", ")
            + u"; replay one with FERRY_CHAOS_SEED=<seed>"_s));
}

int TestChaos::runSeed(quint64 seed, bool printSteps, Totals& totals)
{
    const Scenario scenario = generateScenario(seed);
    qInfo("chaos: seed %llu: %lld users, %lld devices, %lld conversations, %lld steps, "
          "sync batch %s",
        static_cast<unsigned long long>(seed), static_cast<long long>(scenario.users.size()),
        static_cast<long long>(scenario.devices.size()),
        static_cast<long long>(scenario.conversations.size()),
        static_cast<long long>(scenario.steps.size()),
        scenario.syncBatch > 0 ? qPrintable(QString::number(scenario.syncBatch)) : "default");
    const QStringList deviceNames = scenario.deviceNames();
    // A replay shows each step as it starts, with the time into the run.
    QLoggingCategory::setFilterRules(printSteps ? u"ferry.chaos.debug=true"_s : QString());

    QElapsedTimer elapsed;
    elapsed.start();
    QTemporaryDir root;
    if (!root.isValid()) {
        qWarning("chaos: no temporary folder: %s", qPrintable(root.errorString()));
        totals.failingSeeds.append(seed);
        return 1;
    }
    ChaosExecutor executor(scenario, root.path());
    const RunRecord record = executor.run();
    QList<Violation> violations;
    if (!record.setupError.isEmpty()) {
        violations.append({ u"run-completed"_s, record.setupError });
        totals.add(record, MessageTally {}, 1);
    } else {
        const QList<DeviceState> states = executor.collect();
        ChaosChecker checker(scenario, executor.conversationIds(), record, states);
        violations = checker.check();
        totals.add(record, checker.tally(), static_cast<int>(violations.size()));
        qInfo("chaos: seed %llu: %lld s, %s; faults: %s; %lld violations",
            static_cast<unsigned long long>(seed), elapsed.elapsed() / 1000,
            qPrintable(describeMessages(checker.tally())),
            qPrintable(describeFaults(record.faultsInjected)),
            static_cast<long long>(violations.size()));
    }

    if (!violations.isEmpty()) {
        totals.failingSeeds.append(seed);
        // The profiles and the server's data and log stay for whoever looks into it.
        root.setAutoRemove(false);
        qWarning("chaos: seed %llu broke %lld invariants; its folders are kept in %s",
            static_cast<unsigned long long>(seed), static_cast<long long>(violations.size()),
            qPrintable(root.path()));
        if (!printSteps) {
            for (const Step& step : scenario.steps) {
                qWarning("  step: %s", qPrintable(step.describe(deviceNames)));
            }
        }
        for (const Violation& violation : violations) {
            qWarning("  %s: %s", qPrintable(violation.check), qPrintable(violation.detail));
        }
    }
    return static_cast<int>(violations.size());
}

int main(int argc, char** argv)
{
    // --seed N is ours; everything else goes to Qt Test.
    QList<char*> testArguments;
    for (int i = 0; i < argc; ++i) {
        if (qstrcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seedFromCommandLine = QByteArray(argv[++i]).toULongLong();
            continue;
        }
        testArguments.append(argv[i]);
    }
    // Qt Test ends a test function after 5 minutes, and a soak runs longer on purpose: its
    // bound is its budget, and each run's every wait is bounded. ctest's TIMEOUT bounds the rest.
    if (!qEnvironmentVariableIsSet("QTEST_FUNCTION_TIMEOUT")) {
        const quint64 budgetSeconds
            = numberFromEnvironment("FERRY_CHAOS_SECONDS")
                  .value_or(numberFromEnvironment("FERRY_CHAOS_BUDGET_SECONDS")
                                .value_or(DefaultBudgetSeconds));
        qputenv("QTEST_FUNCTION_TIMEOUT", QByteArray::number((budgetSeconds + 900) * 1000));
    }
    QCoreApplication application(argc, argv);
    TestChaos test;
    return QTest::qExec(&test, static_cast<int>(testArguments.size()), testArguments.data());
}

#include "tst_chaos.moc"
