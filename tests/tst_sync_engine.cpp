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
#include "tests/support/FaultProxy.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QMetaEnum>
#include <QPointer>
#include <QSignalSpy>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QWebSocket>
#include <QTest>

#include <map>
#include <memory>

#include "ferry.pb.h"

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;
using namespace std::chrono_literals;

using State = SyncEngine::State;

namespace {

// Bounds for waits on what takes some 100 ms on an idle machine; the margin is for a CI runner
// busy with other tests, and a failing test reaches it only when something hangs.
constexpr int WaitMs = 15'000;

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

/// The states a spy on stateChanged saw, by name, in order.
QStringList statesSeen(const QSignalSpy& spy)
{
    QStringList names;
    for (const QList<QVariant>& arguments : spy) {
        names.append(stateName(arguments.at(0).value<State>()));
    }
    return names;
}

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

/// An entry as one line, for the message of a failed check.
QString describe(const StoredMessage& entry)
{
    return MessageId::fromBytes(entry.messageId)->toString() + u" seq "
        + (entry.seq ? QString::number(*entry.seq) : u"-"_s) + u' ' + entry.sender + u' '
        + messageStateName(entry.state) + u" \"" + QString::fromUtf8(entry.body) + u'"';
}

QByteArray describe(const QList<StoredMessage>& entries)
{
    QStringList lines;
    for (const StoredMessage& entry : entries) {
        lines.append(describe(entry));
    }
    return (lines.isEmpty() ? u"(no entries)"_s : lines.join(u'\n')).toUtf8();
}

/// What two devices must agree on about an entry; localId and writtenMs are each device's own.
QString comparable(const StoredMessage& entry)
{
    return describe(entry) + u" kind " + QString::number(static_cast<int>(entry.kind)) + u" at "
        + QString::number(entry.serverTimeMs.value_or(-1));
}

/// Where the test's files go: a RAM-backed folder where there is one. The backlog below costs
/// the server a flushed commit per message, some 3 ms each on a virtual disk and ten seconds for
/// the whole backlog, while none of these tests is about what reaches the disk
/// (tst_crash_resend and tst_offline_delivery are, on an ordinary folder).
QString memoryBackedTemplate(const QString& name)
{
    const QFileInfo shm(u"/dev/shm"_s);
    const QString folder
        = shm.isDir() && shm.isWritable() ? shm.absoluteFilePath() : QDir::tempPath();
    return folder + u'/' + name + u"-XXXXXX";
}

/// One device: its profile folder and its store, open for the whole test case.
struct Device {
    QString profile;
    std::unique_ptr<ClientStore> store;
};

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
    /// Signs a new device in through an engine (creating the account when `createAccount`),
    /// and keeps its profile's store open under `name`.
    Result<Done> signIn(const QString& name, const QString& user, bool createAccount);
    Device& device(const QString& name) { return m_devices.at(name); }
    /// An engine for the device, pointed at `url` (the server, unless given).
    std::unique_ptr<SyncEngine> engineFor(Device& device,
        SyncEngine::Settings settings = quickSettings(), const QUrl& url = {}) const;
    /// Connects, catches up, sends what is queued and owed, and disconnects once idle.
    Result<Done> syncOnce(Device& device, int timeoutMs = WaitMs) const;
    Result<QList<StoredMessage>> historyOf(Device& device, const QString& conversation) const;
    /// Writes `count` messages from the device's account to a conversation and returns their
    /// ids in the order the server numbered them.
    Result<QByteArrayList> writeBacklog(
        Device& sender, const QString& conversation, int count) const;
    /// Checks that the device holds exactly `ids`, in this order, with seq 1, 2, 3…
    void verifyHoldsExactly(Device& device, const QString& conversation, const QByteArrayList& ids);

    QTemporaryDir m_root { memoryBackedTemplate(u"tst_sync_engine"_s) };
    std::unique_ptr<ServerProcess> m_server;
    std::map<QString, Device> m_devices;
};

Result<Done> TestSyncEngine::signIn(const QString& name, const QString& user, bool createAccount)
{
    Device device;
    device.profile = m_root.filePath(u"profiles/"_s + name);
    Result<std::unique_ptr<ClientStore>> store = ClientStore::open(device.profile);
    if (!store) {
        return store.error();
    }
    device.store = std::move(store.value());

    // The password hash is slow by design, slower still on a loaded machine, and the short
    // heartbeat timeout of the other engines would also bound the handshake that waits for it.
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

std::unique_ptr<SyncEngine> TestSyncEngine::engineFor(
    Device& device, SyncEngine::Settings settings, const QUrl& url) const
{
    auto engine = std::make_unique<SyncEngine>(device.store.get(), settings);
    engine->setServerUrl(url.isValid() ? url : m_server->url());
    return engine;
}

Result<Done> TestSyncEngine::syncOnce(Device& device, int timeoutMs) const
{
    std::unique_ptr<SyncEngine> engine = engineFor(device);
    engine->start();
    const bool idle = QTest::qWaitFor([&] { return engine->isIdle(); }, timeoutMs);
    engine->stop();
    if (!idle) {
        return Error { u"sync"_s,
            u"the engine of " + device.profile + u" was not idle within "
                + QString::number(timeoutMs) + u" ms; it was " + stateName(engine->state())
                + u", last link error: " + engine->lastLinkError() };
    }
    return Done {};
}

Result<QList<StoredMessage>> TestSyncEngine::historyOf(
    Device& device, const QString& conversation) const
{
    return device.store->history(conversation);
}

Result<QByteArrayList> TestSyncEngine::writeBacklog(
    Device& sender, const QString& conversation, int count) const
{
    // Written through a raw protocol connection as the sender's device, every message sent
    // before the first ack is read: the sender's engine is not what these tests are about, and
    // this takes a second where an engine, live and settling each ack, takes several.
    const std::optional<AccountInfo> account = sender.store->account();
    if (!account) {
        return Error { u"backlog"_s, sender.profile + u" has no account" };
    }
    ProtocolClient client(m_server->url());
    if (!client.isConnected() || !client.hello()) {
        return Error { u"backlog"_s, u"could not say hello to the server"_s };
    }
    v1::Envelope resume;
    resume.mutable_resume()->set_device_id(account->deviceId);
    resume.mutable_resume()->set_device_token(toStd(account->deviceToken));
    if (!client.request(resume).has_authenticated()) {
        return Error { u"backlog"_s, u"the server did not take the device token"_s };
    }

    QByteArrayList ids;
    for (int i = 1; i <= count; ++i) {
        ids.append(MessageId::generate().bytes());
        v1::Envelope send;
        send.mutable_send()->set_message_id(toStd(ids.last()));
        send.mutable_send()->set_conversation_id(conversation.toStdString());
        send.mutable_send()->set_body("backlog message " + std::to_string(i));
        client.send(send);
    }
    for (int i = 0; i < count; ++i) {
        v1::Envelope ack;
        if (!client.next(&ack) || !ack.has_send_ack()
            || toBytes(ack.send_ack().message_id()) != ids.at(i)) {
            return Error { u"backlog"_s,
                u"message "_s + QString::number(i + 1) + u" was answered with "_s
                    + QString::fromStdString(ack.ShortDebugString()) };
        }
    }
    return ids;
}

void TestSyncEngine::verifyHoldsExactly(
    Device& device, const QString& conversation, const QByteArrayList& ids)
{
    const Result<QList<StoredMessage>> history = historyOf(device, conversation);
    QVERIFY2(history, whyNot(history).constData());
    QCOMPARE(history->size(), ids.size());
    for (qsizetype i = 0; i < ids.size(); ++i) {
        const StoredMessage& entry = history->at(i);
        const QByteArray where = "entry " + QByteArray::number(i) + ": " + describe(entry).toUtf8();
        QVERIFY2(entry.messageId == ids.at(i), where.constData());
        QVERIFY2(entry.seq == quint64(i + 1), where.constData());
        QVERIFY2(entry.state == MessageState::Received, where.constData());
    }
    const Result<QList<SeqRange>> gaps = device.store->missingRanges(conversation);
    QVERIFY2(gaps && gaps->isEmpty(), "the history has gaps");
}

void TestSyncEngine::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    // The default rate limit would hold the 3,000-message backlog below back for half a minute;
    // how the engine copes with rate limits is not what this suite is about.
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s),
        QStringList { u"--request-rate"_s, u"1000000"_s, u"--request-burst"_s, u"1000000"_s });
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    const struct {
        QString device;
        QString user;
        bool createAccount;
    } devices[] = {
        { u"sam"_s, u"sam"_s, true },
        { u"alice-laptop"_s, u"alice"_s, true },
        { u"alice-phone"_s, u"alice"_s, false },
        { u"bob"_s, u"bob"_s, true },
        { u"carol"_s, u"carol"_s, true },
        { u"dan"_s, u"dan"_s, true },
        { u"erin"_s, u"erin"_s, true },
    };
    for (const auto& entry : devices) {
        const Result<Done> signedIn = signIn(entry.device, entry.user, entry.createAccount);
        QVERIFY2(signedIn, whyNot(signedIn).constData());
    }
}

void TestSyncEngine::init()
{
    // A test that failed half-way may have left the server stopped; the next starts afresh.
    if (!m_server->isRunning()) {
        QVERIFY2(m_server->restart(), qPrintable(m_server->errorString()));
    }
}

void TestSyncEngine::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

void TestSyncEngine::aStartingEngineGoesThroughEachStateInOrderToLive()
{
    std::unique_ptr<SyncEngine> engine = engineFor(device(u"sam"_s));
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
    QTRY_VERIFY_WITH_TIMEOUT(!socket || socket->state() == QAbstractSocket::UnconnectedState, WaitMs);
    QTest::qWait(50); // the engine's own handler of the disconnect runs after the state change
    QVERIFY2(engine->lastLinkError().isEmpty(), qPrintable(engine->lastLinkError()));
}

void TestSyncEngine::aStoppedServerIsRetriedWithinTheBackoffCapAndUsedAgainOnceBack()
{
    const SyncEngine::Settings settings = quickSettings();
    std::unique_ptr<SyncEngine> engine = engineFor(device(u"sam"_s), settings);
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

    const quint16 port = m_server->port();
    m_server->requestStop();
    QVERIFY2(m_server->waitForStopped(), qPrintable(m_server->errorString()));

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

    QVERIFY2(m_server->restart(), qPrintable(m_server->errorString()));
    if (m_server->port() != port) {
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
        = ClientStore::open(m_root.filePath(u"profiles/sam-wrong-password"_s));
    QVERIFY2(store, whyNot(store).constData());
    // The refusal comes after the same slow password hash as a success would.
    SyncEngine::Settings settings = quickSettings();
    settings.heartbeatTimeout = 10s;
    SyncEngine engine(store.value().get(), settings);
    engine.setServerUrl(m_server->url());
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

    std::unique_ptr<SyncEngine> engine = engineFor(device(u"sam"_s));
    engine->setServerUrls({ unreachable, m_server->url() });
    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    engine->start();

    QTRY_COMPARE_WITH_TIMEOUT(engine->state(), State::Live, WaitMs);
    QCOMPARE(engine->serverUrl(), m_server->url());
    QCOMPARE(statesSeen(states),
        QStringList({ u"Connecting"_s, u"WaitingToRetry"_s, u"Connecting"_s, u"Authenticating"_s,
            u"CatchingUp"_s, u"Live"_s }));
    QVERIFY2(engine->lastLinkError().contains(u"refused"_s, Qt::CaseInsensitive),
        qPrintable(engine->lastLinkError()));
}

void TestSyncEngine::aLinkCutAfterTheCommitButBeforeTheAckLeavesOneCopyEverywhere()
{
    Device& laptop = device(u"alice-laptop"_s);
    const QString conversation = directConversationId(u"alice"_s, u"bob"_s);
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::cutBeforeSendAck() });
    QSignalSpy cuts(&proxy, &FaultProxy::linkCut);
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);
    const Result<double> resentBefore = m_server->metric(u"ferry_messages_resent_total"_s);
    QVERIFY2(resentBefore, whyNot(resentBefore).constData());

    const QByteArray body = "sent over a link cut before its ack";
    const Result<StoredMessage> written = laptop.store->enqueue(conversation, body);
    QVERIFY2(written, whyNot(written).constData());
    std::unique_ptr<SyncEngine> engine = engineFor(laptop, quickSettings(), proxy.url());
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
    const Result<double> resentAfter = m_server->metric(u"ferry_messages_resent_total"_s);
    QVERIFY2(resentAfter, whyNot(resentAfter).constData());
    QVERIFY2(resentAfter.value() >= resentBefore.value() + 1,
        qPrintable(u"ferry_messages_resent_total went from "_s
            + QString::number(resentBefore.value()) + u" to "_s
            + QString::number(resentAfter.value())));

    // The phone syncs before bob, so no delivery receipt of bob's can make the message read as
    // delivered there: sent, like on the laptop.
    for (const QString& name : { u"alice-phone"_s, u"bob"_s }) {
        const Result<Done> synced = syncOnce(device(name));
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
            = historyOf(device(expected.device), conversation);
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
    Device& laptop = device(u"alice-laptop"_s);
    const QString conversation = directConversationId(u"alice"_s, u"bob"_s);
    const SyncEngine::Settings settings = quickSettings();
    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    QSignalSpy clientFrames(&proxy, &FaultProxy::clientFrame);
    std::unique_ptr<SyncEngine> engine = engineFor(laptop, settings, proxy.url());
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

    const Result<Done> bobSynced = syncOnce(device(u"bob"_s));
    QVERIFY2(bobSynced, whyNot(bobSynced).constData());
    const Result<QList<StoredMessage>> atBob = historyOf(device(u"bob"_s), conversation);
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
    Device& dan = device(u"dan"_s);
    Device& carol = device(u"carol"_s);
    const QString conversation = directConversationId(u"carol"_s, u"dan"_s);

    const Result<QByteArrayList> ids = writeBacklog(dan, conversation, Backlog);
    QVERIFY2(ids, whyNot(ids).constData());

    SyncEngine::Settings settings = quickSettings();
    settings.syncBatch = Batch;
    std::unique_ptr<SyncEngine> engine = engineFor(carol, settings);
    // The server is told to stop from inside the handler of the second batch, so the stop
    // lands in the middle of the catch-up, not after it.
    int added = 0;
    int addedAtStop = 0;
    connect(
        engine.get(), &SyncEngine::messagesAdded, this, [&](const QList<StoredMessage>& messages) {
            added += static_cast<int>(messages.size());
            if (addedAtStop == 0 && added >= 2 * static_cast<int>(Batch)) {
                addedAtStop = added;
                m_server->requestStop();
            }
        });
    QSignalSpy caughtUp(engine.get(), &SyncEngine::caughtUp);
    QSignalSpy states(engine.get(), &SyncEngine::stateChanged);
    engine->start();

    QTRY_VERIFY_WITH_TIMEOUT(addedAtStop > 0, WaitMs);
    QVERIFY2(m_server->waitForStopped(), qPrintable(m_server->errorString()));
    QTRY_VERIFY_WITH_TIMEOUT(statesSeen(states).contains(u"WaitingToRetry"_s), WaitMs);
    QCOMPARE(caughtUp.size(), 0);
    QVERIFY2(added < Backlog, qPrintable(QString::number(added)));

    QVERIFY2(m_server->restart(), qPrintable(m_server->errorString()));
    // Here the engine is told where a server that had to move went; finding it is the
    // business of the state-machine test above.
    engine->setServerUrl(m_server->url());
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
    Device& erin = device(u"erin"_s);
    const QString conversation = directConversationId(u"dan"_s, u"erin"_s);
    const Result<QByteArrayList> ids = writeBacklog(device(u"dan"_s), conversation, Backlog);
    QVERIFY2(ids, whyNot(ids).constData());

    FaultProxy proxy(m_server->port());
    QVERIFY2(proxy.listen(), qPrintable(proxy.errorString()));
    proxy.planConnections({ ProxyFault::cutAfterFrames(FramesBeforeTheCut) });
    SyncEngine::Settings settings = quickSettings();
    settings.syncBatch = Batch;
    std::unique_ptr<SyncEngine> engine = engineFor(erin, settings, proxy.url());
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
    Device& laptop = device(u"alice-laptop"_s);
    const QString toBob = directConversationId(u"alice"_s, u"bob"_s);
    const QString toNobody = directConversationId(u"alice"_s, u"nobody-at-all"_s);
    const QByteArray tag = QTest::currentDataTag();

    SyncEngine::Settings settings = quickSettings();
    settings.sendWindow = sendWindow;
    std::unique_ptr<SyncEngine> engine = engineFor(laptop, settings);
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

    Device& bob = device(u"bob"_s);
    const Result<Done> bobSynced = syncOnce(bob);
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
    Device& laptop = device(u"alice-laptop"_s);
    Device& phone = device(u"alice-phone"_s);
    Device& bob = device(u"bob"_s);
    const QString conversation = directConversationId(u"alice"_s, u"bob"_s);

    for (const char* body : { "bob, one", "bob, two", "bob, three" }) {
        const Result<StoredMessage> written = bob.store->enqueue(conversation, body);
        QVERIFY2(written, whyNot(written).constData());
    }
    for (Device* each : { &bob, &laptop, &phone }) {
        const Result<Done> synced = syncOnce(*each);
        QVERIFY2(synced, whyNot(synced).constData());
    }
    const Result<ConversationSummary> phoneBefore = phone.store->conversation(conversation);
    QVERIFY2(phoneBefore, whyNot(phoneBefore).constData());
    QCOMPARE(phoneBefore->unread, 3);

    // Read on the laptop only; the phone learns it from the server.
    const Result<quint64> readUpTo = laptop.store->markRead(conversation);
    QVERIFY2(readUpTo, whyNot(readUpTo).constData());
    for (Device* each : { &laptop, &phone }) {
        const Result<Done> synced = syncOnce(*each);
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
