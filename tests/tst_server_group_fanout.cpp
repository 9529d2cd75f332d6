// Group fan-out against the real ferry-server on loopback. A group commit pushes its messages to
// live devices from the commit itself, not by reading each recipient's log back; a device that is
// not live gets them from its log. Whatever state a member's devices are in when a burst of group
// messages is committed (live and caught up, halfway through catching up, offline), each device
// must end up with every message exactly once, in order, at offsets without a gap or a repeat,
// and what was pushed must be exactly what the log holds.

#include "core/MessageId.h"
#include "ferry.pb.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"

#include <QDeadlineTimer>
#include <QTemporaryDir>
#include <QTest>
#include <QUuid>

#include <map>
#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

constexpr int LiveMembers = 12;
constexpr int CatchingUpMembers = 4;
constexpr int OfflineMembers = 8;
constexpr int Senders = 3;
constexpr int MessagesPerSender = 10;
/// Small, so that one commit's messages reach a live device in several pushes.
constexpr int SyncBatch = 4;
/// Direct messages in a catching-up member's log before the group exists, so that one small
/// sync batch leaves it behind.
constexpr int Backlog = 3;

QString memberName(int index) { return u"m"_s + QString::number(index).rightJustified(2, u'0'); }

bool isPush(const v1::Envelope& envelope)
{
    return envelope.has_events() && envelope.request_id() == 0;
}

/// Why `events` are not a run of offsets from `first` on without a gap or a repeat, or empty.
QString offsetProblem(const QList<v1::Event>& events, quint64 first)
{
    quint64 expected = first;
    for (const v1::Event& event : events) {
        if (event.offset() != expected) {
            return u"offset "_s + QString::number(event.offset()) + u" where "_s
                + QString::number(expected) + u" was due"_s;
        }
        ++expected;
    }
    return {};
}

/// The ids of the group's messages in `events`, in the order they came.
QList<QByteArray> groupMessages(const QList<v1::Event>& events, const QString& group)
{
    QList<QByteArray> ids;
    for (const v1::Event& event : events) {
        if (event.has_message() && event.message().conversation_id() == group.toStdString()) {
            ids.append(toBytes(event.message().message_id()));
        }
    }
    return ids;
}

void appendEvents(QList<v1::Event>* events, const v1::Envelope& batch)
{
    for (const v1::Event& event : batch.events().events()) {
        events->append(event);
    }
}

QList<quint64> offsetsOf(const QList<v1::Event>& events)
{
    QList<quint64> offsets;
    for (const v1::Event& event : events) {
        offsets.append(event.offset());
    }
    return offsets;
}

} // namespace

class TestServerGroupFanout : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void everyDeviceGetsEveryMessageOnceInOrderWhateverItsState();

private:
    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
};

void TestServerGroupFanout::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s),
        QStringList {
            u"--sync-batch"_s, QString::number(SyncBatch), u"--password-cost"_s, u"minimal"_s });
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));
}

void TestServerGroupFanout::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

void TestServerGroupFanout::everyDeviceGetsEveryMessageOnceInOrderWhateverItsState()
{
    // Members 0 .. LiveMembers-1 are live (the first Senders of them send), then the catching-up
    // ones, then the offline ones.
    const int memberCount = LiveMembers + CatchingUpMembers + OfflineMembers;
    std::map<int, std::unique_ptr<ProtocolClient>> clients;
    QStringList names;
    for (int i = 0; i < memberCount; ++i) {
        auto client = std::make_unique<ProtocolClient>(m_server->url());
        QVERIFY2(client->registerUser(memberName(i)) != 0, qPrintable(memberName(i)));
        names.append(memberName(i));
        clients[i] = std::move(client);
    }
    const int firstCatchingUp = LiveMembers;
    const int firstOffline = LiveMembers + CatchingUpMembers;
    ProtocolClient& backlogSender = *clients.at(firstOffline);
    for (int i = firstCatchingUp; i < firstOffline; ++i) {
        for (int n = 0; n < Backlog; ++n) {
            const QString direct = directId(memberName(firstOffline), memberName(i));
            QVERIFY(backlogSender.sendMessage(direct, "backlog").has_send_ack());
        }
    }

    const QString group = u"group:"_s + QUuid::createUuid().toString(QUuid::WithoutBraces);
    v1::Envelope create;
    create.mutable_create_group()->set_conversation_id(group.toStdString());
    for (const QString& name : std::as_const(names)) {
        create.mutable_create_group()->add_members(name.toStdString());
    }
    QVERIFY(clients.at(0)->request(create).has_conversation_info());

    // Live: synced to the end of the log, so that later commits are pushed. Each one's cursor
    // is where its pushes must start.
    std::map<int, quint64> cursors;
    for (int i = 0; i < LiveMembers; ++i) {
        QList<v1::Event> events;
        QVERIFY(clients.at(i)->syncAll(&events));
        QVERIFY(!events.isEmpty());
        cursors[i] = events.last().offset();
        clients.at(i)->collect(0);
    }
    // Catching up: one batch of a single event read, the rest of the backlog still to come, so
    // not live while the burst is committed.
    std::map<int, QList<v1::Event>> caughtUpLater;
    for (int i = firstCatchingUp; i < firstOffline; ++i) {
        v1::Envelope sync;
        sync.mutable_sync()->set_after_offset(0);
        sync.mutable_sync()->set_max_events(1);
        v1::Envelope batch;
        QVERIFY(clients.at(i)->reply(clients.at(i)->send(sync), &batch));
        QVERIFY2(!batch.events().caught_up(), "a catching-up member must not be live yet");
        for (const v1::Event& event : batch.events().events()) {
            caughtUpLater[i].append(event);
        }
    }
    // Offline: gone before the burst; they come back with a new device afterwards.
    for (int i = firstOffline; i < memberCount; ++i) {
        clients.erase(i);
    }

    // The burst: every sender's messages sent without waiting for the acks, so that one group
    // commit holds several of them, from several senders. A direct message to the first live
    // member goes in between, so that its log interleaves two conversations within a commit.
    QList<QByteArray> sentIds;
    std::map<int, QList<quint64>> pendingRequests;
    for (int n = 0; n < MessagesPerSender; ++n) {
        for (int s = 0; s < Senders; ++s) {
            v1::Envelope envelope;
            const QByteArray id = MessageId::generate().bytes();
            envelope.mutable_send()->set_message_id(toStd(id));
            envelope.mutable_send()->set_conversation_id(group.toStdString());
            envelope.mutable_send()->set_body(
                "burst " + std::to_string(s) + "/" + std::to_string(n));
            pendingRequests[s].append(clients.at(s)->send(envelope));
            sentIds.append(id);
        }
        v1::Envelope direct;
        direct.mutable_send()->set_message_id(toStd(MessageId::generate().bytes()));
        direct.mutable_send()->set_conversation_id(
            directId(memberName(0), memberName(1)).toStdString());
        direct.mutable_send()->set_body("aside");
        pendingRequests[1].append(clients.at(1)->send(direct));
    }
    // Seqs the server gave, to check the order every device sees.
    std::map<QByteArray, quint64> seqOf;
    for (auto& [sender, requests] : pendingRequests) {
        for (const quint64 requestId : std::as_const(requests)) {
            v1::Envelope ack;
            QVERIFY(clients.at(sender)->reply(requestId, &ack));
            QVERIFY2(ack.has_send_ack(), ack.DebugString().c_str());
            seqOf[toBytes(ack.send_ack().message_id())] = ack.send_ack().seq();
        }
    }
    QList<QByteArray> inSeqOrder = sentIds;
    std::sort(inSeqOrder.begin(), inSeqOrder.end(),
        [&](const QByteArray& a, const QByteArray& b) { return seqOf[a] < seqOf[b]; });

    // Live members: the pushes start right after the cursor, and are exactly the log.
    for (int i = 0; i < LiveMembers; ++i) {
        ProtocolClient& client = *clients.at(i);
        QList<v1::Event> pushed;
        QDeadlineTimer deadline(10'000);
        while (groupMessages(pushed, group).size() < sentIds.size() && !deadline.hasExpired()) {
            v1::Envelope push;
            if (client.nextWhere(isPush, &push, 100)) {
                appendEvents(&pushed, push);
            }
        }
        // A moment more, for a repeat that would come late.
        for (const v1::Envelope& late : client.collect(200)) {
            if (isPush(late)) {
                appendEvents(&pushed, late);
            }
        }
        const QString problem = offsetProblem(pushed, cursors[i] + 1);
        QVERIFY2(problem.isEmpty(), qPrintable(memberName(i) + u": "_s + problem));
        QCOMPARE(groupMessages(pushed, group), inSeqOrder);

        QList<v1::Event> logged;
        QVERIFY(client.syncAll(&logged, cursors[i]));
        QCOMPARE(offsetsOf(pushed), offsetsOf(logged));
        QCOMPARE(groupMessages(logged, group), inSeqOrder);
    }

    // Catching-up members: the rest of the log in small batches, then live.
    for (int i = firstCatchingUp; i < firstOffline; ++i) {
        QList<v1::Event>& events = caughtUpLater[i];
        QVERIFY(clients.at(i)->syncAll(&events, events.last().offset(), 1));
        const QString problem = offsetProblem(events, 1);
        QVERIFY2(problem.isEmpty(), qPrintable(memberName(i) + u": "_s + problem));
        QCOMPARE(groupMessages(events, group), inSeqOrder);
        // Nothing was pushed to it while it was not live.
        for (const v1::Envelope& late : clients.at(i)->collect(100)) {
            QVERIFY2(!isPush(late), qPrintable(memberName(i) + u" was pushed while behind"_s));
        }
    }

    // Offline members, and a second device of a live one: everything from their logs.
    QList<int> comingBack;
    for (int i = firstOffline; i < memberCount; ++i) {
        comingBack.append(i);
    }
    comingBack.append(0);
    for (const int i : std::as_const(comingBack)) {
        ProtocolClient device(m_server->url());
        QVERIFY(device.login(memberName(i)) != 0);
        QList<v1::Event> events;
        QVERIFY(device.syncAll(&events));
        const QString problem = offsetProblem(events, 1);
        QVERIFY2(problem.isEmpty(), qPrintable(memberName(i) + u": "_s + problem));
        QCOMPARE(groupMessages(events, group), inSeqOrder);
    }
}

QTEST_GUILESS_MAIN(TestServerGroupFanout)
#include "tst_server_group_fanout.moc"
