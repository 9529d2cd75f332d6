// The reconnect schedule: exponential backoff with full jitter. The random source is injected,
// so every row pins the schedule down exactly.

#include "sync/ReconnectPolicy.h"

#include <QTest>

#include <cmath>
#include <limits>

using namespace ferry;
using namespace std::chrono_literals;

namespace {

// The largest value a source may return: the contract is [0, 1).
const double JustBelowOne = std::nextafter(1.0, 0.0);

ReconnectPolicy::RandomSource constant(double value)
{
    return [value] { return value; };
}

} // namespace

class TestReconnectPolicy : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void ceilingDoublesFromHalfASecondUpToTheCap_data();
    void ceilingDoublesFromHalfASecondUpToTheCap();
    void delaysAreTheCeilingScaledByTheRandomValue_data();
    void delaysAreTheCeilingScaledByTheRandomValue();
    void everyDelayIsBetweenZeroAndItsCeiling_data();
    void everyDelayIsBetweenZeroAndItsCeiling();
    void resetStartsTheScheduleOver();
    void aHugeFailureCountStaysAtTheCap();
    void customSettingsAreRespected_data();
    void customSettingsAreRespected();
};

void TestReconnectPolicy::ceilingDoublesFromHalfASecondUpToTheCap_data()
{
    QTest::addColumn<int>("failures");
    QTest::addColumn<qint64>("expectedCeiling");

    QTest::newRow("no failure yet") << 0 << qint64(500);
    QTest::newRow("one failure") << 1 << qint64(1000);
    QTest::newRow("two failures") << 2 << qint64(2000);
    QTest::newRow("three failures") << 3 << qint64(4000);
    QTest::newRow("four failures") << 4 << qint64(8000);
    QTest::newRow("five failures") << 5 << qint64(16000);
    QTest::newRow("six failures, 32 s capped") << 6 << qint64(30000);
    QTest::newRow("seven failures") << 7 << qint64(30000);
    QTest::newRow("a negative count counts as none") << -3 << qint64(500);
}

void TestReconnectPolicy::ceilingDoublesFromHalfASecondUpToTheCap()
{
    QFETCH(int, failures);
    QFETCH(qint64, expectedCeiling);

    const ReconnectPolicy policy;
    QCOMPARE(policy.ceiling(failures).count(), expectedCeiling);
}

void TestReconnectPolicy::delaysAreTheCeilingScaledByTheRandomValue_data()
{
    QTest::addColumn<double>("random");
    QTest::addColumn<QList<qint64>>("expectedDelays");
    // Delays are whole milliseconds, rounded down: just below 1 may give the ceiling less 1 ms.
    QTest::addColumn<qint64>("tolerance");

    QTest::newRow("random 0: try again at once")
        << 0.0 << QList<qint64> { 0, 0, 0, 0, 0, 0, 0, 0, 0 } << qint64(0);
    QTest::newRow("random 0.5: half the ceiling")
        << 0.5 << QList<qint64> { 250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000 }
        << qint64(0);
    QTest::newRow("random just below 1: the ceiling")
        << JustBelowOne << QList<qint64> { 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 }
        << qint64(1);
}

void TestReconnectPolicy::delaysAreTheCeilingScaledByTheRandomValue()
{
    QFETCH(double, random);
    QFETCH(QList<qint64>, expectedDelays);
    QFETCH(qint64, tolerance);

    ReconnectPolicy policy({}, constant(random));
    for (qsizetype i = 0; i < expectedDelays.size(); ++i) {
        const qint64 delay = policy.nextDelay().count();
        QVERIFY2(delay <= expectedDelays[i] && delay >= expectedDelays[i] - tolerance,
            qPrintable(u"delay " + QString::number(i + 1) + u" was " + QString::number(delay)
                + u" ms, expected " + QString::number(expectedDelays[i])));
        QCOMPARE(policy.failures(), int(i + 1));
    }
}

void TestReconnectPolicy::everyDelayIsBetweenZeroAndItsCeiling_data()
{
    QTest::addColumn<bool>("systemRandom");
    QTest::addColumn<double>("fixedValue");

    QTest::newRow("the system's random generator") << true << 0.0;
    // A source that breaks its contract must still not produce a negative or too long wait.
    QTest::newRow("a source returning more than 1") << false << 1.5;
    QTest::newRow("a source returning less than 0") << false << -0.25;
}

void TestReconnectPolicy::everyDelayIsBetweenZeroAndItsCeiling()
{
    QFETCH(bool, systemRandom);
    QFETCH(double, fixedValue);

    ReconnectPolicy policy(
        {}, systemRandom ? ReconnectPolicy::RandomSource() : constant(fixedValue));
    for (int failures = 0; failures < 200; ++failures) {
        const std::chrono::milliseconds ceiling = policy.ceiling(failures);
        const std::chrono::milliseconds delay = policy.nextDelay();
        QVERIFY2(delay >= 0ms && delay <= ceiling,
            qPrintable(u"after " + QString::number(failures) + u" failures the delay was "
                + QString::number(delay.count()) + u" ms, outside [0, "
                + QString::number(ceiling.count()) + u']'));
    }
}

void TestReconnectPolicy::resetStartsTheScheduleOver()
{
    ReconnectPolicy policy({}, constant(0.5));
    QCOMPARE(policy.nextDelay(), 250ms);
    QCOMPARE(policy.nextDelay(), 500ms);
    QCOMPARE(policy.nextDelay(), 1000ms);
    QCOMPARE(policy.failures(), 3);

    policy.reset();

    QCOMPARE(policy.failures(), 0);
    QCOMPARE(policy.nextDelay(), 250ms);
    QCOMPARE(policy.nextDelay(), 500ms);
}

void TestReconnectPolicy::aHugeFailureCountStaysAtTheCap()
{
    // 2^63 and beyond overflow any integer arithmetic; the ceiling must stay at the cap.
    ReconnectPolicy policy({}, constant(JustBelowOne));
    for (const int failures : { 31, 63, 64, 1000, 100'000, std::numeric_limits<int>::max() }) {
        QCOMPARE(policy.ceiling(failures), 30'000ms);
    }

    // A long outage, one failure after another: never past the cap, never wrapping to zero.
    for (int i = 0; i < 10'000; ++i) {
        const std::chrono::milliseconds delay = policy.nextDelay();
        QVERIFY2(delay <= 30'000ms && (i < 6 || delay >= 29'999ms),
            qPrintable(u"delay " + QString::number(i + 1) + u" was "
                + QString::number(delay.count()) + u" ms"));
    }
}

void TestReconnectPolicy::customSettingsAreRespected_data()
{
    QTest::addColumn<qint64>("base");
    QTest::addColumn<double>("factor");
    QTest::addColumn<qint64>("cap");
    QTest::addColumn<QList<qint64>>("expectedCeilings");

    QTest::newRow("0.1 s tripling up to 5 s")
        << qint64(100) << 3.0 << qint64(5000) << QList<qint64> { 100, 300, 900, 2700, 5000, 5000 };
    QTest::newRow("a fixed 1 s (factor 1)")
        << qint64(1000) << 1.0 << qint64(60000) << QList<qint64> { 1000, 1000, 1000, 1000 };
    QTest::newRow("growing by half, rounded down")
        << qint64(1000) << 1.5 << qint64(10000)
        << QList<qint64> { 1000, 1500, 2250, 3375, 5062, 7593, 10000, 10000 };
    QTest::newRow("a base above the cap waits the cap")
        << qint64(10000) << 2.0 << qint64(3000) << QList<qint64> { 3000, 3000, 3000 };
}

void TestReconnectPolicy::customSettingsAreRespected()
{
    QFETCH(qint64, base);
    QFETCH(double, factor);
    QFETCH(qint64, cap);
    QFETCH(QList<qint64>, expectedCeilings);

    BackoffSettings settings;
    settings.base = std::chrono::milliseconds(base);
    settings.factor = factor;
    settings.cap = std::chrono::milliseconds(cap);
    ReconnectPolicy policy(settings, constant(0.0));
    QCOMPARE(policy.settings().base.count(), base);
    QCOMPARE(policy.settings().factor, factor);
    QCOMPARE(policy.settings().cap.count(), cap);

    QList<qint64> ceilings;
    for (int failures = 0; failures < expectedCeilings.size(); ++failures) {
        ceilings.append(policy.ceiling(failures).count());
    }
    QCOMPARE(ceilings, expectedCeilings);
}

QTEST_GUILESS_MAIN(TestReconnectPolicy)
#include "tst_reconnectpolicy.moc"
