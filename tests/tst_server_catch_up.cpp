// Catching up while the log grows, against the real ferry-server on loopback: a device pulls its
// backlog in small batches while other users keep writing to it. Every event must arrive exactly
// once, with offsets that have no gap and no repeat, whether a message is committed between two
// batches of the backlog or after the device has gone live.

#include "core/MessageId.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"

#include <QTemporaryDir>
#include <QTest>

#include <memory>

#include "ferry.pb.h"

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

constexpr int BacklogLength = 9;
constexpr quint32 BatchSize = 2;

bool isEventBatch(const v1::Envelope& envelope) { return envelope.has_events(); }

} // namespace

class TestServerCatchUp : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void aMessageCommittedWhileTheBacklogStreamsArrivesExactlyOnce_data();
    void aMessageCommittedWhileTheBacklogStreamsArrivesExactlyOnce();

private:
    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    std::unique_ptr<ProtocolClient> m_carol;
    std::unique_ptr<ProtocolClient> m_bob;
    quint64 m_daveDeviceId = 0;
    QByteArray m_daveToken;
};

void TestServerCatchUp::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    m_carol = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_carol->registerUser(u"carol"_s) != 0);
    m_bob = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_bob->registerUser(u"bob"_s) != 0);
    ProtocolClient dave(m_server->url());
    m_daveDeviceId = dave.registerUser(u"dave"_s);
    QVERIFY(m_daveDeviceId != 0);
    m_daveToken = dave.deviceToken();
}

void TestServerCatchUp::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

void TestServerCatchUp::aMessageCommittedWhileTheBacklogStreamsArrivesExactlyOnce_data()
{
    // After which batches (counted from 1) bob commits a message to dave.
    QTest::addColumn<QList<int>>("commitAfterBatches");
    QTest::newRow("after the first batch") << QList<int> { 1 };
    QTest::newRow("in the middle of the backlog") << QList<int> { 3 };
    QTest::newRow("before the last batch") << QList<int> { 4 };
    QTest::newRow("after every batch") << QList<int> { 1, 2, 3, 4, 5, 6, 7 };
}

void TestServerCatchUp::aMessageCommittedWhileTheBacklogStreamsArrivesExactlyOnce()
{
    QFETCH(QList<int>, commitAfterBatches);

    // dave comes back on a new connection and learns where his log stands.
    ProtocolClient dave(m_server->url());
    QVERIFY(dave.hello());
    v1::Envelope resume;
    resume.mutable_resume()->set_device_id(m_daveDeviceId);
    resume.mutable_resume()->set_device_token(toStd(m_daveToken));
    const v1::Envelope authenticated = dave.request(resume);
    QVERIFY2(authenticated.has_authenticated(), authenticated.DebugString().c_str());
    const quint64 start = authenticated.authenticated().last_offset();

    // A backlog written while he was away.
    QList<QByteArray> expectedIds;
    for (int i = 0; i < BacklogLength; ++i) {
        expectedIds.append(MessageId::generate().bytes());
        QVERIFY(m_carol->sendMessage(directId(u"carol"_s, u"dave"_s), "backlog", expectedIds.last())
                    .has_send_ack());
    }

    QList<quint64> offsets;
    QList<QByteArray> received;
    quint64 after = start;
    int batches = 0;
    for (bool caughtUp = false; !caughtUp;) {
        QVERIFY2(++batches <= 2 * BacklogLength, "the catch-up does not end");
        v1::Envelope sync;
        sync.mutable_sync()->set_after_offset(after);
        sync.mutable_sync()->set_max_events(BatchSize);
        v1::Envelope batch;
        QVERIFY(dave.reply(dave.send(sync), &batch));
        QVERIFY2(batch.has_events(), batch.DebugString().c_str());
        QVERIFY(batch.events().events_size() <= int(BatchSize));
        for (const v1::Event& event : batch.events().events()) {
            offsets.append(event.offset());
            received.append(toBytes(event.message().message_id()));
        }
        after = batch.events().last_offset();
        caughtUp = batch.events().caught_up();

        // Between two batches another user writes to dave: the commit lands in the part of
        // the log that dave has not read yet.
        if (!caughtUp && commitAfterBatches.contains(batches)) {
            expectedIds.append(MessageId::generate().bytes());
            QVERIFY(
                m_bob->sendMessage(directId(u"bob"_s, u"dave"_s), "meanwhile", expectedIds.last())
                    .has_send_ack());
        }
    }

    QList<quint64> expectedOffsets;
    for (qsizetype i = 1; i <= expectedIds.size(); ++i) {
        expectedOffsets.append(start + quint64(i));
    }
    QCOMPARE(offsets, expectedOffsets);
    QCOMPARE(received, expectedIds);

    // Live now: nothing already sent comes again...
    for (const v1::Envelope& late : dave.collect(300)) {
        QVERIFY2(!isEventBatch(late), late.DebugString().c_str());
    }
    // ...and the next commit comes once, right after the last offset.
    const QByteArray nextId = MessageId::generate().bytes();
    QVERIFY(m_bob->sendMessage(directId(u"bob"_s, u"dave"_s), "live", nextId).has_send_ack());
    v1::Envelope push;
    QVERIFY(dave.nextWhere(isEventBatch, &push));
    QCOMPARE(push.request_id(), quint64(0));
    QCOMPARE(push.events().events_size(), 1);
    QCOMPARE(push.events().events(0).offset(), expectedOffsets.last() + 1);
    QCOMPARE(toBytes(push.events().events(0).message().message_id()), nextId);
    for (const v1::Envelope& late : dave.collect(200)) {
        QVERIFY2(!isEventBatch(late), late.DebugString().c_str());
    }
}

QTEST_GUILESS_MAIN(TestServerCatchUp)
#include "tst_server_catch_up.moc"
