// Typing and presence at the protocol level, against the real ferry-server on loopback: both are
// pushed to connected devices only, never stored and never replayed, and reach only users who
// share a conversation with their subject.

#include "ferry.pb.h"
#include "tests/support/HttpProbe.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/Requests.h"
#include "tests/support/ServerProcess.h"

#include <QDateTime>
#include <QDeadlineTimer>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

const QString AliceAndBob = u"direct:alice:bob"_s;

bool isTyping(const v1::Envelope& envelope)
{
    return envelope.has_ephemeral() && envelope.ephemeral().has_typing();
}

/// Matches the presence of `user` going online or offline.
std::function<bool(const v1::Envelope&)> isPresence(const std::string& user, bool online)
{
    return [user, online](const v1::Envelope& envelope) {
        return envelope.has_ephemeral() && envelope.ephemeral().has_presence()
            && envelope.ephemeral().presence().user_name() == user
            && envelope.ephemeral().presence().online() == online;
    };
}

/// Every ephemeral frame among `envelopes`, as text for a failed check.
QStringList ephemeralsIn(const QList<v1::Envelope>& envelopes)
{
    QStringList found;
    for (const v1::Envelope& envelope : envelopes) {
        if (envelope.has_ephemeral()) {
            found.append(QString::fromStdString(envelope.ShortDebugString()));
        }
    }
    return found;
}

} // namespace

class TestServerEphemeral : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanupTestCase();

    void typingIsRelayedToTheOtherMembersConnectedDevices_data();
    void typingIsRelayedToTheOtherMembersConnectedDevices();
    void typingInAConversationOneIsNotInIsRefused();
    void typingIsNeverStoredNorReplayed();
    void presenceReachesOnlyUsersWhoShareAConversation();
    void aUserIsOfflineOnlyWhenTheLastConnectionCloses();
    void aNewConnectionHearsWhichContactsAreOnline();

private:
    /// A new authenticated connection of one of the three users.
    std::unique_ptr<ProtocolClient> connect(const QString& name);

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    QHash<QString, quint64> m_deviceIds;
    QHash<QString, QByteArray> m_deviceTokens;
};

void TestServerEphemeral::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    // alice and bob share a conversation; carol shares none with anybody.
    for (const QString& name : { u"alice"_s, u"bob"_s, u"carol"_s }) {
        ProtocolClient client(m_server->url());
        m_deviceIds[name] = client.registerUser(name);
        QVERIFY(m_deviceIds[name] != 0);
        m_deviceTokens[name] = client.deviceToken();
        if (name == u"bob") {
            QVERIFY(client.sendMessage(AliceAndBob, "hello").has_send_ack());
        }
    }
}

void TestServerEphemeral::init()
{
    // Presence depends on who is connected; every test starts with nobody, once the server has
    // seen the previous test's connections close.
    QDeadlineTimer deadline(5000);
    std::optional<double> open;
    while ((open = scrapeMetric(m_server->metricsUrl(), u"ferry_connections_authenticated"_s))
        != 0.0) {
        QVERIFY2(!deadline.hasExpired(), "connections of an earlier test are still open");
        QTest::qWait(20);
    }
}

void TestServerEphemeral::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

std::unique_ptr<ProtocolClient> TestServerEphemeral::connect(const QString& name)
{
    auto client = std::make_unique<ProtocolClient>(m_server->url());
    if (client->resume(m_deviceIds.value(name), m_deviceTokens.value(name)) == 0) {
        return nullptr;
    }
    return client;
}

void TestServerEphemeral::typingIsRelayedToTheOtherMembersConnectedDevices_data()
{
    QTest::addColumn<bool>("active");
    QTest::newRow("started typing") << true;
    QTest::newRow("stopped typing") << false;
}

void TestServerEphemeral::typingIsRelayedToTheOtherMembersConnectedDevices()
{
    QFETCH(bool, active);
    const auto alice = connect(u"alice"_s);
    const auto bob = connect(u"bob"_s);
    const auto bobAgain = connect(u"bob"_s);
    const auto carol = connect(u"carol"_s);
    QVERIFY(alice && bob && bobAgain && carol);

    alice->send(typingRequest(AliceAndBob, active));

    for (ProtocolClient* receiver : { bob.get(), bobAgain.get() }) {
        v1::Envelope relayed;
        QVERIFY(receiver->nextWhere(isTyping, &relayed));
        QCOMPARE(relayed.request_id(), quint64(0));
        const v1::TypingEvent& event = relayed.ephemeral().typing();
        QCOMPARE(QString::fromStdString(event.conversation_id()), AliceAndBob);
        QCOMPARE(event.user_name(), "alice");
        QCOMPARE(event.active(), active);
    }
    // Neither a non-member nor the typist hears of it, and nobody is answered.
    for (const QList<v1::Envelope>& heard : { carol->collect(300), alice->collect(0) }) {
        for (const v1::Envelope& envelope : heard) {
            QVERIFY2(!isTyping(envelope), envelope.DebugString().c_str());
            QVERIFY2(envelope.request_id() == 0, envelope.DebugString().c_str());
        }
    }
}

void TestServerEphemeral::typingInAConversationOneIsNotInIsRefused()
{
    const auto bob = connect(u"bob"_s);
    const auto carol = connect(u"carol"_s);
    QVERIFY(bob && carol);

    const v1::Envelope answer = carol->request(typingRequest(AliceAndBob, true));
    QVERIFY2(answer.has_error(), answer.DebugString().c_str());
    QCOMPARE(answer.error().code(), v1::NOT_A_MEMBER);
    for (const v1::Envelope& envelope : bob->collect(300)) {
        QVERIFY2(!isTyping(envelope), envelope.DebugString().c_str());
    }
}

void TestServerEphemeral::typingIsNeverStoredNorReplayed()
{
    const auto alice = connect(u"alice"_s);
    QVERIFY(alice);
    quint64 bobsOffsetBefore = 0;
    {
        const auto bob = connect(u"bob"_s);
        QVERIFY(bob);
        QList<v1::Event> events;
        QVERIFY(bob->syncAll(&events));
        bobsOffsetBefore = events.isEmpty() ? 0 : events.last().offset();

        alice->send(typingRequest(AliceAndBob, true));
        v1::Envelope relayed;
        QVERIFY(bob->nextWhere(isTyping, &relayed));
        bob->socket().close();
        QVERIFY(bob->waitClosed());
    }
    // Once bob is offline, as alice learns, typing is relayed to nobody.
    v1::Envelope offline;
    QVERIFY(alice->nextWhere(isPresence("bob", false), &offline));
    alice->send(typingRequest(AliceAndBob, false));
    alice->send(typingRequest(AliceAndBob, true));

    // Back again, bob's log has grown by nothing and no typing comes to his new connection.
    const auto bob = connect(u"bob"_s);
    QVERIFY(bob);
    QList<v1::Event> events;
    QVERIFY(bob->syncAll(&events));
    QCOMPARE(events.isEmpty() ? 0 : events.last().offset(), bobsOffsetBefore);
    for (const v1::Event& event : std::as_const(events)) {
        QVERIFY(event.has_message() || event.has_membership() || event.has_receipt());
    }
    for (const v1::Envelope& envelope : bob->collect(300)) {
        QVERIFY2(!isTyping(envelope), envelope.DebugString().c_str());
    }
}

void TestServerEphemeral::presenceReachesOnlyUsersWhoShareAConversation()
{
    const auto bob = connect(u"bob"_s);
    const auto carol = connect(u"carol"_s);
    QVERIFY(bob && carol);

    const qint64 beforeConnect = QDateTime::currentMSecsSinceEpoch();
    auto alice = connect(u"alice"_s);
    QVERIFY(alice);
    v1::Envelope online;
    QVERIFY(bob->nextWhere(isPresence("alice", true), &online));
    QCOMPARE(online.request_id(), quint64(0));
    QCOMPARE(online.ephemeral().presence().last_seen_ms(), qint64(0));

    alice->socket().close();
    QVERIFY(alice->waitClosed());
    v1::Envelope offline;
    QVERIFY(bob->nextWhere(isPresence("alice", false), &offline));
    const qint64 lastSeen = offline.ephemeral().presence().last_seen_ms();
    QVERIFY2(lastSeen >= beforeConnect && lastSeen <= QDateTime::currentMSecsSinceEpoch(),
        qPrintable(u"last seen "_s + QString::number(lastSeen - beforeConnect)
            + u" ms after the connection opened"_s));

    // carol shares no conversation with alice and hears nothing of her.
    const QStringList heardByCarol = ephemeralsIn(carol->collect(300));
    QVERIFY2(heardByCarol.isEmpty(), qPrintable(heardByCarol.join(u'\n')));
}

void TestServerEphemeral::aUserIsOfflineOnlyWhenTheLastConnectionCloses()
{
    const auto bob = connect(u"bob"_s);
    auto alice = connect(u"alice"_s);
    auto aliceAgain = connect(u"alice"_s);
    QVERIFY(bob && alice && aliceAgain);
    v1::Envelope online;
    QVERIFY(bob->nextWhere(isPresence("alice", true), &online));

    // One connection of two closing changes nothing for the others...
    aliceAgain->socket().close();
    QVERIFY(aliceAgain->waitClosed());
    const QStringList heard = ephemeralsIn(bob->collect(300));
    QVERIFY2(heard.isEmpty(), qPrintable(heard.join(u'\n')));

    // ...the last one does.
    alice->socket().close();
    QVERIFY(alice->waitClosed());
    v1::Envelope offline;
    QVERIFY(bob->nextWhere(isPresence("alice", false), &offline));
    QVERIFY(offline.ephemeral().presence().last_seen_ms() > 0);
}

void TestServerEphemeral::aNewConnectionHearsWhichContactsAreOnline()
{
    const auto bob = connect(u"bob"_s);
    QVERIFY(bob);

    const auto alice = connect(u"alice"_s);
    QVERIFY(alice);
    v1::Envelope snapshot;
    QVERIFY(alice->nextWhere(isPresence("bob", true), &snapshot));
    QCOMPARE(snapshot.request_id(), quint64(0));

    // carol has no contacts, so there is nobody to tell her about.
    const auto carol = connect(u"carol"_s);
    QVERIFY(carol);
    const QStringList heardByCarol = ephemeralsIn(carol->collect(300));
    QVERIFY2(heardByCarol.isEmpty(), qPrintable(heardByCarol.join(u'\n')));
}

QTEST_GUILESS_MAIN(TestServerEphemeral)
#include "tst_server_ephemeral.moc"
