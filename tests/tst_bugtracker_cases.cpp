// Failures that users of other chat apps reported in those apps' public bug trackers (duplicated
// or lost messages after a flaky link, a stale device, a late acknowledgement, a killed client, a
// long catch-up), each replayed against Ferry: the sync engine in this process, or ferryctl,
// against the real ferry-server on loopback, with FaultProxy between them breaking the link the
// way the report describes. docs/reliability.md maps each report to its test, and names the
// cases other suites already cover.
//
// The server runs with --sync-batch 50, so every catch-up here comes in small batches. The
// engines run with short timings (backoff from 50 ms up to 500 ms, a ping every 300 ms answered
// within 600 ms), so that a fault is noticed and mended in about a second.

#include "core/ClientStore.h"
#include "core/ConversationId.h"
#include "sync/SyncEngine.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/EngineTestbed.h"
#include "tests/support/FaultProxy.h"

#include <QJsonObject>
#include <QSignalSpy>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

using State = SyncEngine::State;
using Device = EngineTestbed::Device;

namespace {

// Bounds for waits on what takes some 100 ms on an idle machine; the margin is for a CI runner
// busy with other tests (and a sanitizer), and a failing test reaches it only when something
// hangs.
constexpr int WaitMs = 20'000;
constexpr quint32 ServerSyncBatch = 50;

/// On which connections of a proxy the client sent a frame named `payload`, in order.
QList<int> connectionsOf(const QSignalSpy& clientFrames, const QString& payload)
{
    QList<int> connections;
    for (const QList<QVariant>& frame : clientFrames) {
        if (frame.at(1).toString() == payload) {
            connections.append(frame.at(0).toInt());
        }
    }
    return connections;
}

} // namespace

class TestBugtrackerCases : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanupTestCase();

    // The reports, one test each (a to f in docs/reliability.md).
    void threeCutsBeforeTheAckInARowLeaveOneCopyInTheSentState();
    void aDeviceDroppedWithoutACloseGetsWhatItMissedOnceWithTheSameIds();
    void theSendersOtherDeviceShowsItsOwnMessagesOnceInOrderWhenBackOnline();
    void anAckLaterThanTheClientsTimeoutLeavesOneMessageSentEverywhere();
    void aClientKilledWithMessagesInFlightDrainsItsQueueOnceWhenStartedAgain();
    void aBacklogOfManyBatchesArrivesWithoutAGapInOrder_data();
    void aBacklogOfManyBatchesArrivesWithoutAGapInOrder();

    // The proxy's other faults, end to end.
    void aDuplicatedEventBatchStoresNothingTwice_data();
    void aDuplicatedEventBatchStoresNothingTwice();
    void aDuplicatedSendIsOneMessageOnTheServerAndAtTheRecipient();
    void aDelayedJitteryLinkDeliversEveryMessageOnceInOrder();
    void anUpgradeRefusedOrBrokenOffIsRetriedUntilTheServerTakesIt();

private:
    double metric(const QString& name);

    EngineTestbed m_testbed { u"tst_bugtracker_cases"_s, WaitMs };
};

double TestBugtrackerCases::metric(const QString& name)
{
    const Result<double> value = m_testbed.server().metric(name);
    return value ? value.value() : -1;
}

void TestBugtrackerCases::initTestCase()
{
    QVERIFY2(
        m_testbed.start({ u"--sync-batch"_s, QString::number(ServerSyncBatch), u"--request-rate"_s,
                            u"1000000"_s, u"--request-burst"_s, u"1000000"_s },
            {
                { u"ann-laptop"_s, u"ann"_s, true },
                { u"ann-phone"_s, u"ann"_s, false },
                { u"bob"_s, u"bob"_s, true },
                { u"cat"_s, u"cat"_s, true },
                { u"dan"_s, u"dan"_s, true },
            }),
        qPrintable(m_testbed.errorString()));
}

void TestBugtrackerCases::init()
{
    // A test that failed half-way may have left the server stopped; the next starts afresh.
    QVERIFY2(m_testbed.ensureServerRunning(), qPrintable(m_testbed.errorString()));
}

void TestBugtrackerCases::cleanupTestCase()
{
    QVERIFY2(m_testbed.stopServer(), qPrintable(m_testbed.errorString()));
}

// (a) "Sent one message on a bad connection, it showed up three times for the other person": the
// link drops after the message went out and before its ack came back, three times running. The
// first link carries the message to the server and dies before the ack; the next two die before
// the server's first answer, so that the engine cannot learn from its catch-up that the message
// is already stored, and sends it again each time.
void TestBugtrackerCases::threeCutsBeforeTheAckInARowLeaveOneCopyInTheSentState()
{
    Device& laptop = m_testbed.device(u"ann-laptop"_s);
    const QString conversation = directConversationId(u"ann"_s, u"bob"_s);
    const QByteArray prefix = "(a) sent over three links cut before the ack";
    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections(
        { ProxyFault::cutBeforeSendAck(), ProxyFault::cutBeforeServerFrame(u"events"_s),
            ProxyFault::cutBeforeServerFrame(u"events"_s) });
    QSignalSpy cuts(&proxy, &FaultProxy::linkCut);
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);
    const double resentBefore = metric(u"ferry_messages_resent_total"_s);

    const Result<StoredMessage> written = laptop.store->enqueue(conversation, prefix);
    QVERIFY2(written, whyNot(written).constData());
    const Result<Done> settled = m_testbed.syncOnce(laptop, proxy.url());
    QVERIFY2(settled, whyNot(settled).constData());

    // Three links took the message and were cut with nothing of it answered; a fourth settled it.
    QCOMPARE(cuts.size(), 3);
    QCOMPARE(connectionsOf(clientFrames, u"send"_s).mid(0, 3), QList<int>({ 1, 2, 3 }));
    QVERIFY(proxy.acceptedCount() >= 4);
    QVERIFY2(metric(u"ferry_messages_resent_total"_s) >= resentBefore + 2,
        qPrintable(QString::number(metric(u"ferry_messages_resent_total"_s) - resentBefore)));
    verifyHoldsOnce(laptop, conversation, prefix, { written->messageId }, { MessageState::Sent });

    Device& bob = m_testbed.device(u"bob"_s);
    const Result<Done> synced = m_testbed.syncOnce(bob);
    QVERIFY2(synced, whyNot(synced).constData());
    verifyHoldsOnce(bob, conversation, prefix, { written->messageId }, { MessageState::Received });
    QCOMPARE(seqsAt(bob, conversation, prefix), seqsAt(laptop, conversation, prefix));
}

// (b) "My phone was stuck 'connected' after switching networks and missed messages; when it came
// back some were doubled": the link goes half-open (no FIN, no RST) while messages arrive for it.
void TestBugtrackerCases::aDeviceDroppedWithoutACloseGetsWhatItMissedOnceWithTheSameIds()
{
    Device& bob = m_testbed.device(u"bob"_s);
    const QString conversation = directConversationId(u"bob"_s, u"cat"_s);
    const QByteArray prefix = "(b) written while bob's link was half-open";
    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    std::unique_ptr<SyncEngine> engine
        = m_testbed.engineFor(bob, quickEngineSettings(), proxy.url());
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);

    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    proxy.applyToOpenConnections(ProxyFault::stall());
    const Result<QByteArrayList> ids
        = m_testbed.writeMessages(m_testbed.device(u"cat"_s), conversation, prefix, 5);
    QVERIFY2(ids, whyNot(ids).constData());

    QTRY_VERIFY_WITH_TIMEOUT(
        historyWithPrefix(bob, conversation, prefix).size() >= ids->size() && engine->isIdle(),
        WaitMs);
    engine->stop();

    // They came on a new link, after the heartbeat gave the stalled one up.
    QVERIFY2(statesSeen(states).contains(u"WaitingToRetry"_s),
        qPrintable(statesSeen(states).join(u", ")));
    QVERIFY(proxy.acceptedCount() >= 2);
    verifyHoldsOnce(bob, conversation, prefix, ids.value(), { MessageState::Received });
}

// (c) "Messages I sent from my laptop appear out of order (or twice) on my phone": the sender's
// other device was offline while it sent, and catches up afterwards.
void TestBugtrackerCases::theSendersOtherDeviceShowsItsOwnMessagesOnceInOrderWhenBackOnline()
{
    constexpr int Count = 6;
    Device& laptop = m_testbed.device(u"ann-laptop"_s);
    Device& phone = m_testbed.device(u"ann-phone"_s);
    const QString conversation = directConversationId(u"ann"_s, u"dan"_s);
    const QByteArray prefix = "(c) written on the laptop while the phone was off";

    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(laptop);
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    const Result<QByteArrayList> ids
        = enqueueMessages(laptop, conversation, prefix, Count, engine.get());
    QVERIFY2(ids, whyNot(ids).constData());
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    engine->stop();
    verifyHoldsOnce(laptop, conversation, prefix, ids.value(), { MessageState::Sent });

    const Result<Done> synced = m_testbed.syncOnce(phone);
    QVERIFY2(synced, whyNot(synced).constData());
    // Its own account's messages: sent, not received, and numbered as on the laptop.
    verifyHoldsOnce(phone, conversation, prefix, ids.value(), { MessageState::Sent });
    QCOMPARE(seqsAt(phone, conversation, prefix), seqsAt(laptop, conversation, prefix));
}

// (d) "The server got my message but the app said it failed; I pressed retry and it went twice":
// the server commits, but its ack arrives after the client's timeout, so the client drops the
// link and sends again on a new one.
void TestBugtrackerCases::anAckLaterThanTheClientsTimeoutLeavesOneMessageSentEverywhere()
{
    const SyncEngine::Settings settings = quickEngineSettings();
    // Held well past a ping interval and its timeout: the pong queued behind the held ack never
    // comes in time, and the engine gives the link up.
    const int holdMs
        = 4 * static_cast<int>((settings.heartbeatInterval + settings.heartbeatTimeout).count());
    Device& laptop = m_testbed.device(u"ann-laptop"_s);
    const QString conversation = directConversationId(u"ann"_s, u"cat"_s);
    const QByteArray prefix = "(d) acknowledged after the client gave up";
    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::holdSendAck(holdMs) });
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);
    QSignalSpy serverFrames(&proxy, &FaultProxy::serverFrame);
    const double resentBefore = metric(u"ferry_messages_resent_total"_s);

    const Result<StoredMessage> written = laptop.store->enqueue(conversation, prefix);
    QVERIFY2(written, whyNot(written).constData());
    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(laptop, settings, proxy.url());
    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    engine->stop();

    // The server had answered on the first link (its ack reached the proxy there), the engine
    // gave that link up, and sent the message again on the second.
    QList<int> acked;
    for (const QList<QVariant>& frame : std::as_const(serverFrames)) {
        if (frame.at(1).toString() == u"send_ack") {
            acked.append(frame.at(0).toInt());
        }
    }
    QVERIFY2(acked.contains(1), "the server never answered on the first link");
    QVERIFY2(statesSeen(states).contains(u"WaitingToRetry"_s),
        qPrintable(statesSeen(states).join(u", ")));
    // (A machine so loaded that the second link missed a pong too would show a third.)
    QCOMPARE(connectionsOf(clientFrames, u"send"_s).mid(0, 2), QList<int>({ 1, 2 }));
    QVERIFY(metric(u"ferry_messages_resent_total"_s) >= resentBefore + 1);

    verifyHoldsOnce(laptop, conversation, prefix, { written->messageId }, { MessageState::Sent });
    Device& phone = m_testbed.device(u"ann-phone"_s);
    Device& cat = m_testbed.device(u"cat"_s);
    for (Device* each : { &phone, &cat }) {
        const Result<Done> synced = m_testbed.syncOnce(*each);
        QVERIFY2(synced, whyNot(synced).constData());
    }
    verifyHoldsOnce(phone, conversation, prefix, { written->messageId }, { MessageState::Sent });
    verifyHoldsOnce(cat, conversation, prefix, { written->messageId }, { MessageState::Received });
    QCOMPARE(seqsAt(cat, conversation, prefix), seqsAt(laptop, conversation, prefix));
}

// (e) "I force-closed the app with messages still sending; after reopening they were stuck, or
// went twice": ferryctl listen is killed (SIGKILL) after the server committed its queued messages
// and before any ack reached it, then started again; nobody touches the outbox.
void TestBugtrackerCases::aClientKilledWithMessagesInFlightDrainsItsQueueOnceWhenStartedAgain()
{
    constexpr int Count = 3;
    Ctl eve(m_testbed.filePath(u"ctl/eve"_s), m_testbed.server().url());
    Ctl fay(m_testbed.filePath(u"ctl/fay"_s), m_testbed.server().url());
    const CtlRun eveRegistered = eve.registerUser(u"eve"_s, u"laptop"_s);
    QVERIFY2(eveRegistered.ok(), qPrintable(eveRegistered.describe()));
    const CtlRun fayRegistered = fay.registerUser(u"fay"_s, u"phone"_s);
    QVERIFY2(fayRegistered.ok(), qPrintable(fayRegistered.describe()));

    QStringList ids;
    for (int i = 1; i <= Count; ++i) {
        const CtlRun send
            = eve.send(u"fay"_s, u"(e) queued before the kill "_s + QString::number(i));
        QVERIFY2(send.ok(), qPrintable(send.describe()));
        ids.append(send.out.trimmed());
    }

    // The first link holds the acks back for a minute; the kill comes long before.
    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::holdSendAck(60'000) });
    QSignalSpy serverFrames(&proxy, &FaultProxy::serverFrame);
    eve.setServerUrl(proxy.url());
    const auto acksAtTheProxy = [&] {
        int acks = 0;
        for (const QList<QVariant>& frame : std::as_const(serverFrames)) {
            acks += frame.at(1).toString() == u"send_ack" ? 1 : 0;
        }
        return acks;
    };

    std::unique_ptr<QProcess> listen = eve.start({ u"listen"_s });
    QVERIFY2(listen->waitForStarted(10'000), qPrintable(listen->errorString()));
    QTRY_COMPARE_WITH_TIMEOUT(acksAtTheProxy(), Count, WaitMs);
    listen->kill();
    QVERIFY(listen->waitForFinished(10'000));
    const Result<QJsonObject> afterKill = eve.status();
    QVERIFY2(afterKill, whyNot(afterKill).constData());
    QCOMPARE(afterKill->value(u"outbox"_s).toInteger(), Count);
    const double resentBefore = metric(u"ferry_messages_resent_total"_s);

    // Started again, as a login session or a service manager would; nothing else is done.
    std::unique_ptr<QProcess> again = eve.start({ u"listen"_s });
    QVERIFY2(again->waitForStarted(10'000), qPrintable(again->errorString()));
    const auto drained = [&] {
        const Result<QJsonObject> status = eve.status();
        return status && status->value(u"outbox"_s).toInteger() == 0;
    };
    QVERIFY2(QTest::qWaitFor(drained, WaitMs), "the outbox never emptied");
    again->terminate();
    QVERIFY(again->waitForFinished(10'000));
    QCOMPARE(again->exitStatus(), QProcess::NormalExit);
    QCOMPARE(again->exitCode(), 0);
    QVERIFY(metric(u"ferry_messages_resent_total"_s) >= resentBefore + Count);

    const Result<QList<QJsonObject>> atEve = eve.history(u"fay"_s);
    QVERIFY2(atEve, whyNot(atEve).constData());
    QCOMPARE(fieldOf(atEve.value(), u"id"_s), ids);
    QCOMPARE(fieldOf(atEve.value(), u"state"_s), QStringList(Count, u"sent"_s));
    const CtlRun faySynced = fay.sync();
    QVERIFY2(faySynced.ok(), qPrintable(faySynced.describe()));
    const Result<QList<QJsonObject>> atFay = fay.history(u"eve"_s);
    QVERIFY2(atFay, whyNot(atFay).constData());
    QVERIFY2(fieldOf(atFay.value(), u"id"_s) == ids, qPrintable(describeHistory(atFay.value())));
    QCOMPARE(seqsOf(atFay.value()), QList<qint64>({ 1, 2, 3 }));
}

void TestBugtrackerCases::aBacklogOfManyBatchesArrivesWithoutAGapInOrder_data()
{
    QTest::addColumn<bool>("killServerHalfWay");

    QTest::newRow("after a long time offline") << false;
    QTest::newRow("with the server killed and restarted half-way") << true;
}

// (f) "After a week offline my chat history had holes / came in the wrong order": a backlog
// many times the server's batch size, fetched in one go and across a server crash.
void TestBugtrackerCases::aBacklogOfManyBatchesArrivesWithoutAGapInOrder()
{
    QFETCH(bool, killServerHalfWay);
    constexpr int Backlog = 8 * static_cast<int>(ServerSyncBatch) + 17;
    Device& cat = m_testbed.device(u"cat"_s);
    const QString conversation = directConversationId(u"cat"_s, u"dan"_s);
    const QByteArray prefix = "(f) " + QByteArray(QTest::currentDataTag());
    const Result<QByteArrayList> ids
        = m_testbed.writeMessages(m_testbed.device(u"dan"_s), conversation, prefix, Backlog);
    QVERIFY2(ids, whyNot(ids).constData());

    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    QSignalSpy serverFrames(&proxy, &FaultProxy::serverFrame);
    // The engine asks for ten times the server's batch; the server's limit is what counts.
    SyncEngine::Settings settings = quickEngineSettings();
    settings.syncBatch = 10 * ServerSyncBatch;
    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(cat, settings, proxy.url());
    int added = 0;
    int addedAtKill = -1;
    connect(
        engine.get(), &SyncEngine::messagesAdded, this, [&](const QList<StoredMessage>& messages) {
            added += static_cast<int>(withPrefix(messages, prefix).size());
            if (killServerHalfWay && addedAtKill < 0 && added >= 2 * int(ServerSyncBatch)) {
                // Nothing more gets through this link, and the server dies with it.
                proxy.applyToOpenConnections(ProxyFault::stall());
                addedAtKill = added;
                m_testbed.server().kill();
            }
        });
    QSignalSpy caughtUp(engine.get(), &SyncEngine::caughtUp);
    engine->start();

    if (killServerHalfWay) {
        QTRY_VERIFY_WITH_TIMEOUT(addedAtKill >= 0, WaitMs);
        QVERIFY2(addedAtKill < Backlog, qPrintable(QString::number(addedAtKill)));
        QCOMPARE(caughtUp.size(), 0);
        QVERIFY2(m_testbed.server().restart(), qPrintable(m_testbed.server().errorString()));
        proxy.setServerPort(m_testbed.server().port());
    }
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle() && added >= Backlog, WaitMs);
    engine->stop();

    int batches = 0;
    for (const QList<QVariant>& frame : std::as_const(serverFrames)) {
        batches += frame.at(1).toString() == u"events" ? 1 : 0;
    }
    QVERIFY2(batches >= Backlog / int(ServerSyncBatch), qPrintable(QString::number(batches)));
    QCOMPARE(added, Backlog);
    verifyHoldsOnce(cat, conversation, prefix, ids.value(), { MessageState::Received });
    if (killServerHalfWay) {
        QVERIFY(proxy.acceptedCount() >= 2);
        qInfo("The server was killed after %d of %d messages had arrived", addedAtKill, Backlog);
    }
}

void TestBugtrackerCases::aDuplicatedEventBatchStoresNothingTwice_data()
{
    QTest::addColumn<int>("nth");
    QTest::addColumn<bool>("writtenWhileLive");

    QTest::newRow("the catch-up batch") << 1 << false;
    QTest::newRow("the first live push") << 2 << true;
}

void TestBugtrackerCases::aDuplicatedEventBatchStoresNothingTwice()
{
    QFETCH(int, nth);
    QFETCH(bool, writtenWhileLive);
    Device& bob = m_testbed.device(u"bob"_s);
    Device& dan = m_testbed.device(u"dan"_s);
    const QString conversation = directConversationId(u"bob"_s, u"dan"_s);
    const QByteArray prefix = "duplicated batch, " + QByteArray(QTest::currentDataTag());
    // Caught up beforehand, so that the catch-up is one batch and the next one a live push.
    const Result<Done> synced = m_testbed.syncOnce(bob);
    QVERIFY2(synced, whyNot(synced).constData());

    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::duplicateServerFrame(u"events"_s, nth) });
    QSignalSpy forwarded(&proxy, &FaultProxy::frameForwarded);
    std::unique_ptr<SyncEngine> engine
        = m_testbed.engineFor(bob, quickEngineSettings(), proxy.url());
    Result<QByteArrayList> ids = QByteArrayList();
    if (!writtenWhileLive) {
        ids = m_testbed.writeMessages(dan, conversation, prefix, 5);
        QVERIFY2(ids, whyNot(ids).constData());
    }
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    if (writtenWhileLive) {
        ids = m_testbed.writeMessages(dan, conversation, prefix, 5);
        QVERIFY2(ids, whyNot(ids).constData());
    }
    const auto doubled = [&] {
        for (const QList<QVariant>& frame : std::as_const(forwarded)) {
            if (frame.at(2).toString() == u"events" && frame.at(4).toInt() == 2) {
                return true;
            }
        }
        return false;
    };
    QTRY_VERIFY_WITH_TIMEOUT(doubled(), WaitMs);

    // One more message behind the copy: once it is stored, the copy ahead of it was handled.
    const Result<QByteArrayList> marker
        = m_testbed.writeMessages(dan, conversation, prefix + " marker", 1);
    QVERIFY2(marker, whyNot(marker).constData());
    QTRY_VERIFY_WITH_TIMEOUT(
        !historyWithPrefix(bob, conversation, prefix + " marker").isEmpty() && engine->isIdle(),
        WaitMs);
    engine->stop();

    verifyHoldsOnce(
        bob, conversation, prefix, ids.value() + marker.value(), { MessageState::Received });
}

void TestBugtrackerCases::aDuplicatedSendIsOneMessageOnTheServerAndAtTheRecipient()
{
    constexpr int Count = 3;
    Device& laptop = m_testbed.device(u"ann-laptop"_s);
    const QString conversation = directConversationId(u"ann"_s, u"bob"_s);
    const QByteArray prefix = "the first send went twice";
    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::duplicateClientFrame(u"send"_s) });
    QSignalSpy forwarded(&proxy, &FaultProxy::frameForwarded);
    const double resentBefore = metric(u"ferry_messages_resent_total"_s);

    const Result<QByteArrayList> ids = enqueueMessages(laptop, conversation, prefix, Count);
    QVERIFY2(ids, whyNot(ids).constData());
    const Result<Done> settled = m_testbed.syncOnce(laptop, proxy.url());
    QVERIFY2(settled, whyNot(settled).constData());

    int doubledSends = 0;
    for (const QList<QVariant>& frame : std::as_const(forwarded)) {
        doubledSends += frame.at(2).toString() == u"send" && frame.at(4).toInt() == 2 ? 1 : 0;
    }
    QCOMPARE(doubledSends, 1);
    QVERIFY(metric(u"ferry_messages_resent_total"_s) >= resentBefore + 1);
    verifyHoldsOnce(laptop, conversation, prefix, ids.value(), { MessageState::Sent });
    // The copy took no place in the conversation: the three are numbered one after another.
    const QList<quint64> seqs = seqsAt(laptop, conversation, prefix);
    QCOMPARE(seqs.size(), Count);
    QCOMPARE(seqs.last(), seqs.first() + Count - 1);

    Device& bob = m_testbed.device(u"bob"_s);
    const Result<Done> synced = m_testbed.syncOnce(bob);
    QVERIFY2(synced, whyNot(synced).constData());
    verifyHoldsOnce(bob, conversation, prefix, ids.value(), { MessageState::Received });
    QCOMPARE(seqsAt(bob, conversation, prefix), seqs);
}

void TestBugtrackerCases::aDelayedJitteryLinkDeliversEveryMessageOnceInOrder()
{
    constexpr int Count = 20;
    Device& laptop = m_testbed.device(u"ann-laptop"_s);
    Device& bob = m_testbed.device(u"bob"_s);
    const QString conversation = directConversationId(u"ann"_s, u"bob"_s);
    const QByteArray prefix = "over a slow and jittery link";
    // Every frame both ways held 20 to 80 ms: a slow mobile link, well within the heartbeat.
    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.setDefaultFault(ProxyFault::delay(20, 60));
    QSignalSpy forwarded(&proxy, &FaultProxy::frameForwarded);

    std::unique_ptr<SyncEngine> atBob
        = m_testbed.engineFor(bob, quickEngineSettings(), proxy.url());
    std::unique_ptr<SyncEngine> atLaptop
        = m_testbed.engineFor(laptop, quickEngineSettings(), proxy.url());
    atBob->start();
    atLaptop->start();
    QTRY_VERIFY_WITH_TIMEOUT(atBob->isIdle() && atLaptop->isIdle(), WaitMs);

    const Result<QByteArrayList> ids
        = enqueueMessages(laptop, conversation, prefix, Count, atLaptop.get());
    QVERIFY2(ids, whyNot(ids).constData());
    QTRY_VERIFY_WITH_TIMEOUT(historyWithPrefix(bob, conversation, prefix).size() >= Count
            && atBob->isIdle() && atLaptop->isIdle(),
        WaitMs);
    atBob->stop();
    atLaptop->stop();

    // Bob's device reports them delivered as they come, so the laptop may have heard so.
    verifyHoldsOnce(
        laptop, conversation, prefix, ids.value(), { MessageState::Sent, MessageState::Delivered });
    verifyHoldsOnce(bob, conversation, prefix, ids.value(), { MessageState::Received });
    QCOMPARE(seqsAt(bob, conversation, prefix), seqsAt(laptop, conversation, prefix));
    for (const QList<QVariant>& frame : std::as_const(forwarded)) {
        QVERIFY2(frame.at(3).toLongLong() >= 20, "a frame went through without its delay");
    }
}

// A load balancer in front of a server that is starting up answers 503, a proxy drops the upgrade
// half-way, a port accepts and closes: each is one more failed try, never a reason to give up.
void TestBugtrackerCases::anUpgradeRefusedOrBrokenOffIsRetriedUntilTheServerTakesIt()
{
    Device& laptop = m_testbed.device(u"ann-laptop"_s);
    const QString conversation = directConversationId(u"ann"_s, u"bob"_s);
    const QByteArray prefix = "written while the upgrade kept failing";
    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::refuseHandshake(503), ProxyFault::cutDuringHandshake(),
        ProxyFault::closeAtOnce() });

    const Result<StoredMessage> written = laptop.store->enqueue(conversation, prefix);
    QVERIFY2(written, whyNot(written).constData());
    std::unique_ptr<SyncEngine> engine
        = m_testbed.engineFor(laptop, quickEngineSettings(), proxy.url());
    QStringList linkErrors;
    connect(engine.get(), &SyncEngine::stateChanged, this, [&](State state) {
        if (state == State::WaitingToRetry) {
            linkErrors.append(engine->lastLinkError());
        }
    });
    QSignalSpy stopped(engine.get(), &SyncEngine::stoppedWithError);
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    engine->stop();

    QCOMPARE(stopped.size(), 0);
    QVERIFY(proxy.acceptedCount() >= 4);
    QVERIFY2(linkErrors.size() >= 3, qPrintable(linkErrors.join(u" | ")));
    QVERIFY2(linkErrors.first().contains(u"503"_s), qPrintable(linkErrors.join(u" | ")));
    verifyHoldsOnce(laptop, conversation, prefix, { written->messageId }, { MessageState::Sent });
}

QTEST_GUILESS_MAIN(TestBugtrackerCases)
#include "tst_bugtracker_cases.moc"
