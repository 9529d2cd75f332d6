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
#include "core/MessageId.h"
#include "ferry.pb.h"
#include "sync/SyncEngine.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/FaultProxy.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"

#include <QDir>
#include <QFileInfo>
#include <QJsonObject>
#include <QMetaEnum>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <map>
#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;
using namespace std::chrono_literals;

using State = SyncEngine::State;

namespace {

// Bounds for waits on what takes some 100 ms on an idle machine; the margin is for a CI runner
// busy with other tests (and a sanitizer), and a failing test reaches it only when something
// hangs.
constexpr int WaitMs = 20'000;
constexpr quint32 ServerSyncBatch = 50;

const QByteArray Password = QByteArrayLiteral("a password long enough");

SyncEngine::Settings quickSettings()
{
    SyncEngine::Settings settings;
    settings.backoff.base = 50ms;
    settings.backoff.cap = 500ms;
    settings.heartbeatInterval = 300ms;
    settings.heartbeatTimeout = 600ms;
    settings.watchNetwork = false;
    return settings;
}

QString stateName(State state)
{
    return QString::fromLatin1(QMetaEnum::fromType<State>().valueToKey(static_cast<int>(state)));
}

QStringList statesSeen(const QSignalSpy& spy)
{
    QStringList names;
    for (const QList<QVariant>& arguments : spy) {
        names.append(stateName(arguments.at(0).value<State>()));
    }
    return names;
}

/// The entries of a history whose body starts with `prefix`, in the history's order.
QList<StoredMessage> withPrefix(const QList<StoredMessage>& entries, const QByteArray& prefix)
{
    QList<StoredMessage> found;
    for (const StoredMessage& entry : entries) {
        if (entry.body.startsWith(prefix)) {
            found.append(entry);
        }
    }
    return found;
}

QByteArray describe(const QList<StoredMessage>& entries)
{
    QStringList lines;
    for (const StoredMessage& entry : entries) {
        lines.append(MessageId::fromBytes(entry.messageId)->toString() + u" seq "
            + (entry.seq ? QString::number(*entry.seq) : u"-"_s) + u' ' + entry.sender + u' '
            + messageStateName(entry.state) + u" \"" + QString::fromUtf8(entry.body) + u'"');
    }
    return (lines.isEmpty() ? u"(no entries)"_s : lines.join(u'\n')).toUtf8();
}

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

/// Where the test's files go: a RAM-backed folder where there is one, as in tst_sync_engine:
/// the backlogs cost the server a flushed commit per message, and no test here is about what
/// reaches the disk (tst_crash_resend is).
QString memoryBackedTemplate(const QString& name)
{
    const QFileInfo shm(u"/dev/shm"_s);
    const QString folder
        = shm.isDir() && shm.isWritable() ? shm.absoluteFilePath() : QDir::tempPath();
    return folder + u'/' + name + u"-XXXXXX";
}

struct Device {
    QString profile;
    std::unique_ptr<ClientStore> store;
};

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
    Result<Done> signIn(const QString& name, const QString& user, bool createAccount);
    Device& device(const QString& name) { return m_devices.at(name); }
    std::unique_ptr<SyncEngine> engineFor(Device& device,
        SyncEngine::Settings settings = quickSettings(), const QUrl& url = {}) const;
    Result<Done> syncOnce(Device& device) const;
    /// Writes `count` messages from the device's account over a raw protocol connection, bodies
    /// `prefix` and a number from 1, and returns their ids in the order the server numbered them.
    Result<QByteArrayList> writeMessages(
        Device& sender, const QString& conversation, const QByteArray& prefix, int count) const;
    /// Checks that the device holds exactly the messages `ids`, once each, in this order, with
    /// ascending seq, each in one of `states`, and no gap in the conversation.
    void verifyHoldsOnce(Device& device, const QString& conversation, const QByteArray& prefix,
        const QByteArrayList& ids, const QList<MessageState>& states);
    /// The seq of each entry with the prefix, in the device's history order.
    QList<quint64> seqsAt(Device& device, const QString& conversation, const QByteArray& prefix);
    double metric(const QString& name) const;

    QTemporaryDir m_root { memoryBackedTemplate(u"tst_bugtracker_cases"_s) };
    std::unique_ptr<ServerProcess> m_server;
    std::map<QString, Device> m_devices;
};

Result<Done> TestBugtrackerCases::signIn(
    const QString& name, const QString& user, bool createAccount)
{
    Device device;
    device.profile = m_root.filePath(u"profiles/"_s + name);
    Result<std::unique_ptr<ClientStore>> store = ClientStore::open(device.profile);
    if (!store) {
        return store.error();
    }
    device.store = std::move(store.value());

    // The password hash is slow by design, slower still on a loaded machine.
    SyncEngine::Settings settings = quickSettings();
    settings.heartbeatTimeout = 10s;
    SyncEngine engine(device.store.get(), settings);
    engine.setServerUrl(m_server->url());
    QString refusal;
    connect(&engine, &SyncEngine::stoppedWithError, this,
        [&](const QString& kind, const QString& message) { refusal = kind + u": " + message; });
    engine.startWithPassword(user, Password, name, createAccount);
    const bool live = QTest::qWaitFor(
        [&] { return engine.state() == State::Live || !refusal.isEmpty(); }, WaitMs);
    engine.stop();
    if (!refusal.isEmpty() || !live) {
        return Error { u"sign-in"_s,
            u"could not sign " + name + u" in as " + user + u": "
                + (refusal.isEmpty() ? u"not live in time"_s : refusal) };
    }
    m_devices[name] = std::move(device);
    return Done {};
}

std::unique_ptr<SyncEngine> TestBugtrackerCases::engineFor(
    Device& device, SyncEngine::Settings settings, const QUrl& url) const
{
    auto engine = std::make_unique<SyncEngine>(device.store.get(), settings);
    engine->setServerUrl(url.isValid() ? url : m_server->url());
    return engine;
}

Result<Done> TestBugtrackerCases::syncOnce(Device& device) const
{
    std::unique_ptr<SyncEngine> engine = engineFor(device);
    engine->start();
    const bool idle = QTest::qWaitFor([&] { return engine->isIdle(); }, WaitMs);
    engine->stop();
    if (!idle) {
        return Error { u"sync"_s,
            u"the engine of " + device.profile + u" was not idle in time; it was "
                + stateName(engine->state()) + u", last link error: " + engine->lastLinkError() };
    }
    return Done {};
}

Result<QByteArrayList> TestBugtrackerCases::writeMessages(
    Device& sender, const QString& conversation, const QByteArray& prefix, int count) const
{
    const std::optional<AccountInfo> account = sender.store->account();
    if (!account) {
        return Error { u"write"_s, sender.profile + u" has no account" };
    }
    ProtocolClient client(m_server->url());
    if (!client.isConnected() || client.resume(account->deviceId, account->deviceToken) == 0) {
        return Error { u"write"_s, u"could not resume the sender's device"_s };
    }
    QByteArrayList ids;
    for (int i = 1; i <= count; ++i) {
        ids.append(MessageId::generate().bytes());
        v1::Envelope send;
        send.mutable_send()->set_message_id(toStd(ids.last()));
        send.mutable_send()->set_conversation_id(conversation.toStdString());
        send.mutable_send()->set_body(
            QByteArray(prefix + ' ' + QByteArray::number(i)).toStdString());
        client.send(send);
    }
    for (int i = 0; i < count; ++i) {
        v1::Envelope ack;
        if (!client.nextWhere([](const v1::Envelope& e) { return e.has_send_ack(); }, &ack)
            || toBytes(ack.send_ack().message_id()) != ids.at(i)) {
            return Error { u"write"_s,
                u"message "_s + QString::number(i + 1) + u" was answered with "_s
                    + QString::fromStdString(ack.ShortDebugString()) };
        }
    }
    return ids;
}

void TestBugtrackerCases::verifyHoldsOnce(Device& device, const QString& conversation,
    const QByteArray& prefix, const QByteArrayList& ids, const QList<MessageState>& states)
{
    const Result<QList<StoredMessage>> history = device.store->history(conversation);
    QVERIFY2(history, whyNot(history).constData());
    const QList<StoredMessage> entries = withPrefix(history.value(), prefix);
    const QByteArray holds = device.profile.toUtf8() + " holds:\n" + describe(entries);
    QVERIFY2(entries.size() == ids.size(), holds.constData());
    for (qsizetype i = 0; i < ids.size(); ++i) {
        const StoredMessage& entry = entries.at(i);
        QVERIFY2(entry.messageId == ids.at(i), holds.constData());
        QVERIFY2(entry.seq.has_value(), holds.constData());
        QVERIFY2(i == 0 || *entry.seq > *entries.at(i - 1).seq, holds.constData());
        QVERIFY2(states.contains(entry.state), holds.constData());
    }
    const Result<QList<SeqRange>> gaps = device.store->missingRanges(conversation);
    QVERIFY2(gaps && gaps->isEmpty(), "the history has gaps");
}

QList<quint64> TestBugtrackerCases::seqsAt(
    Device& device, const QString& conversation, const QByteArray& prefix)
{
    QList<quint64> seqs;
    const Result<QList<StoredMessage>> history = device.store->history(conversation);
    for (const StoredMessage& entry :
        withPrefix(history ? history.value() : QList<StoredMessage>(), prefix)) {
        seqs.append(entry.seq.value_or(0));
    }
    return seqs;
}

double TestBugtrackerCases::metric(const QString& name) const
{
    const Result<double> value = m_server->metric(name);
    return value ? value.value() : -1;
}

void TestBugtrackerCases::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s),
        QStringList { u"--sync-batch"_s, QString::number(ServerSyncBatch), u"--request-rate"_s,
            u"1000000"_s, u"--request-burst"_s, u"1000000"_s });
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    const struct {
        QString device;
        QString user;
        bool createAccount;
    } devices[] = {
        { u"ann-laptop"_s, u"ann"_s, true },
        { u"ann-phone"_s, u"ann"_s, false },
        { u"bob"_s, u"bob"_s, true },
        { u"cat"_s, u"cat"_s, true },
        { u"dan"_s, u"dan"_s, true },
    };
    for (const auto& entry : devices) {
        const Result<Done> signedIn = signIn(entry.device, entry.user, entry.createAccount);
        QVERIFY2(signedIn, whyNot(signedIn).constData());
    }
}

void TestBugtrackerCases::init()
{
    // A test that failed half-way may have left the server stopped; the next starts afresh.
    if (!m_server->isRunning()) {
        QVERIFY2(m_server->restart(), qPrintable(m_server->errorString()));
    }
}

void TestBugtrackerCases::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

// (a) "Sent one message on a bad connection, it showed up three times for the other person": the
// link drops after the message went out and before its ack came back, three times running. The
// first link carries the message to the server and dies before the ack; the next two die before
// the server's first answer, so that the engine cannot learn from its catch-up that the message
// is already stored, and sends it again each time.
void TestBugtrackerCases::threeCutsBeforeTheAckInARowLeaveOneCopyInTheSentState()
{
    Device& laptop = device(u"ann-laptop"_s);
    const QString conversation = directConversationId(u"ann"_s, u"bob"_s);
    const QByteArray prefix = "(a) sent over three links cut before the ack";
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections(
        { ProxyFault::cutBeforeSendAck(), ProxyFault::cutBeforeServerFrame(u"events"_s),
            ProxyFault::cutBeforeServerFrame(u"events"_s) });
    QSignalSpy cuts(&proxy, &FaultProxy::linkCut);
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);
    const double resentBefore = metric(u"ferry_messages_resent_total"_s);

    const Result<StoredMessage> written = laptop.store->enqueue(conversation, prefix);
    QVERIFY2(written, whyNot(written).constData());
    std::unique_ptr<SyncEngine> engine = engineFor(laptop, quickSettings(), proxy.url());
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    engine->stop();

    // Three links took the message and were cut with nothing of it answered; a fourth settled it.
    QCOMPARE(cuts.size(), 3);
    QCOMPARE(connectionsOf(clientFrames, u"send"_s).mid(0, 3), QList<int>({ 1, 2, 3 }));
    QVERIFY(proxy.acceptedCount() >= 4);
    QVERIFY2(metric(u"ferry_messages_resent_total"_s) >= resentBefore + 2,
        qPrintable(QString::number(metric(u"ferry_messages_resent_total"_s) - resentBefore)));
    verifyHoldsOnce(laptop, conversation, prefix, { written->messageId }, { MessageState::Sent });

    const Result<Done> synced = syncOnce(device(u"bob"_s));
    QVERIFY2(synced, whyNot(synced).constData());
    verifyHoldsOnce(
        device(u"bob"_s), conversation, prefix, { written->messageId }, { MessageState::Received });
    QCOMPARE(seqsAt(device(u"bob"_s), conversation, prefix), seqsAt(laptop, conversation, prefix));
}

// (b) "My phone was stuck 'connected' after switching networks and missed messages; when it came
// back some were doubled": the link goes half-open (no FIN, no RST) while messages arrive for it.
void TestBugtrackerCases::aDeviceDroppedWithoutACloseGetsWhatItMissedOnceWithTheSameIds()
{
    Device& bob = device(u"bob"_s);
    const QString conversation = directConversationId(u"bob"_s, u"cat"_s);
    const QByteArray prefix = "(b) written while bob's link was half-open";
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    std::unique_ptr<SyncEngine> engine = engineFor(bob, quickSettings(), proxy.url());
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);

    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    proxy.applyToOpenConnections(ProxyFault::stall());
    const Result<QByteArrayList> ids = writeMessages(device(u"cat"_s), conversation, prefix, 5);
    QVERIFY2(ids, whyNot(ids).constData());

    const auto arrived = [&] {
        const Result<QList<StoredMessage>> history = bob.store->history(conversation);
        return history && withPrefix(history.value(), prefix).size() >= ids->size();
    };
    QTRY_VERIFY_WITH_TIMEOUT(arrived() && engine->isIdle(), WaitMs);
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
    Device& laptop = device(u"ann-laptop"_s);
    Device& phone = device(u"ann-phone"_s);
    const QString conversation = directConversationId(u"ann"_s, u"dan"_s);
    const QByteArray prefix = "(c) written on the laptop while the phone was off";

    std::unique_ptr<SyncEngine> engine = engineFor(laptop);
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    QByteArrayList ids;
    for (int i = 1; i <= Count; ++i) {
        const Result<StoredMessage> written
            = laptop.store->enqueue(conversation, prefix + ' ' + QByteArray::number(i));
        QVERIFY2(written, whyNot(written).constData());
        ids.append(written->messageId);
        engine->flushOutbox();
    }
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    engine->stop();
    verifyHoldsOnce(laptop, conversation, prefix, ids, { MessageState::Sent });

    const Result<Done> synced = syncOnce(phone);
    QVERIFY2(synced, whyNot(synced).constData());
    // Its own account's messages: sent, not received, and numbered as on the laptop.
    verifyHoldsOnce(phone, conversation, prefix, ids, { MessageState::Sent });
    QCOMPARE(seqsAt(phone, conversation, prefix), seqsAt(laptop, conversation, prefix));
}

// (d) "The server got my message but the app said it failed; I pressed retry and it went twice":
// the server commits, but its ack arrives after the client's timeout, so the client drops the
// link and sends again on a new one.
void TestBugtrackerCases::anAckLaterThanTheClientsTimeoutLeavesOneMessageSentEverywhere()
{
    const SyncEngine::Settings settings = quickSettings();
    // Held well past a ping interval and its timeout: the pong queued behind the held ack never
    // comes in time, and the engine gives the link up.
    const int holdMs
        = 4 * static_cast<int>((settings.heartbeatInterval + settings.heartbeatTimeout).count());
    Device& laptop = device(u"ann-laptop"_s);
    const QString conversation = directConversationId(u"ann"_s, u"cat"_s);
    const QByteArray prefix = "(d) acknowledged after the client gave up";
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::holdSendAck(holdMs) });
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);
    QSignalSpy serverFrames(&proxy, &FaultProxy::serverFrame);
    const double resentBefore = metric(u"ferry_messages_resent_total"_s);

    const Result<StoredMessage> written = laptop.store->enqueue(conversation, prefix);
    QVERIFY2(written, whyNot(written).constData());
    std::unique_ptr<SyncEngine> engine = engineFor(laptop, settings, proxy.url());
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
    for (const QString& name : { u"ann-phone"_s, u"cat"_s }) {
        const Result<Done> synced = syncOnce(device(name));
        QVERIFY2(synced, whyNot(synced).constData());
    }
    verifyHoldsOnce(device(u"ann-phone"_s), conversation, prefix, { written->messageId },
        { MessageState::Sent });
    verifyHoldsOnce(
        device(u"cat"_s), conversation, prefix, { written->messageId }, { MessageState::Received });
    QCOMPARE(seqsAt(device(u"cat"_s), conversation, prefix), seqsAt(laptop, conversation, prefix));
}

// (e) "I force-closed the app with messages still sending; after reopening they were stuck, or
// went twice": ferryctl listen is killed (SIGKILL) after the server committed its queued messages
// and before any ack reached it, then started again; nobody touches the outbox.
void TestBugtrackerCases::aClientKilledWithMessagesInFlightDrainsItsQueueOnceWhenStartedAgain()
{
    constexpr int Count = 3;
    Ctl eve(m_root.filePath(u"ctl/eve"_s), m_server->url());
    Ctl fay(m_root.filePath(u"ctl/fay"_s), m_server->url());
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
    FaultProxy proxy(m_server->port());
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
    Device& cat = device(u"cat"_s);
    const QString conversation = directConversationId(u"cat"_s, u"dan"_s);
    const QByteArray prefix = "(f) " + QByteArray(QTest::currentDataTag());
    const Result<QByteArrayList> ids
        = writeMessages(device(u"dan"_s), conversation, prefix, Backlog);
    QVERIFY2(ids, whyNot(ids).constData());

    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    QSignalSpy serverFrames(&proxy, &FaultProxy::serverFrame);
    // The engine asks for ten times the server's batch; the server's limit is what counts.
    SyncEngine::Settings settings = quickSettings();
    settings.syncBatch = 10 * ServerSyncBatch;
    std::unique_ptr<SyncEngine> engine = engineFor(cat, settings, proxy.url());
    int added = 0;
    int addedAtKill = -1;
    connect(
        engine.get(), &SyncEngine::messagesAdded, this, [&](const QList<StoredMessage>& messages) {
            added += static_cast<int>(withPrefix(messages, prefix).size());
            if (killServerHalfWay && addedAtKill < 0 && added >= 2 * int(ServerSyncBatch)) {
                // Nothing more gets through this link, and the server dies with it.
                proxy.applyToOpenConnections(ProxyFault::stall());
                addedAtKill = added;
                m_server->kill();
            }
        });
    QSignalSpy caughtUp(engine.get(), &SyncEngine::caughtUp);
    engine->start();

    if (killServerHalfWay) {
        QTRY_VERIFY_WITH_TIMEOUT(addedAtKill >= 0, WaitMs);
        QVERIFY2(addedAtKill < Backlog, qPrintable(QString::number(addedAtKill)));
        QCOMPARE(caughtUp.size(), 0);
        QVERIFY2(m_server->restart(), qPrintable(m_server->errorString()));
        proxy.setServerPort(m_server->port());
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
    Device& bob = device(u"bob"_s);
    Device& dan = device(u"dan"_s);
    const QString conversation = directConversationId(u"bob"_s, u"dan"_s);
    const QByteArray prefix = "duplicated batch, " + QByteArray(QTest::currentDataTag());
    // Caught up beforehand, so that the catch-up is one batch and the next one a live push.
    const Result<Done> synced = syncOnce(bob);
    QVERIFY2(synced, whyNot(synced).constData());

    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::duplicateServerFrame(u"events"_s, nth) });
    QSignalSpy forwarded(&proxy, &FaultProxy::frameForwarded);
    std::unique_ptr<SyncEngine> engine = engineFor(bob, quickSettings(), proxy.url());
    Result<QByteArrayList> ids = QByteArrayList();
    if (!writtenWhileLive) {
        ids = writeMessages(dan, conversation, prefix, 5);
        QVERIFY2(ids, whyNot(ids).constData());
    }
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    if (writtenWhileLive) {
        ids = writeMessages(dan, conversation, prefix, 5);
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
    const Result<QByteArrayList> marker = writeMessages(dan, conversation, prefix + " marker", 1);
    QVERIFY2(marker, whyNot(marker).constData());
    const auto markerArrived = [&] {
        const Result<QList<StoredMessage>> history = bob.store->history(conversation);
        return history && !withPrefix(history.value(), prefix + " marker").isEmpty();
    };
    QTRY_VERIFY_WITH_TIMEOUT(markerArrived() && engine->isIdle(), WaitMs);
    engine->stop();

    verifyHoldsOnce(
        bob, conversation, prefix, ids.value() + marker.value(), { MessageState::Received });
}

void TestBugtrackerCases::aDuplicatedSendIsOneMessageOnTheServerAndAtTheRecipient()
{
    constexpr int Count = 3;
    Device& laptop = device(u"ann-laptop"_s);
    const QString conversation = directConversationId(u"ann"_s, u"bob"_s);
    const QByteArray prefix = "the first send went twice";
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::duplicateClientFrame(u"send"_s) });
    QSignalSpy forwarded(&proxy, &FaultProxy::frameForwarded);
    const double resentBefore = metric(u"ferry_messages_resent_total"_s);

    QByteArrayList ids;
    for (int i = 1; i <= Count; ++i) {
        const Result<StoredMessage> written
            = laptop.store->enqueue(conversation, prefix + ' ' + QByteArray::number(i));
        QVERIFY2(written, whyNot(written).constData());
        ids.append(written->messageId);
    }
    std::unique_ptr<SyncEngine> engine = engineFor(laptop, quickSettings(), proxy.url());
    engine->start();
    QTRY_VERIFY_WITH_TIMEOUT(engine->isIdle(), WaitMs);
    engine->stop();

    int doubledSends = 0;
    for (const QList<QVariant>& frame : std::as_const(forwarded)) {
        doubledSends += frame.at(2).toString() == u"send" && frame.at(4).toInt() == 2 ? 1 : 0;
    }
    QCOMPARE(doubledSends, 1);
    QVERIFY(metric(u"ferry_messages_resent_total"_s) >= resentBefore + 1);
    verifyHoldsOnce(laptop, conversation, prefix, ids, { MessageState::Sent });
    // The copy took no place in the conversation: the three are numbered one after another.
    const QList<quint64> seqs = seqsAt(laptop, conversation, prefix);
    QCOMPARE(seqs.size(), Count);
    QCOMPARE(seqs.last(), seqs.first() + Count - 1);

    const Result<Done> synced = syncOnce(device(u"bob"_s));
    QVERIFY2(synced, whyNot(synced).constData());
    verifyHoldsOnce(device(u"bob"_s), conversation, prefix, ids, { MessageState::Received });
    QCOMPARE(seqsAt(device(u"bob"_s), conversation, prefix), seqs);
}

void TestBugtrackerCases::aDelayedJitteryLinkDeliversEveryMessageOnceInOrder()
{
    constexpr int Count = 20;
    Device& laptop = device(u"ann-laptop"_s);
    Device& bob = device(u"bob"_s);
    const QString conversation = directConversationId(u"ann"_s, u"bob"_s);
    const QByteArray prefix = "over a slow and jittery link";
    // Every frame both ways held 20 to 80 ms: a slow mobile link, well within the heartbeat.
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.setDefaultFault(ProxyFault::delay(20, 60));
    QSignalSpy forwarded(&proxy, &FaultProxy::frameForwarded);

    std::unique_ptr<SyncEngine> atBob = engineFor(bob, quickSettings(), proxy.url());
    std::unique_ptr<SyncEngine> atLaptop = engineFor(laptop, quickSettings(), proxy.url());
    atBob->start();
    atLaptop->start();
    QTRY_VERIFY_WITH_TIMEOUT(atBob->isIdle() && atLaptop->isIdle(), WaitMs);

    QByteArrayList ids;
    for (int i = 1; i <= Count; ++i) {
        const Result<StoredMessage> written
            = laptop.store->enqueue(conversation, prefix + ' ' + QByteArray::number(i));
        QVERIFY2(written, whyNot(written).constData());
        ids.append(written->messageId);
        atLaptop->flushOutbox();
    }
    const auto arrived = [&] {
        const Result<QList<StoredMessage>> history = bob.store->history(conversation);
        return history && withPrefix(history.value(), prefix).size() >= Count;
    };
    QTRY_VERIFY_WITH_TIMEOUT(arrived() && atBob->isIdle() && atLaptop->isIdle(), WaitMs);
    atBob->stop();
    atLaptop->stop();

    // Bob's device reports them delivered as they come, so the laptop may have heard so.
    verifyHoldsOnce(
        laptop, conversation, prefix, ids, { MessageState::Sent, MessageState::Delivered });
    verifyHoldsOnce(bob, conversation, prefix, ids, { MessageState::Received });
    QCOMPARE(seqsAt(bob, conversation, prefix), seqsAt(laptop, conversation, prefix));
    for (const QList<QVariant>& frame : std::as_const(forwarded)) {
        QVERIFY2(frame.at(3).toLongLong() >= 20, "a frame went through without its delay");
    }
}

// A load balancer in front of a server that is starting up answers 503, a proxy drops the upgrade
// half-way, a port accepts and closes: each is one more failed try, never a reason to give up.
void TestBugtrackerCases::anUpgradeRefusedOrBrokenOffIsRetriedUntilTheServerTakesIt()
{
    Device& laptop = device(u"ann-laptop"_s);
    const QString conversation = directConversationId(u"ann"_s, u"bob"_s);
    const QByteArray prefix = "written while the upgrade kept failing";
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::refuseHandshake(503), ProxyFault::cutDuringHandshake(),
        ProxyFault::closeAtOnce() });

    const Result<StoredMessage> written = laptop.store->enqueue(conversation, prefix);
    QVERIFY2(written, whyNot(written).constData());
    std::unique_ptr<SyncEngine> engine = engineFor(laptop, quickSettings(), proxy.url());
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
