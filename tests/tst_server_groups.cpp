// Groups at the protocol level, against the real ferry-server on loopback: creating one (twice
// harmlessly), adding, removing and leaving, each change taking a sequence number in the
// conversation and appearing in every member's event log, and membership enforced on send, sync
// and history.

#include "ferry.pb.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/Requests.h"
#include "tests/support/ServerProcess.h"

#include <QDeadlineTimer>
#include <QTemporaryDir>
#include <QTest>

#include <map>
#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

QString joined(const google::protobuf::RepeatedPtrField<std::string>& names)
{
    QStringList list;
    for (const std::string& name : names) {
        list.append(QString::fromStdString(name));
    }
    return list.join(u',');
}

std::string conversationOf(const v1::Event& event)
{
    if (event.has_message()) {
        return event.message().conversation_id();
    }
    if (event.has_membership()) {
        return event.membership().conversation_id();
    }
    return event.receipt().conversation_id();
}

/// One entry of a conversation as a line: "3 ADDED by bob [carol] -> alice,bob,carol" for a
/// membership change, "2 message from alice: hello" for a message.
QString describe(const v1::Event& event)
{
    if (event.has_membership()) {
        const v1::MembershipEvent& change = event.membership();
        return QString::number(change.seq()) + u' '
            + QString::fromStdString(v1::MembershipAction_Name(change.action())) + u" by "
            + QString::fromStdString(change.actor()) + u" [" + joined(change.subjects()) + u"] -> "
            + joined(change.members());
    }
    if (event.has_message()) {
        return QString::number(event.message().seq()) + u" message from "
            + QString::fromStdString(event.message().sender()) + u": "
            + QString::fromStdString(event.message().body());
    }
    return u"receipt"_s;
}

} // namespace

class TestServerGroups : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void creatingAGroupAnswersWithItsMembers();
    void creatingTheSameGroupAgainChangesNothing();
    void creatingAGroupIsRefused_data();
    void creatingAGroupIsRefused();
    void everyChangeTakesASeqAndReachesEveryMembersLog();
    void aChangeThatChangesNothingOrIsNotAllowedLeavesNoTrace_data();
    void aChangeThatChangesNothingOrIsNotAllowedLeavesNoTrace();
    void onlyMembersMaySend_data();
    void onlyMembersMaySend();
    void aRemovedMemberHearsOfTheRemovalAndOfNothingAfter();
    void aGroupMessageReachesEveryMembersLogExactlyOnce();

private:
    ProtocolClient& client(const QString& name) { return *m_clients.at(name); }
    /// The entries of one conversation in `name`'s event log, read from the start.
    QStringList logOf(const QString& name, const QString& conversationId);

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    std::map<QString, std::unique_ptr<ProtocolClient>> m_clients;
};

void TestServerGroups::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    for (const QString& name : { u"alice"_s, u"bob"_s, u"carol"_s, u"dave"_s }) {
        auto client = std::make_unique<ProtocolClient>(m_server->url());
        QVERIFY2(client->registerUser(name) != 0, qPrintable(name));
        m_clients[name] = std::move(client);
    }
    // A direct conversation, for the rows that try group changes on one.
    QVERIFY(client(u"alice"_s).sendMessage(u"direct:alice:bob"_s, "hi").has_send_ack());
}

void TestServerGroups::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

QStringList TestServerGroups::logOf(const QString& name, const QString& conversationId)
{
    QList<v1::Event> events;
    if (!client(name).syncAll(&events)) {
        return { u"(the sync failed)"_s };
    }
    QStringList entries;
    for (const v1::Event& event : std::as_const(events)) {
        if (conversationOf(event) == conversationId.toStdString()) {
            entries.append(describe(event));
        }
    }
    return entries;
}

void TestServerGroups::creatingAGroupAnswersWithItsMembers()
{
    const QString group = newGroupId();
    const v1::Envelope answer
        = client(u"alice"_s)
              .request(createGroupRequest(group, { u"carol"_s, u"bob"_s }, u"Trip"_s));
    QVERIFY2(answer.has_conversation_info(), answer.DebugString().c_str());
    const v1::ConversationInfo& info = answer.conversation_info();
    QCOMPARE(QString::fromStdString(info.conversation_id()), group);
    QCOMPARE(info.title(), "Trip");
    // The creator is a member without naming herself; names come sorted.
    QCOMPARE(joined(info.members()), u"alice,bob,carol"_s);
    // The creation is the conversation's first entry.
    QCOMPARE(info.last_seq(), quint64(1));

    const v1::Envelope ack = client(u"bob"_s).sendMessage(group, "hello all");
    QVERIFY2(ack.has_send_ack(), ack.DebugString().c_str());
    QCOMPARE(ack.send_ack().seq(), quint64(2));
}

void TestServerGroups::creatingTheSameGroupAgainChangesNothing()
{
    const QString group = newGroupId();
    const v1::Envelope first
        = client(u"alice"_s).request(createGroupRequest(group, { u"bob"_s, u"carol"_s }));
    QVERIFY2(first.has_conversation_info(), first.DebugString().c_str());

    // A resend, even one that names other members, answers with the group as it is.
    const v1::Envelope again = client(u"alice"_s).request(createGroupRequest(group, { u"dave"_s }));
    QVERIFY2(again.has_conversation_info(), again.DebugString().c_str());
    QCOMPARE(joined(again.conversation_info().members()), u"alice,bob,carol"_s);
    QCOMPARE(again.conversation_info().last_seq(), first.conversation_info().last_seq());

    const QStringList created { u"1 CREATED by alice [bob,carol] -> alice,bob,carol"_s };
    QCOMPARE(logOf(u"alice"_s, group), created);
    QCOMPARE(logOf(u"bob"_s, group), created);
    QCOMPARE(logOf(u"dave"_s, group), QStringList());
}

void TestServerGroups::creatingAGroupIsRefused_data()
{
    QTest::addColumn<QString>("conversationId");
    QTest::addColumn<QStringList>("members");
    QTest::addColumn<int>("expectedCode");

    const QString takenByBob = newGroupId();
    m_clients.at(u"bob"_s)->request(createGroupRequest(takenByBob, { u"dave"_s }));

    QTest::newRow("an id without the group prefix")
        << u"chat:abc"_s << QStringList { u"bob"_s } << int(v1::BAD_REQUEST);
    QTest::newRow("the prefix alone")
        << u"group:"_s << QStringList { u"bob"_s } << int(v1::BAD_REQUEST);
    QTest::newRow("an id of 101 characters")
        << u"group:"_s + QString(95, u'a') << QStringList { u"bob"_s } << int(v1::BAD_REQUEST);
    QTest::newRow("a direct conversation's id")
        << u"direct:alice:bob"_s << QStringList { u"bob"_s } << int(v1::BAD_REQUEST);
    QTest::newRow("a member who does not exist")
        << newGroupId() << QStringList { u"bob"_s, u"nobody"_s } << int(v1::UNKNOWN_RECIPIENT);
    QTest::newRow("the id of another user's group")
        << takenByBob << QStringList { u"carol"_s } << int(v1::DUPLICATE_ID_CONFLICT);
}

void TestServerGroups::creatingAGroupIsRefused()
{
    QFETCH(QString, conversationId);
    QFETCH(QStringList, members);
    QFETCH(int, expectedCode);

    const v1::Envelope answer
        = client(u"alice"_s).request(createGroupRequest(conversationId, members));
    QVERIFY2(answer.has_error(), answer.DebugString().c_str());
    QCOMPARE(int(answer.error().code()), expectedCode);

    // Nothing was made: alice hears of no creation and, but for the direct conversation she
    // is in, is no member of anything under that id.
    QCOMPARE(logOf(u"alice"_s, conversationId).filter(u"CREATED"_s), QStringList());
    if (!conversationId.startsWith(u"direct:")) {
        const v1::Envelope peek = client(u"alice"_s).request(historyRequest(conversationId, 0, 50));
        QCOMPARE(peek.error().code(), v1::NOT_A_MEMBER);
    }
}

void TestServerGroups::everyChangeTakesASeqAndReachesEveryMembersLog()
{
    const QString group = newGroupId();
    QVERIFY(client(u"alice"_s)
                .request(createGroupRequest(group, { u"bob"_s }))
                .has_conversation_info());
    QVERIFY(client(u"alice"_s).sendMessage(group, "hello").has_send_ack());

    // Any member may add; the answer is the group after the change.
    const v1::Envelope added = client(u"bob"_s).request(addMembersRequest(group, { u"carol"_s }));
    QVERIFY2(added.has_conversation_info(), added.DebugString().c_str());
    QCOMPARE(joined(added.conversation_info().members()), u"alice,bob,carol"_s);
    QCOMPARE(added.conversation_info().last_seq(), quint64(3));

    const v1::Envelope removed = client(u"alice"_s).request(removeMemberRequest(group, u"carol"_s));
    QVERIFY2(removed.has_ok(), removed.DebugString().c_str());
    const v1::Envelope left = client(u"bob"_s).request(leaveRequest(group));
    QVERIFY2(left.has_ok(), left.DebugString().c_str());

    const QStringList everything {
        u"1 CREATED by alice [bob] -> alice,bob"_s,
        u"2 message from alice: hello"_s,
        u"3 ADDED by bob [carol] -> alice,bob,carol"_s,
        u"4 REMOVED by alice [carol] -> alice,bob"_s,
        u"5 LEFT by bob [bob] -> alice"_s,
    };
    QCOMPARE(logOf(u"alice"_s, group), everything);
    // bob hears of his own leaving, and of nothing after it.
    QCOMPARE(logOf(u"bob"_s, group), everything);
    // carol hears from her addition to her removal.
    QCOMPARE(logOf(u"carol"_s, group), everything.mid(2, 2));
    QCOMPARE(logOf(u"dave"_s, group), QStringList());

    // The history holds the changes at the same places.
    const v1::Envelope page = client(u"alice"_s).request(historyRequest(group, 0, 50));
    QVERIFY2(page.has_history_page(), page.DebugString().c_str());
    QList<quint64> membershipSeqs;
    for (const v1::MembershipEvent& change : page.history_page().memberships()) {
        membershipSeqs.append(change.seq());
    }
    QCOMPARE(membershipSeqs, (QList<quint64> { 1, 3, 4, 5 }));
    QCOMPARE(page.history_page().messages_size(), 1);
    QCOMPARE(page.history_page().messages(0).seq(), quint64(2));
}

void TestServerGroups::aChangeThatChangesNothingOrIsNotAllowedLeavesNoTrace_data()
{
    QTest::addColumn<QString>("actor");
    QTest::addColumn<QString>("change");
    QTest::addColumn<int>("expectedCode"); // 0: answered without an error

    QTest::newRow("adding someone who is a member") << u"alice"_s << u"add bob"_s << 0;
    QTest::newRow("adding a user who does not exist")
        << u"alice"_s << u"add nobody"_s << int(v1::UNKNOWN_RECIPIENT);
    QTest::newRow("removing someone who is no member")
        << u"alice"_s << u"remove carol"_s << int(v1::NOT_FOUND);
    QTest::newRow("a non-member adding herself")
        << u"carol"_s << u"add carol"_s << int(v1::NOT_A_MEMBER);
    QTest::newRow("a non-member removing a member")
        << u"carol"_s << u"remove bob"_s << int(v1::NOT_A_MEMBER);
    QTest::newRow("a non-member leaving") << u"carol"_s << u"leave"_s << int(v1::NOT_A_MEMBER);
    QTest::newRow("adding to a direct conversation")
        << u"alice"_s << u"add carol to direct"_s << int(v1::BAD_REQUEST);
    QTest::newRow("leaving a direct conversation")
        << u"alice"_s << u"leave direct"_s << int(v1::BAD_REQUEST);
}

void TestServerGroups::aChangeThatChangesNothingOrIsNotAllowedLeavesNoTrace()
{
    QFETCH(QString, actor);
    QFETCH(QString, change);
    QFETCH(int, expectedCode);

    const QString group = newGroupId();
    QVERIFY(client(u"alice"_s)
                .request(createGroupRequest(group, { u"bob"_s }))
                .has_conversation_info());
    const QString direct = u"direct:alice:bob"_s;
    const QStringList directBefore = logOf(u"bob"_s, direct);

    v1::Envelope request;
    if (change == u"add bob") {
        request = addMembersRequest(group, { u"bob"_s });
    } else if (change == u"add nobody") {
        request = addMembersRequest(group, { u"nobody"_s });
    } else if (change == u"add carol") {
        request = addMembersRequest(group, { u"carol"_s });
    } else if (change == u"remove carol") {
        request = removeMemberRequest(group, u"carol"_s);
    } else if (change == u"remove bob") {
        request = removeMemberRequest(group, u"bob"_s);
    } else if (change == u"leave") {
        request = leaveRequest(group);
    } else if (change == u"add carol to direct") {
        request = addMembersRequest(direct, { u"carol"_s });
    } else if (change == u"leave direct") {
        request = leaveRequest(direct);
    }
    const v1::Envelope answer = client(actor).request(request);
    if (expectedCode == 0) {
        QVERIFY2(!answer.has_error() && answer.payload_case() != v1::Envelope::PAYLOAD_NOT_SET,
            answer.DebugString().c_str());
    } else {
        QVERIFY2(answer.has_error(), answer.DebugString().c_str());
        QCOMPARE(int(answer.error().code()), expectedCode);
    }

    const QStringList created { u"1 CREATED by alice [bob] -> alice,bob"_s };
    QCOMPARE(logOf(u"alice"_s, group), created);
    QCOMPARE(logOf(u"bob"_s, group), created);
    QCOMPARE(logOf(u"carol"_s, group), QStringList());
    QCOMPARE(logOf(u"bob"_s, direct), directBefore);
}

void TestServerGroups::onlyMembersMaySend_data()
{
    QTest::addColumn<QString>("sender");
    QTest::newRow("a user who never was a member") << u"dave"_s;
    QTest::newRow("a member who was removed") << u"carol"_s;
    QTest::newRow("a member who left") << u"bob"_s;
}

void TestServerGroups::onlyMembersMaySend()
{
    QFETCH(QString, sender);

    const QString group = newGroupId();
    QVERIFY(client(u"alice"_s)
                .request(createGroupRequest(group, { u"bob"_s, u"carol"_s }))
                .has_conversation_info());
    QVERIFY(client(u"alice"_s).request(removeMemberRequest(group, u"carol"_s)).has_ok());
    QVERIFY(client(u"bob"_s).request(leaveRequest(group)).has_ok());

    const QByteArray id = MessageId::generate().bytes();
    const v1::Envelope answer = client(sender).sendMessage(group, "let me in", id);
    QVERIFY2(answer.has_error(), answer.DebugString().c_str());
    QCOMPARE(answer.error().code(), v1::NOT_A_MEMBER);
    QCOMPARE(toBytes(answer.error().message_id()), id);

    // Nothing was stored: the group's history holds no message.
    const v1::Envelope page = client(u"alice"_s).request(historyRequest(group, 0, 50));
    QCOMPARE(page.history_page().messages_size(), 0);
    QCOMPARE(page.history_page().memberships_size(), 3);
}

void TestServerGroups::aRemovedMemberHearsOfTheRemovalAndOfNothingAfter()
{
    const QString group = newGroupId();
    QVERIFY(client(u"alice"_s)
                .request(createGroupRequest(group, { u"bob"_s, u"carol"_s }))
                .has_conversation_info());
    QVERIFY(client(u"alice"_s).sendMessage(group, "before").has_send_ack());

    // A member reads the history...
    const v1::Envelope whileMember = client(u"carol"_s).request(historyRequest(group, 0, 50));
    QVERIFY2(whileMember.has_history_page(), whileMember.DebugString().c_str());
    QCOMPARE(whileMember.history_page().messages_size(), 1);

    QVERIFY(client(u"alice"_s).request(removeMemberRequest(group, u"carol"_s)).has_ok());
    QVERIFY(client(u"alice"_s).sendMessage(group, "after").has_send_ack());

    const QStringList untilTheRemoval {
        u"1 CREATED by alice [bob,carol] -> alice,bob,carol"_s,
        u"2 message from alice: before"_s,
        u"3 REMOVED by alice [carol] -> alice,bob"_s,
    };
    QCOMPARE(logOf(u"carol"_s, group), untilTheRemoval);
    QCOMPARE(
        logOf(u"bob"_s, group), untilTheRemoval + QStringList { u"4 message from alice: after"_s });

    // ...a former member does not, and cannot bring herself back.
    const v1::Envelope afterRemoval = client(u"carol"_s).request(historyRequest(group, 0, 50));
    QVERIFY2(afterRemoval.has_error(), afterRemoval.DebugString().c_str());
    QCOMPARE(afterRemoval.error().code(), v1::NOT_A_MEMBER);
    QCOMPARE(client(u"carol"_s).request(addMembersRequest(group, { u"carol"_s })).error().code(),
        v1::NOT_A_MEMBER);
}

void TestServerGroups::aGroupMessageReachesEveryMembersLogExactlyOnce()
{
    const QString group = newGroupId();
    QVERIFY(client(u"alice"_s)
                .request(createGroupRequest(group, { u"bob"_s, u"carol"_s }))
                .has_conversation_info());

    // bob and carol are live, so the messages are pushed to them as well as logged.
    const QStringList receivers { u"bob"_s, u"carol"_s };
    for (const QString& name : receivers) {
        QList<v1::Event> ignored;
        QVERIFY(client(name).syncAll(&ignored));
        client(name).collect(0);
    }
    QList<QByteArray> ids;
    for (int i = 0; i < 3; ++i) {
        ids.append(MessageId::generate().bytes());
        const v1::Envelope ack
            = client(u"alice"_s).sendMessage(group, "to all " + QByteArray::number(i), ids.last());
        QVERIFY2(ack.has_send_ack(), ack.DebugString().c_str());
    }

    for (const QString& name : receivers) {
        QMap<QByteArray, int> pushed;
        QDeadlineTimer deadline(5000);
        while (pushed.size() < ids.size() && !deadline.hasExpired()) {
            v1::Envelope push;
            if (!client(name).nextWhere(
                    [](const v1::Envelope& e) { return e.has_events(); }, &push, 100)) {
                continue;
            }
            QCOMPARE(push.request_id(), quint64(0));
            for (const v1::Event& event : push.events().events()) {
                ++pushed[toBytes(event.message().message_id())];
            }
        }
        // A moment more, for a repeat that would come late.
        for (const v1::Envelope& late : client(name).collect(200)) {
            for (const v1::Event& event : late.events().events()) {
                ++pushed[toBytes(event.message().message_id())];
            }
        }
        for (const QByteArray& id : std::as_const(ids)) {
            QVERIFY2(pushed.value(id) == 1,
                qPrintable(name + u" was pushed a message "_s + QString::number(pushed.value(id))
                    + u" times"_s));
        }
    }

    const QStringList expected {
        u"1 CREATED by alice [bob,carol] -> alice,bob,carol"_s,
        u"2 message from alice: to all 0"_s,
        u"3 message from alice: to all 1"_s,
        u"4 message from alice: to all 2"_s,
    };
    for (const QString& name : { u"alice"_s, u"bob"_s, u"carol"_s }) {
        QCOMPARE(logOf(name, group), expected);
    }
    QCOMPARE(logOf(u"dave"_s, group), QStringList());
}

QTEST_GUILESS_MAIN(TestServerGroups)
#include "tst_server_groups.moc"
