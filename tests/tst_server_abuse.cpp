// A client reaching for what is not its own, at the protocol level, against the real
// ferry-server on loopback. Before it has a session, every request that needs one is refused
// with NOT_AUTHENTICATED; once signed in, a user who guesses the ids of other users'
// conversations, messages, devices and groups is refused every time. Each case also checks that
// the refusal leaks and changes nothing: the victims' histories, devices and groups read the
// same afterwards, their live connections hear nothing, and the intruder receives nothing but
// the refusal.
//
// tst_server_groups, tst_server_receipts_history, tst_server_devices and tst_server_ephemeral
// check the membership rules of their own areas; this suite puts every way in side by side, with
// the same checks of what leaked.

#include "core/MessageId.h"
#include "ferry.pb.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/Requests.h"
#include "tests/support/ServerProcess.h"

#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTest>

#include <functional>
#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

/// How long a connection that should hear nothing is listened to. Anything the server sends
/// because of a request is sent while handling it, long before this on an idle machine.
constexpr int QuietMs = 150;

/// The ids an intruder might guess, all of them real.
struct Targets {
    QString direct; ///< alice and bob's direct conversation
    QString group; ///< alice's group with bob
    QString intrudersGroup; ///< mallory's own group, with nobody else in it
    QByteArray aliceMessageId; ///< one of alice's messages to bob
    quint64 aliceDevice = 0;
    quint64 bobDevice = 0;
};

using Build = std::function<v1::Envelope(const Targets&)>;

/// One request aimed at data that is not the sender's, and the refusal docs/protocol.md gives it.
/// A message id or group id already in use is refused as taken (DUPLICATE_ID_CONFLICT) before
/// membership is looked at: that tells whoever already knows such an id that it exists, and
/// nothing more (no seq, no time, no member); the ids are random 128-bit values, never listed.
struct Attempt {
    const char* name;
    Build build;
    v1::ErrorCode refusal;
};

v1::Envelope send(const QString& conversation, const QByteArray& id = MessageId::generate().bytes())
{
    v1::Envelope envelope;
    envelope.mutable_send()->set_message_id(toStd(id));
    envelope.mutable_send()->set_conversation_id(conversation.toStdString());
    envelope.mutable_send()->set_body("mallory was here");
    return envelope;
}

const QList<Attempt>& attempts()
{
    static const QList<Attempt> all = {
        { "send into a direct conversation of two others",
            [](const Targets& t) { return send(t.direct); }, v1::NOT_A_MEMBER },
        { "send into it with the two names the other way round",
            [](const Targets&) { return send(u"direct:bob:alice"_s); }, v1::NOT_A_MEMBER },
        { "send into it under the id of one of its messages",
            [](const Targets& t) { return send(t.direct, t.aliceMessageId); },
            v1::DUPLICATE_ID_CONFLICT },
        { "send into one's own group under the id of another's message",
            [](const Targets& t) { return send(t.intrudersGroup, t.aliceMessageId); },
            v1::DUPLICATE_ID_CONFLICT },
        { "read the history of a direct conversation of others",
            [](const Targets& t) { return historyRequest(t.direct, 0, 200); }, v1::NOT_A_MEMBER },
        { "read it from a far seq down",
            [](const Targets& t) { return historyRequest(t.direct, 1'000'000, 200); },
            v1::NOT_A_MEMBER },
        { "report it delivered",
            [](const Targets& t) { return receiptRequest(t.direct, v1::DELIVERED, 1); },
            v1::NOT_A_MEMBER },
        { "report it read", [](const Targets& t) { return receiptRequest(t.direct, v1::READ, 3); },
            v1::NOT_A_MEMBER },
        { "type into it", [](const Targets& t) { return typingRequest(t.direct, true); },
            v1::NOT_A_MEMBER },
        { "rename another account's device",
            [](const Targets& t) { return renameDeviceRequest(t.aliceDevice, u"mallory's now"_s); },
            v1::NOT_FOUND },
        { "remove another account's device",
            [](const Targets& t) { return removeDeviceRequest(t.bobDevice); }, v1::NOT_FOUND },
        { "send into a group one is not in", [](const Targets& t) { return send(t.group); },
            v1::NOT_A_MEMBER },
        { "read the history of a group one is not in",
            [](const Targets& t) { return historyRequest(t.group, 0, 200); }, v1::NOT_A_MEMBER },
        { "report a group read that one is not in",
            [](const Targets& t) { return receiptRequest(t.group, v1::READ, 1); },
            v1::NOT_A_MEMBER },
        { "type into a group one is not in",
            [](const Targets& t) { return typingRequest(t.group, true); }, v1::NOT_A_MEMBER },
        { "add oneself to a group one is not in",
            [](const Targets& t) { return addMembersRequest(t.group, { u"mallory"_s }); },
            v1::NOT_A_MEMBER },
        { "remove a member from a group one is not in",
            [](const Targets& t) { return removeMemberRequest(t.group, u"bob"_s); },
            v1::NOT_A_MEMBER },
        { "leave a group one is not in", [](const Targets& t) { return leaveRequest(t.group); },
            v1::NOT_A_MEMBER },
        { "create a group under the id of another's group",
            [](const Targets& t) {
                return createGroupRequest(t.group, { u"alice"_s }, u"taken over"_s);
            },
            v1::DUPLICATE_ID_CONFLICT },
        { "add oneself to a direct conversation of others",
            [](const Targets& t) { return addMembersRequest(t.direct, { u"mallory"_s }); },
            v1::NOT_A_MEMBER },
        { "leave a direct conversation of others",
            [](const Targets& t) { return leaveRequest(t.direct); }, v1::NOT_A_MEMBER },
    };
    return all;
}

/// Whether a frame pushed to a victim's connection carries anything: events, or a typing notice.
bool carriesNews(const v1::Envelope& envelope)
{
    return (envelope.has_events() && envelope.events().events_size() > 0)
        || (envelope.has_ephemeral() && envelope.ephemeral().has_typing());
}

} // namespace

class TestServerAbuse : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void everyRequestThatNeedsASessionIsRefusedBeforeOne_data();
    void everyRequestThatNeedsASessionIsRefusedBeforeOne();
    void aGuessedIdOfAnotherUsersDataIsRefusedAndLeaksNothing_data();
    void aGuessedIdOfAnotherUsersDataIsRefusedAndLeaksNothing();
    void aForgedSyncCursorReadsOnlyTheCallersOwnLog_data();
    void aForgedSyncCursorReadsOnlyTheCallersOwnLog();

private:
    /// Everything alice and bob can see of their data, as text to compare before and after.
    QString victimsView();
    /// Checks that alice's and bob's live connections heard nothing since the last call.
    void verifyVictimsHeardNothing();

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    std::unique_ptr<ProtocolClient> m_alice;
    std::unique_ptr<ProtocolClient> m_bob;
    std::unique_ptr<ProtocolClient> m_mallory;
    Targets m_targets;
    quint64 m_aliceLastOffset = 0;
};

void TestServerAbuse::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    m_alice = std::make_unique<ProtocolClient>(m_server->url());
    m_bob = std::make_unique<ProtocolClient>(m_server->url());
    m_mallory = std::make_unique<ProtocolClient>(m_server->url());
    m_targets.aliceDevice = m_alice->registerUser(u"alice"_s);
    m_targets.bobDevice = m_bob->registerUser(u"bob"_s);
    QVERIFY(m_targets.aliceDevice != 0 && m_targets.bobDevice != 0);
    QVERIFY(m_mallory->registerUser(u"mallory"_s) != 0);

    // alice and bob talk directly and in a group; bob has read some of it.
    m_targets.direct = directId(u"alice"_s, u"bob"_s);
    m_targets.aliceMessageId = MessageId::generate().bytes();
    QVERIFY(m_alice->sendMessage(m_targets.direct, "hello bob", m_targets.aliceMessageId)
                .has_send_ack());
    QVERIFY(m_alice->sendMessage(m_targets.direct, "are you there?").has_send_ack());
    QVERIFY(m_bob->sendMessage(m_targets.direct, "yes").has_send_ack());
    m_targets.group = newGroupId();
    QVERIFY(m_alice->request(createGroupRequest(m_targets.group, { u"bob"_s }, u"taken over"_s))
                .has_conversation_info());
    QVERIFY(m_alice->sendMessage(m_targets.group, "the plan").has_send_ack());
    QVERIFY(m_bob->request(receiptRequest(m_targets.direct, v1::READ, 2)).has_ok());
    // mallory has a group of her own, shared with nobody.
    m_targets.intrudersGroup = newGroupId();
    QVERIFY(m_mallory->request(createGroupRequest(m_targets.intrudersGroup, {}, u"taken over"_s))
                .has_conversation_info());

    // alice and bob stay live from here on: whatever reaches their logs is pushed to them.
    QList<v1::Event> events;
    QVERIFY(m_alice->syncAll(&events));
    QVERIFY(!events.isEmpty());
    m_aliceLastOffset = events.last().offset();
    QVERIFY(m_bob->syncAll(&events));
    QList<v1::Event> own;
    QVERIFY(m_mallory->syncAll(&own));
    m_alice->collect(QuietMs);
    m_bob->collect(0);
    m_mallory->collect(0);
}

void TestServerAbuse::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

QString TestServerAbuse::victimsView()
{
    QStringList view;
    for (ProtocolClient* victim : { m_alice.get(), m_bob.get() }) {
        for (const QString& conversation : { m_targets.direct, m_targets.group }) {
            view.append(QString::fromStdString(
                victim->request(historyRequest(conversation, 0, 200)).ShortDebugString()));
        }
        v1::Envelope list;
        list.mutable_list_devices();
        view.append(QString::fromStdString(victim->request(list).ShortDebugString()));
    }
    // The request ids differ from one call to the next; what was answered does not.
    for (QString& line : view) {
        line.remove(QRegularExpression(u"^request_id: \\d+ "_s));
    }
    return view.join(u'\n');
}

void TestServerAbuse::verifyVictimsHeardNothing()
{
    for (ProtocolClient* victim : { m_alice.get(), m_bob.get() }) {
        for (const v1::Envelope& pushed : victim->collect(0)) {
            QVERIFY2(!carriesNews(pushed), pushed.ShortDebugString().c_str());
        }
        QCOMPARE(victim->socket().state(), QAbstractSocket::ConnectedState);
    }
}

void TestServerAbuse::everyRequestThatNeedsASessionIsRefusedBeforeOne_data()
{
    QTest::addColumn<int>("field");

    // Every payload of the Envelope, also those only a server sends: none of them may do
    // anything on a connection that has not signed in.
    const google::protobuf::OneofDescriptor* payload
        = v1::Envelope::descriptor()->FindOneofByName("payload");
    QVERIFY(payload);
    const QStringList signIn
        = { u"hello"_s, u"register"_s, u"login"_s, u"resume"_s, u"authenticate"_s };
    for (int i = 0; i < payload->field_count(); ++i) {
        const std::string& name = payload->field(i)->name();
        if (!signIn.contains(QString::fromStdString(name))) {
            QTest::newRow(name.c_str()) << payload->field(i)->number();
        }
    }
}

void TestServerAbuse::everyRequestThatNeedsASessionIsRefusedBeforeOne()
{
    QFETCH(int, field);
    const google::protobuf::FieldDescriptor* descriptor
        = v1::Envelope::descriptor()->FindFieldByNumber(field);
    QVERIFY(descriptor);

    // The request as an intruder would aim it: at alice and bob's data where it names any.
    v1::Envelope envelope;
    const QString name = QString::fromStdString(descriptor->name());
    for (const Attempt& attempt : attempts()) {
        v1::Envelope candidate = attempt.build(m_targets);
        if (candidate.payload_case() == field) {
            envelope = candidate;
            break;
        }
    }
    if (envelope.payload_case() != field) {
        envelope.GetReflection()->MutableMessage(&envelope, descriptor);
    }
    QCOMPARE(int(envelope.payload_case()), field);

    const QString before = victimsView();
    ProtocolClient stranger(m_server->url());
    QVERIFY(stranger.hello());
    const quint64 requestId = stranger.send(envelope);
    v1::Envelope answer;
    QVERIFY(stranger.next(&answer));
    QCOMPARE(answer.request_id(), requestId);
    QVERIFY2(answer.error().code() == v1::NOT_AUTHENTICATED, answer.ShortDebugString().c_str());
    QVERIFY(stranger.staysQuiet(QuietMs));
    QCOMPARE(stranger.socket().state(), QAbstractSocket::ConnectedState);

    verifyVictimsHeardNothing();
    QCOMPARE(victimsView(), before);
}

void TestServerAbuse::aGuessedIdOfAnotherUsersDataIsRefusedAndLeaksNothing_data()
{
    QTest::addColumn<int>("attempt");

    for (qsizetype i = 0; i < attempts().size(); ++i) {
        QTest::newRow(attempts().at(i).name) << int(i);
    }
}

void TestServerAbuse::aGuessedIdOfAnotherUsersDataIsRefusedAndLeaksNothing()
{
    QFETCH(int, attempt);
    const Attempt& tried = attempts().at(attempt);
    const QString before = victimsView();

    const quint64 requestId = m_mallory->send(tried.build(m_targets));
    v1::Envelope answer;
    QVERIFY(m_mallory->next(&answer));
    QCOMPARE(answer.request_id(), requestId);
    QVERIFY2(answer.has_error(), answer.ShortDebugString().c_str());
    QVERIFY2(answer.error().code() == tried.refusal, answer.ShortDebugString().c_str());
    // The refusal names nothing of theirs but what mallory sent herself.
    const std::string said = answer.error().message();
    for (const char* secret : { "hello bob", "are you there", "the plan", "yes" }) {
        QVERIFY2(said.find(secret) == std::string::npos, said.c_str());
    }
    QVERIFY(m_mallory->staysQuiet(QuietMs));
    QCOMPARE(m_mallory->socket().state(), QAbstractSocket::ConnectedState);

    verifyVictimsHeardNothing();
    QCOMPARE(victimsView(), before);
}

void TestServerAbuse::aForgedSyncCursorReadsOnlyTheCallersOwnLog_data()
{
    QTest::addColumn<quint64>("afterOffset");

    QTest::newRow("from the start") << quint64(0);
    QTest::newRow("from the middle of alice's log") << quint64(2);
    QTest::newRow("from alice's newest offset") << m_aliceLastOffset;
    QTest::newRow("from far beyond any log") << (quint64(1) << 62);
}

void TestServerAbuse::aForgedSyncCursorReadsOnlyTheCallersOwnLog()
{
    QFETCH(quint64, afterOffset);
    const QString before = victimsView();

    // A fresh connection of mallory's: the live one has a stream of its own going.
    ProtocolClient mallory(m_server->url());
    QVERIFY(mallory.resume(m_mallory->deviceId(), m_mallory->deviceToken()) != 0);
    v1::Envelope sync;
    sync.mutable_sync()->set_after_offset(afterOffset);
    v1::Envelope batch;
    QVERIFY(mallory.reply(mallory.send(sync), &batch));
    QVERIFY2(batch.has_events(), batch.ShortDebugString().c_str());
    // Her log holds the creation of her own group and nothing else.
    for (const v1::Event& event : batch.events().events()) {
        QVERIFY2(event.offset() > afterOffset, event.ShortDebugString().c_str());
        QVERIFY2(event.has_membership()
                && event.membership().conversation_id() == m_targets.intrudersGroup.toStdString(),
            event.ShortDebugString().c_str());
    }
    QVERIFY(batch.events().caught_up());

    verifyVictimsHeardNothing();
    QCOMPARE(victimsView(), before);
}

QTEST_GUILESS_MAIN(TestServerAbuse)
#include "tst_server_abuse.moc"
