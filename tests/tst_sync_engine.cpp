// The sync engine in this process, with real client stores in a temporary folder, against the
// real ferry-server on loopback: the states of a connection, several server addresses, a link cut
// after the server committed a message but before its ack arrived, a half-open link found by the
// heartbeat, a server restarted half-way through a catch-up, a message refused for good among
// others, and two devices of one account that end alike.
//
// The engines run with short timings (backoff from 50 ms up to 500 ms, a ping every 300 ms
// answered within 600 ms), so that every fault is noticed and mended in about a second.

#include "core/ClientStore.h"
#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "sync/SyncEngine.h"
#include "tests/support/Checks.h"
#include "tests/support/EngineTestbed.h"
#include "tests/support/FaultProxy.h"

#include <QElapsedTimer>
#include <QPointer>
#include <QSignalSpy>
#include <QTcpServer>
#include <QTest>
#include <QWebSocket>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;
using namespace std::chrono_literals;

using State = SyncEngine::State;
using Device = EngineTestbed::Device;

namespace {

// Bounds for waits on what takes some 100 ms on an idle machine; the margin is for a CI runner
// busy with other tests, and a failing test reaches it only when something hangs.
constexpr int WaitMs = 15'000;

/// The entries of a history with the given body.
QList<StoredMessage> withBody(const QList<StoredMessage>& entries, const QByteArray& body)
{
    QList<StoredMessage> found;
    for (const StoredMessage& entry : entries) {
        if (entry.body == body) {
            found.append(entry);
        }
    }
    return found;
}

/// What two devices must agree on about an entry; localId and writtenMs are each device's own.
QString comparable(const StoredMessage& entry)
{
    return describe(entry) + u" kind " + QString::number(static_cast<int>(entry.kind)) + u" at "
        + QString::number(entry.serverTimeMs.value_or(-1));
}

} // namespace

class TestSyncEngine : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanupTestCase();

    void aStartingEngineGoesThroughEachStateInOrderToLive();
    void aStoppedServerIsRetriedWithinTheBackoffCapAndUsedAgainOnceBack();
    void aWrongPasswordStopsTheEngineForGoodWithoutRetrying();
    void anUnreachableFirstServerIsPassedOverForTheSecond();
    void aLinkCutAfterTheCommitButBeforeTheAckLeavesOneCopyEverywhere();
    void aHalfOpenLinkIsFoundByTheHeartbeatAndReplaced();
    void aServerRestartedDuringCatchUpLeavesEveryMessageOnceInOrder();
    void aLinkCutPartWayThroughCatchUpLeavesEveryMessageOnceInOrder();
    void aMessageRefusedForGoodDoesNotHoldUpTheOthers_data();
    void aMessageRefusedForGoodDoesNotHoldUpTheOthers();
    void twoDevicesOfOneAccountEndWithTheSameHistoryAndReadState();

private:
    Result<QList<StoredMessage>> historyOf(Device& device, const QString& conversation) const;
    /// Checks that the device holds exactly `ids`, in this order, with seq 1, 2, 3…
    void verifyHoldsExactly(Device& device, const QString& conversation, const QByteArrayList& ids);

    EngineTestbed m_testbed { u"tst_sync_engine"_s, WaitMs };
};

Result<QList<StoredMessage>> TestSyncEngine::historyOf(
    Device& device, const QString& conversation) const
{
    return device.store->history(conversation);
}

void TestSyncEngine::verifyHoldsExactly(
    Device& device, const QString& conversation, const QByteArrayList& ids)
{
    // Every entry of the conversation, received, each once and in order: and nothing before
    // them, so the seqs are 1, 2, 3….
    verifyHoldsOnce(device, conversation, {}, ids, { MessageState::Received });
    if (QTest::currentTestFailed()) {
        return;
    }
    QList<quint64> fromOne;
    for (qsizetype i = 0; i < ids.size(); ++i) {
        fromOne.append(quint64(i + 1));
    }
    QCOMPARE(seqsAt(device, conversation, {}), fromOne);
}

void TestSyncEngine::initTestCase()
{
    // The default rate limit would hold the 3,000-message backlog below back for half a minute;
    // how the engine copes with rate limits is not what this suite is about.
    QVERIFY2(
        m_testbed.start({ u"--request-rate"_s, u"1000000"_s, u"--request-burst"_s, u"1000000"_s },
            {
                { u"sam"_s, u"sam"_s, true },
                { u"alice-laptop"_s, u"alice"_s, true },
                { u"alice-phone"_s, u"alice"_s, false },
                { u"bob"_s, u"bob"_s, true },
                { u"carol"_s, u"carol"_s, true },
                { u"dan"_s, u"dan"_s, true },
                { u"erin"_s, u"erin"_s, true },
            }),
        qPrintable(m_testbed.errorString()));
}

void TestSyncEngine::init()
{
    // A test that failed half-way may have left the server stopped; the next starts afresh.
    QVERIFY2(m_testbed.ensureServerRunning(), qPrintable(m_testbed.errorString()));
}

void TestSyncEngine::cleanupTestCase()
{
    QVERIFY2(m_testbed.stopServer(), qPrintable(m_testbed.errorString()));
}

void TestSyncEngine::aStartingEngineGoesThroughEachStateInOrderToLive()
{
    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(m_testbed.device(u"sam"_s));
    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    QCOMPARE(engine->state(), State::Offline);

    engine->start();
    QTRY_COMPARE_WITH_TIMEOUT(engine->state(), State::Live, WaitMs);
    QCOMPARE(statesSeen(states),
        QStringList({ u"Connecting"_s, u"Authenticating"_s, u"CatchingUp"_s, u"Live"_s }));
    QVERIFY(engine->lastLinkError().isEmpty());

    // Stopping closes the link on purpose: once the close handshake is over there is still no
    // error to report (`ferryctl status` used to show "connection closed (code 1000)").
    QPointer<QWebSocket> socket = engine->findChild<QWebSocket*>();
    QVERIFY(socket);
    engine->stop();
    QTRY_VERIFY_WITH_TIMEOUT(
        !socket || socket->state() == QAbstractSocket::UnconnectedState, WaitMs);
    QTest::qWait(50); // the engine's own handler of the disconnect runs after the state change
    QVERIFY2(engine->lastLinkError().isEmpty(), qPrintable(engine->lastLinkError()));
}

void TestSyncEngine::aStoppedServerIsRetriedWithinTheBackoffCapAndUsedAgainOnceBack()
{
    const SyncEngine::Settings settings = quickEngineSettings();
    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(m_testbed.device(u"sam"_s), settings);
    engine->start();
    QTRY_COMPARE_WITH_TIMEOUT(engine->state(), State::Live, WaitMs);

    // Each retry is checked the moment it is announced: with full jitter the wait may be a few
    // milliseconds, over before a poll could look at it.
    struct Announcement {
        QDateTime at;
        QDateTime nextRetryAt;
    };
    QList<Announcement> retries;
    connect(engine.get(), &SyncEngine::stateChanged, this, [&](State state) {
        if (state == State::WaitingToRetry) {
            retries.append({ QDateTime::currentDateTimeUtc(), engine->nextRetryAt() });
        }
    });
    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);

    const quint16 port = m_testbed.server().port();
    m_testbed.server().requestStop();
    QVERIFY2(m_testbed.server().waitForStopped(), qPrintable(m_testbed.server().errorString()));

    // Five failures in a row take the ceiling from 50 ms past the 500 ms cap.
    QTRY_VERIFY_WITH_TIMEOUT(retries.size() >= 6, WaitMs);
    for (const Announcement& retry : std::as_const(retries)) {
        const qint64 waitMs = retry.at.msecsTo(retry.nextRetryAt);
        // The engine works the time out a moment before it announces it.
        QVERIFY2(waitMs >= -20 && waitMs <= settings.backoff.cap.count(),
            qPrintable(u"a retry announced at "_s + retry.at.toString(Qt::ISODateWithMs)
                + u" is due in "_s + QString::number(waitMs) + u" ms"_s));
    }
    QVERIFY2(!engine->lastLinkError().isEmpty(), "the engine does not say why the link is down");

    QVERIFY2(m_testbed.server().restart(), qPrintable(m_testbed.server().errorString()));
    if (m_testbed.server().port() != port) {
        QSKIP("another program took the server's port while it was down; the engine cannot be "
              "expected to find the server on a new one");
    }
    states.clear();
    QTRY_COMPARE_WITH_TIMEOUT(engine->state(), State::Live, WaitMs);
    const QStringList afterRestart = statesSeen(states);
    QVERIFY2(afterRestart.endsWith(u"Live"_s)
            && afterRestart.mid(afterRestart.lastIndexOf(u"Connecting"_s))
                == QStringList(
                    { u"Connecting"_s, u"Authenticating"_s, u"CatchingUp"_s, u"Live"_s }),
        qPrintable(afterRestart.join(u", ")));
}

void TestSyncEngine::aWrongPasswordStopsTheEngineForGoodWithoutRetrying()
{
    Result<std::unique_ptr<ClientStore>> store
        = ClientStore::open(m_testbed.filePath(u"profiles/sam-wrong-password"_s));
    QVERIFY2(store, whyNot(store).constData());
    // The refusal comes after the same slow password hash as a success would.
    SyncEngine engine(store.value().get(), signInEngineSettings());
    engine.setServerUrl(m_testbed.server().url());
    QSignalSpy states(&engine, &SyncEngine::stateChanged);
    QSignalSpy stopped(&engine, &SyncEngine::stoppedWithError);

    engine.startWithPassword(u"sam"_s, "not sam's password", u"intruder"_s, false);
    QTRY_COMPARE_WITH_TIMEOUT(stopped.size(), 1, WaitMs);
    QCOMPARE(stopped.at(0).at(0).toString(), u"bad-credentials"_s);
    QCOMPARE(engine.state(), State::Offline);
    QCOMPARE(
        statesSeen(states), QStringList({ u"Connecting"_s, u"Authenticating"_s, u"Offline"_s }));

    // Nothing may happen now, so there is no signal to wait for: the engine is watched for a
    // second, several times its longest backoff.
    QTest::qWait(1000);
    QCOMPARE(
        statesSeen(states), QStringList({ u"Connecting"_s, u"Authenticating"_s, u"Offline"_s }));
    QCOMPARE(stopped.size(), 1);
    QVERIFY(!store.value()->account());
}

void TestSyncEngine::anUnreachableFirstServerIsPassedOverForTheSecond()
{
    // A port that was just free and is closed again: connecting to it is refused at once.
    QTcpServer closed;
    QVERIFY2(closed.listen(QHostAddress::LocalHost, 0), qPrintable(closed.errorString()));
    QUrl unreachable;
    unreachable.setScheme(u"ws"_s);
    unreachable.setHost(u"127.0.0.1"_s);
    unreachable.setPort(closed.serverPort());
    closed.close();

    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(m_testbed.device(u"sam"_s));
    engine->setServerUrls({ unreachable, m_testbed.server().url() });
    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    engine->start();

    QTRY_COMPARE_WITH_TIMEOUT(engine->state(), State::Live, WaitMs);
    QCOMPARE(engine->serverUrl(), m_testbed.server().url());
    QCOMPARE(statesSeen(states),
        QStringList({ u"Connecting"_s, u"WaitingToRetry"_s, u"Connecting"_s, u"Authenticating"_s,
            u"CatchingUp"_s, u"Live"_s }));
    QVERIFY2(engine->lastLinkError().contains(u"refused"_s, Qt::CaseInsensitive),
        qPrintable(engine->lastLinkError()));
}

void TestSyncEngine::aLinkCutAfterTheCommitButBeforeTheAckLeavesOneCopyEverywhere()
{
    Device& laptop = m_testbed.device(u"alice-laptop"_s);
    const QString conversation = directConversationId(u"alice"_s, u"bob"_s);
    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::cutBeforeSendAck() });
    QSignalSpy cuts(&proxy, &FaultProxy::linkCut);
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);
    const Result<double> resentBefore = m_testbed.server().metric(u"ferry_messages_resent_total"_s);
    QVERIFY2(resentBefore, whyNot(resentBefore).constData());

    const QByteArray body = "sent over a link cut before its ack";
    const Result<StoredMessage> written = laptop.store->enqueue(conversation, body);
    QVERIFY2(written, whyNot(written).constData());
    std::unique_ptr<SyncEngine> engine
        = m_testbed.engineFor(laptop, quickEngineSettings(), proxy.url());
    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    engine->stop();

    // The first link was cut with the ack in its path; the message went again on the second.
    QCOMPARE(cuts.size(), 1);
    QVERIFY2(statesSeen(states).contains(u"WaitingToRetry"_s),
        qPrintable(statesSeen(states).join(u", ")));
    QStringList sends;
    for (const QList<QVariant>& frame : std::as_const(clientFrames)) {
        if (frame.at(1).toString() == u"send") {
            sends.append(u"connection "_s + QString::number(frame.at(0).toInt()));
        }
    }
    QCOMPARE(sends, QStringList({ u"connection 1"_s, u"connection 2"_s }));
    // The server recognised the second as the message it had already stored.
    const Result<double> resentAfter = m_testbed.server().metric(u"ferry_messages_resent_total"_s);
    QVERIFY2(resentAfter, whyNot(resentAfter).constData());
    QVERIFY2(resentAfter.value() >= resentBefore.value() + 1,
        qPrintable(u"ferry_messages_resent_total went from "_s
            + QString::number(resentBefore.value()) + u" to "_s
            + QString::number(resentAfter.value())));

    // The phone syncs before bob, so no delivery receipt of bob's can make the message read as
    // delivered there: sent, like on the laptop.
    for (const QString& name : { u"alice-phone"_s, u"bob"_s }) {
        const Result<Done> synced = m_testbed.syncOnce(m_testbed.device(name));
        QVERIFY2(synced, whyNot(synced).constData());
    }
    const struct {
        QString device;
        MessageState state;
    } expectations[] = {
        { u"alice-laptop"_s, MessageState::Sent },
        { u"alice-phone"_s, MessageState::Sent },
        { u"bob"_s, MessageState::Received },
    };
    std::optional<quint64> seq;
    for (const auto& expected : expectations) {
        const Result<QList<StoredMessage>> history
            = historyOf(m_testbed.device(expected.device), conversation);
        QVERIFY2(history, whyNot(history).constData());
        const QList<StoredMessage> copies = withBody(history.value(), body);
        const QByteArray holds = expected.device.toUtf8() + " holds:\n" + describe(copies);
        QVERIFY2(copies.size() == 1, holds.constData());
        QVERIFY2(copies.first().messageId == written->messageId, holds.constData());
        QVERIFY2(copies.first().seq.has_value(), holds.constData());
        QVERIFY2(copies.first().state == expected.state, holds.constData());
        if (seq) {
            QVERIFY2(copies.first().seq == seq, holds.constData());
        }
        seq = copies.first().seq;
    }
}

void TestSyncEngine::aHalfOpenLinkIsFoundByTheHeartbeatAndReplaced()
{
    Device& laptop = m_testbed.device(u"alice-laptop"_s);
    const QString conversation = directConversationId(u"alice"_s, u"bob"_s);
    const SyncEngine::Settings settings = quickEngineSettings();
    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);
    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(laptop, settings, proxy.url());
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);

    // From now on nothing gets through that link, and neither end is told: no FIN, no RST.
    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    proxy.applyToOpenConnections(ProxyFault::stall());
    QElapsedTimer sinceStall;
    sinceStall.start();
    // Timed at the signal: the engine may be back on a new link before a poll could notice.
    qint64 detectedAfterMs = -1;
    connect(engine.get(), &SyncEngine::stateChanged, this, [&] {
        if (detectedAfterMs < 0) {
            detectedAfterMs = sinceStall.elapsed();
        }
    });
    const QByteArray body = "written while the link was half-open";
    const Result<StoredMessage> written = laptop.store->enqueue(conversation, body);
    QVERIFY2(written, whyNot(written).constData());
    engine->flushOutbox();

    QTRY_VERIFY_WITH_TIMEOUT(detectedAfterMs >= 0, WaitMs);
    QCOMPARE(statesSeen(states).first(), u"WaitingToRetry"_s);
    // A ping is due within one interval and its pong within the timeout; the rest is slack for
    // a loaded machine. The server's own heartbeat (30 s) or TCP (minutes) would take far longer.
    const qint64 boundMs
        = 3 * (settings.heartbeatInterval.count() + settings.heartbeatTimeout.count());
    QVERIFY2(detectedAfterMs <= boundMs,
        qPrintable(u"the engine left Live "_s + QString::number(detectedAfterMs)
            + u" ms after the link stalled"_s));

    // The message went into the stalled link, unanswered, and goes again on the new one.
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    QCOMPARE(proxy.acceptedCount(), 2);
    QVERIFY2(statesSeen(states).endsWith(u"Live"_s), qPrintable(statesSeen(states).join(u", ")));
    QStringList sends;
    for (const QList<QVariant>& frame : std::as_const(clientFrames)) {
        if (frame.at(1).toString() == u"send") {
            sends.append(u"connection "_s + QString::number(frame.at(0).toInt()));
        }
    }
    QCOMPARE(sends, QStringList({ u"connection 1"_s, u"connection 2"_s }));
    const std::optional<StoredMessage> sent = laptop.store->message(written->messageId);
    QVERIFY(sent);
    QCOMPARE(messageStateName(sent->state), u"sent"_s);
    engine->stop();

    Device& bob = m_testbed.device(u"bob"_s);
    const Result<Done> bobSynced = m_testbed.syncOnce(bob);
    QVERIFY2(bobSynced, whyNot(bobSynced).constData());
    const Result<QList<StoredMessage>> atBob = historyOf(bob, conversation);
    QVERIFY2(atBob, whyNot(atBob).constData());
    const QList<StoredMessage> copies = withBody(atBob.value(), body);
    QVERIFY2(copies.size() == 1, describe(copies).constData());
    QCOMPARE(copies.first().messageId, written->messageId);
    QCOMPARE(copies.first().seq, sent->seq);
}

void TestSyncEngine::aServerRestartedDuringCatchUpLeavesEveryMessageOnceInOrder()
{
    constexpr int Backlog = 3000;
    constexpr quint32 Batch = 100;
    Device& dan = m_testbed.device(u"dan"_s);
    Device& carol = m_testbed.device(u"carol"_s);
    const QString conversation = directConversationId(u"carol"_s, u"dan"_s);

    const Result<QByteArrayList> ids
        = m_testbed.writeMessages(dan, conversation, "backlog message", Backlog);
    QVERIFY2(ids, whyNot(ids).constData());

    SyncEngine::Settings settings = quickEngineSettings();
    settings.syncBatch = Batch;
    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(carol, settings);
    // The server is told to stop from inside the handler of the second batch, so the stop
    // lands in the middle of the catch-up, not after it.
    int added = 0;
    int addedAtStop = 0;
    connect(
        engine.get(), &SyncEngine::messagesAdded, this, [&](const QList<StoredMessage>& messages) {
            added += static_cast<int>(messages.size());
            if (addedAtStop == 0 && added >= 2 * static_cast<int>(Batch)) {
                addedAtStop = added;
                m_testbed.server().requestStop();
            }
        });
    QSignalSpy caughtUp(engine.get(), &SyncEngine::caughtUp);
    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    engine->start();

    QTRY_VERIFY_WITH_TIMEOUT(addedAtStop > 0, WaitMs);
    QVERIFY2(m_testbed.server().waitForStopped(), qPrintable(m_testbed.server().errorString()));
    QTRY_VERIFY_WITH_TIMEOUT(statesSeen(states).contains(u"WaitingToRetry"_s), WaitMs);
    QCOMPARE(caughtUp.size(), 0);
    QVERIFY2(added < Backlog, qPrintable(QString::number(added)));

    QVERIFY2(m_testbed.server().restart(), qPrintable(m_testbed.server().errorString()));
    // Here the engine is told where a server that had to move went; finding it is the
    // business of the state-machine test above.
    engine->setServerUrl(m_testbed.server().url());
    engine->retryNow();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    engine->stop();
    QCOMPARE(caughtUp.size(), 1);
    QCOMPARE(added, Backlog);

    verifyHoldsExactly(carol, conversation, ids.value());
    qInfo("The server stopped after %d of %d messages had arrived", addedAtStop, Backlog);
}

void TestSyncEngine::aLinkCutPartWayThroughCatchUpLeavesEveryMessageOnceInOrder()
{
    constexpr int Backlog = 1000;
    constexpr quint32 Batch = 100;
    // Welcome, Authenticated, then three batches at most (a presence notice may take a place).
    constexpr int FramesBeforeTheCut = 5;
    Device& erin = m_testbed.device(u"erin"_s);
    const QString conversation = directConversationId(u"dan"_s, u"erin"_s);
    const Result<QByteArrayList> ids = m_testbed.writeMessages(
        m_testbed.device(u"dan"_s), conversation, "backlog message", Backlog);
    QVERIFY2(ids, whyNot(ids).constData());

    FaultProxy proxy(m_testbed.server().port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::cutAfterFrames(FramesBeforeTheCut) });
    SyncEngine::Settings settings = quickEngineSettings();
    settings.syncBatch = Batch;
    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(erin, settings, proxy.url());
    int added = 0;
    int addedAtCut = -1;
    connect(engine.get(), &SyncEngine::messagesAdded, this,
        [&](const QList<StoredMessage>& messages) { added += static_cast<int>(messages.size()); });
    connect(&proxy, &FaultProxy::linkCut, this, [&] { addedAtCut = added; });
    QSignalSpy caughtUp(engine.get(), &SyncEngine::caughtUp);
    engine->start();

    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    engine->stop();
    QVERIFY2(addedAtCut > 0 && addedAtCut < Backlog,
        qPrintable(u"the link was cut with "_s + QString::number(addedAtCut) + u" of "_s
            + QString::number(Backlog) + u" messages stored"_s));
    QCOMPARE(proxy.acceptedCount(), 2);
    QCOMPARE(caughtUp.size(), 1);
    QCOMPARE(added, Backlog);
    verifyHoldsExactly(erin, conversation, ids.value());
}

void TestSyncEngine::aMessageRefusedForGoodDoesNotHoldUpTheOthers_data()
{
    QTest::addColumn<int>("sendWindow");
    QTest::addColumn<bool>("writtenWhileLive");

    QTest::newRow("one in flight at a time, written before connecting") << 1 << false;
    QTest::newRow("all in flight at once, written before connecting") << 64 << false;
    QTest::newRow("one in flight at a time, written while live") << 1 << true;
}

void TestSyncEngine::aMessageRefusedForGoodDoesNotHoldUpTheOthers()
{
    QFETCH(int, sendWindow);
    QFETCH(bool, writtenWhileLive);
    Device& laptop = m_testbed.device(u"alice-laptop"_s);
    const QString toBob = directConversationId(u"alice"_s, u"bob"_s);
    const QString toNobody = directConversationId(u"alice"_s, u"nobody-at-all"_s);
    const QByteArray tag = QTest::currentDataTag();

    SyncEngine::Settings settings = quickEngineSettings();
    settings.sendWindow = sendWindow;
    std::unique_ptr<SyncEngine> engine = m_testbed.engineFor(laptop, settings);
    QSignalSpy failed(engine.get(), &SyncEngine::messageFailed);
    if (writtenWhileLive) {
        engine->start();
        QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    }
    QList<StoredMessage> written;
    for (const auto& [conversation, body] : { std::pair(toBob, "first, to bob"),
             std::pair(toNobody, "second, to a user who does not exist"),
             std::pair(toBob, "third, to bob") }) {
        const Result<StoredMessage> message
            = laptop.store->enqueue(conversation, QByteArray(body) + " (" + tag + ')');
        QVERIFY2(message, whyNot(message).constData());
        written.append(message.value());
    }
    if (writtenWhileLive) {
        engine->flushOutbox();
    } else {
        engine->start();
    }
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle() && failed.size() == 1, WaitMs);
    engine->stop();

    QCOMPARE(failed.at(0).at(0).toByteArray(), written[1].messageId);
    const QString reason = failed.at(0).at(1).toString();
    QVERIFY2(reason.contains(u"nobody-at-all"_s), qPrintable(reason));

    const std::optional<StoredMessage> first = laptop.store->message(written[0].messageId);
    const std::optional<StoredMessage> second = laptop.store->message(written[1].messageId);
    const std::optional<StoredMessage> third = laptop.store->message(written[2].messageId);
    QVERIFY(first && second && third);
    QCOMPARE(messageStateName(first->state), u"sent"_s);
    QCOMPARE(messageStateName(second->state), u"failed"_s);
    QCOMPARE(second->failureReason, reason);
    QVERIFY(!second->seq);
    QCOMPARE(messageStateName(third->state), u"sent"_s);
    // The refused message took no place in any conversation: bob's two are next to each other.
    QVERIFY(first->seq && third->seq);
    QCOMPARE(*third->seq, *first->seq + 1);
    QVERIFY(laptop.store->outbox()->isEmpty());

    Device& bob = m_testbed.device(u"bob"_s);
    const Result<Done> bobSynced = m_testbed.syncOnce(bob);
    QVERIFY2(bobSynced, whyNot(bobSynced).constData());
    const Result<QList<StoredMessage>> atBob = historyOf(bob, toBob);
    QVERIFY2(atBob, whyNot(atBob).constData());
    for (const StoredMessage& expected : { *first, *third }) {
        const QList<StoredMessage> copies = withBody(atBob.value(), expected.body);
        QVERIFY2(copies.size() == 1, describe(copies).constData());
        QCOMPARE(copies.first().messageId, expected.messageId);
        QCOMPARE(copies.first().seq, expected.seq);
    }
    QVERIFY(withBody(atBob.value(), written[1].body).isEmpty());
}

void TestSyncEngine::twoDevicesOfOneAccountEndWithTheSameHistoryAndReadState()
{
    Device& laptop = m_testbed.device(u"alice-laptop"_s);
    Device& phone = m_testbed.device(u"alice-phone"_s);
    Device& bob = m_testbed.device(u"bob"_s);
    const QString conversation = directConversationId(u"alice"_s, u"bob"_s);

    for (const char* body : { "bob, one", "bob, two", "bob, three" }) {
        const Result<StoredMessage> written = bob.store->enqueue(conversation, body);
        QVERIFY2(written, whyNot(written).constData());
    }
    for (Device* each : { &bob, &laptop, &phone }) {
        const Result<Done> synced = m_testbed.syncOnce(*each);
        QVERIFY2(synced, whyNot(synced).constData());
    }
    const Result<ConversationSummary> phoneBefore = phone.store->conversation(conversation);
    QVERIFY2(phoneBefore, whyNot(phoneBefore).constData());
    QCOMPARE(phoneBefore->unread, 3);

    // Read on the laptop only; the phone learns it from the server.
    const Result<quint64> readUpTo = laptop.store->markRead(conversation);
    QVERIFY2(readUpTo, whyNot(readUpTo).constData());
    for (Device* each : { &laptop, &phone }) {
        const Result<Done> synced = m_testbed.syncOnce(*each);
        QVERIFY2(synced, whyNot(synced).constData());
    }

    const Result<ConversationSummary> onLaptop = laptop.store->conversation(conversation);
    const Result<ConversationSummary> onPhone = phone.store->conversation(conversation);
    QVERIFY2(onLaptop, whyNot(onLaptop).constData());
    QVERIFY2(onPhone, whyNot(onPhone).constData());
    QCOMPARE(onLaptop->readSeq, readUpTo.value());
    QCOMPARE(onPhone->readSeq, readUpTo.value());
    QCOMPARE(onLaptop->lastSeq, readUpTo.value());
    QCOMPARE(onPhone->unread, 0);
    QCOMPARE(onLaptop->unread, 0);

    const Result<QList<StoredMessage>> laptopHistory = historyOf(laptop, conversation);
    const Result<QList<StoredMessage>> phoneHistory = historyOf(phone, conversation);
    QVERIFY2(laptopHistory, whyNot(laptopHistory).constData());
    QVERIFY2(phoneHistory, whyNot(phoneHistory).constData());
    QStringList laptopEntries;
    QStringList phoneEntries;
    for (const StoredMessage& entry : laptopHistory.value()) {
        laptopEntries.append(comparable(entry));
    }
    for (const StoredMessage& entry : phoneHistory.value()) {
        phoneEntries.append(comparable(entry));
    }
    QVERIFY(laptopEntries.size() >= 3);
    QCOMPARE(phoneEntries, laptopEntries);
}

QTEST_GUILESS_MAIN(TestSyncEngine)
#include "tst_sync_engine.moc"
