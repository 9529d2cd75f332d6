// Receipts and history at the protocol level, against the real ferry-server on loopback: a
// delivered or read receipt becomes an event for the other members and for the reporter's other
// devices, marks only move forward, and history pages walk a conversation backwards visiting
// every entry once, with its edges and limits.

#include "ferry.pb.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/Requests.h"
#include "tests/support/ServerProcess.h"

#include <QTemporaryDir>
#include <QTest>

#include <limits>
#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

// The history tests share one direct conversation of this many messages, "message 1" and on.
constexpr int HistoryLength = 25;

/// Events of a user's log after `afterOffset`, read through `client`.
QList<v1::Event> eventsAfter(ProtocolClient& client, quint64 afterOffset)
{
    QList<v1::Event> events;
    client.syncAll(&events, afterOffset);
    return events;
}

/// The newest offset of a user's log.
quint64 lastOffset(ProtocolClient& client)
{
    const QList<v1::Event> events = eventsAfter(client, 0);
    return events.isEmpty() ? 0 : events.last().offset();
}

/// The receipt events among `events`, each as "bob READ up to 3 from device 7".
QStringList receiptsIn(const QList<v1::Event>& events)
{
    QStringList receipts;
    for (const v1::Event& event : events) {
        if (event.has_receipt()) {
            const v1::ReceiptEvent& receipt = event.receipt();
            receipts.append(QString::fromStdString(receipt.user_name()) + u' '
                + QString::fromStdString(v1::ReceiptKind_Name(receipt.kind())) + u" up to "
                + QString::number(receipt.up_to_seq()) + u" from device "
                + QString::number(receipt.device_id()) + u" in "
                + QString::fromStdString(receipt.conversation_id()));
        }
    }
    return receipts;
}

QList<quint64> seqsOf(const v1::HistoryPage& page)
{
    QList<quint64> seqs;
    for (const v1::MessageEvent& message : page.messages()) {
        seqs.append(message.seq());
    }
    return seqs;
}

QList<quint64> range(quint64 first, quint64 last)
{
    QList<quint64> seqs;
    for (quint64 seq = first; seq <= last; ++seq) {
        seqs.append(seq);
    }
    return seqs;
}

} // namespace

class TestServerReceiptsHistory : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void aReceiptReachesTheOtherMembersAndTheReportersOtherDevices_data();
    void aReceiptReachesTheOtherMembersAndTheReportersOtherDevices();
    void receiptsOnlyMoveForward_data();
    void receiptsOnlyMoveForward();
    void aReceiptPastTheNewestEntryCountsUpToTheNewest();
    void aReceiptIsRefused_data();
    void aReceiptIsRefused();

    void theNewestPageComesFirst();
    void pagingBackwardsVisitsEverySeqOnce_data();
    void pagingBackwardsVisitsEverySeqOnce();
    void theEdgesOfTheHistory_data();
    void theEdgesOfTheHistory();
    void aPageOfNoneOrOfMoreThanTwoHundredIsRefused_data();
    void aPageOfNoneOrOfMoreThanTwoHundredIsRefused();

private:
    /// A new group of alice and bob with messages at seqs 2, 3 and 4 (the creation is seq 1).
    QString groupWithThreeMessages();

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    std::unique_ptr<ProtocolClient> m_alice;
    // bob reads on his phone; his laptop is the reporter's other device.
    std::unique_ptr<ProtocolClient> m_bobPhone;
    std::unique_ptr<ProtocolClient> m_bobLaptop;
    std::unique_ptr<ProtocolClient> m_carol;
    QString m_historyConversation;
};

void TestServerReceiptsHistory::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    m_alice = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_alice->registerUser(u"alice"_s) != 0);
    m_bobPhone = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_bobPhone->registerUser(u"bob"_s) != 0);
    m_bobLaptop = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_bobLaptop->login(u"bob"_s) != 0);
    m_carol = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_carol->registerUser(u"carol"_s) != 0);

    m_historyConversation = directId(u"alice"_s, u"carol"_s);
    for (int seq = 1; seq <= HistoryLength; ++seq) {
        const v1::Envelope ack
            = m_alice->sendMessage(m_historyConversation, "message " + QByteArray::number(seq));
        QVERIFY2(ack.send_ack().seq() == quint64(seq), ack.DebugString().c_str());
    }
}

void TestServerReceiptsHistory::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

QString TestServerReceiptsHistory::groupWithThreeMessages()
{
    const QString group = newGroupId();
    v1::Envelope create;
    create.mutable_create_group()->set_conversation_id(group.toStdString());
    create.mutable_create_group()->add_members("bob");
    if (!m_alice->request(create).has_conversation_info()) {
        return {};
    }
    for (int i = 0; i < 3; ++i) {
        if (!m_alice->sendMessage(group, "news").has_send_ack()) {
            return {};
        }
    }
    return group;
}

// Receipts -----------------------------------------------------------------------------------

void TestServerReceiptsHistory::aReceiptReachesTheOtherMembersAndTheReportersOtherDevices_data()
{
    QTest::addColumn<int>("kind");
    QTest::newRow("delivered") << int(v1::DELIVERED);
    QTest::newRow("read") << int(v1::READ);
}

void TestServerReceiptsHistory::aReceiptReachesTheOtherMembersAndTheReportersOtherDevices()
{
    QFETCH(int, kind);
    const QString group = groupWithThreeMessages();
    QVERIFY(!group.isEmpty());
    const quint64 aliceBefore = lastOffset(*m_alice);
    const quint64 bobBefore = lastOffset(*m_bobLaptop);
    m_bobLaptop->collect(0);

    const v1::Envelope answer
        = m_bobPhone->request(receiptRequest(group, static_cast<v1::ReceiptKind>(kind), 3));
    QVERIFY2(answer.has_ok(), answer.DebugString().c_str());

    const QString expected = u"bob "_s
        + QString::fromStdString(v1::ReceiptKind_Name(static_cast<v1::ReceiptKind>(kind)))
        + u" up to 3 from device "_s + QString::number(m_bobPhone->deviceId()) + u" in "_s + group;
    // The laptop, live since it read its log, is pushed the phone's receipt...
    v1::Envelope push;
    QVERIFY(m_bobLaptop->nextWhere([](const v1::Envelope& e) { return e.has_events(); }, &push));
    QCOMPARE(receiptsIn({ push.events().events().begin(), push.events().events().end() }),
        QStringList { expected });
    // ...and both accounts' logs hold it once.
    QCOMPARE(receiptsIn(eventsAfter(*m_alice, aliceBefore)), QStringList { expected });
    QCOMPARE(receiptsIn(eventsAfter(*m_bobLaptop, bobBefore)), QStringList { expected });
}

void TestServerReceiptsHistory::receiptsOnlyMoveForward_data()
{
    QTest::addColumn<int>("firstKind");
    QTest::addColumn<int>("firstUpTo");
    QTest::addColumn<int>("secondKind");
    QTest::addColumn<int>("secondUpTo");
    QTest::addColumn<bool>("secondIsNews");

    const int delivered = v1::DELIVERED;
    const int read = v1::READ;
    QTest::newRow("a higher delivered receipt") << delivered << 3 << delivered << 4 << true;
    QTest::newRow("the same delivered receipt again") << delivered << 3 << delivered << 3 << false;
    QTest::newRow("a lower delivered receipt") << delivered << 4 << delivered << 3 << false;
    QTest::newRow("a higher read receipt") << read << 3 << read << 4 << true;
    QTest::newRow("a lower read receipt") << read << 4 << read << 3 << false;
    QTest::newRow("read up to what was delivered") << delivered << 4 << read << 4 << true;
    QTest::newRow("delivered up to what was read") << read << 4 << delivered << 4 << false;
    QTest::newRow("delivered below what was read") << read << 4 << delivered << 2 << false;
    QTest::newRow("delivered past what was read") << read << 3 << delivered << 4 << true;
}

void TestServerReceiptsHistory::receiptsOnlyMoveForward()
{
    QFETCH(int, firstKind);
    QFETCH(int, firstUpTo);
    QFETCH(int, secondKind);
    QFETCH(int, secondUpTo);
    QFETCH(bool, secondIsNews);

    const QString group = groupWithThreeMessages();
    QVERIFY(!group.isEmpty());
    const v1::Envelope first = m_bobPhone->request(
        receiptRequest(group, static_cast<v1::ReceiptKind>(firstKind), quint64(firstUpTo)));
    QVERIFY2(first.has_ok(), first.DebugString().c_str());
    const quint64 aliceBefore = lastOffset(*m_alice);

    // A receipt that changes nothing is still answered Ok: for the client it is done.
    const v1::Envelope second = m_bobPhone->request(
        receiptRequest(group, static_cast<v1::ReceiptKind>(secondKind), quint64(secondUpTo)));
    QVERIFY2(second.has_ok(), second.DebugString().c_str());

    const QStringList news = receiptsIn(eventsAfter(*m_alice, aliceBefore));
    if (secondIsNews) {
        QCOMPARE(news.size(), 1);
        QVERIFY2(news[0].startsWith(u"bob "_s
                     + QString::fromStdString(
                         v1::ReceiptKind_Name(static_cast<v1::ReceiptKind>(secondKind)))
                     + u" up to "_s + QString::number(secondUpTo) + u' '),
            qPrintable(news[0]));
    } else {
        QCOMPARE(news, QStringList());
    }
}

void TestServerReceiptsHistory::aReceiptPastTheNewestEntryCountsUpToTheNewest()
{
    const QString group = groupWithThreeMessages();
    QVERIFY(!group.isEmpty());
    const quint64 aliceBefore = lastOffset(*m_alice);

    QVERIFY(m_bobPhone->request(receiptRequest(group, v1::READ, 1000)).has_ok());
    const QStringList news = receiptsIn(eventsAfter(*m_alice, aliceBefore));
    QCOMPARE(news.size(), 1);
    QVERIFY2(news[0].startsWith(u"bob READ up to 4 "_s), qPrintable(news[0]));

    // A read mark at the end covers the message that comes next only once it is reported.
    QVERIFY(m_alice->sendMessage(group, "one more").has_send_ack());
    const quint64 beforeFifth = lastOffset(*m_alice);
    QVERIFY(m_bobPhone->request(receiptRequest(group, v1::READ, 5)).has_ok());
    QCOMPARE(receiptsIn(eventsAfter(*m_alice, beforeFifth)).size(), 1);
}

void TestServerReceiptsHistory::aReceiptIsRefused_data()
{
    QTest::addColumn<QString>("reporter");
    QTest::addColumn<QString>("conversation");
    QTest::addColumn<int>("kind");
    QTest::addColumn<int>("expectedCode");

    QTest::newRow("a group one is not in")
        << u"carol"_s << u"group"_s << int(v1::READ) << int(v1::NOT_A_MEMBER);
    QTest::newRow("a direct conversation of others")
        << u"carol"_s << u"direct:alice:bob"_s << int(v1::DELIVERED) << int(v1::NOT_A_MEMBER);
    QTest::newRow("a conversation that does not exist")
        << u"carol"_s << u"group:no-such-group"_s << int(v1::READ) << int(v1::NOT_A_MEMBER);
    QTest::newRow("a receipt of no kind")
        << u"bob"_s << u"group"_s << int(v1::RECEIPT_UNSPECIFIED) << int(v1::BAD_REQUEST);
}

void TestServerReceiptsHistory::aReceiptIsRefused()
{
    QFETCH(QString, reporter);
    QFETCH(QString, conversation);
    QFETCH(int, kind);
    QFETCH(int, expectedCode);

    const QString group = groupWithThreeMessages();
    QVERIFY(!group.isEmpty());
    QVERIFY(m_alice->sendMessage(u"direct:alice:bob"_s, "hi").has_send_ack());
    const QString target = conversation == u"group" ? group : conversation;
    const quint64 aliceBefore = lastOffset(*m_alice);

    ProtocolClient& client = reporter == u"bob" ? *m_bobPhone : *m_carol;
    const v1::Envelope answer
        = client.request(receiptRequest(target, static_cast<v1::ReceiptKind>(kind), 2));
    QVERIFY2(answer.has_error(), answer.DebugString().c_str());
    QCOMPARE(int(answer.error().code()), expectedCode);
    QCOMPARE(receiptsIn(eventsAfter(*m_alice, aliceBefore)), QStringList());
}

// History ------------------------------------------------------------------------------------

void TestServerReceiptsHistory::theNewestPageComesFirst()
{
    const v1::Envelope answer = m_carol->request(historyRequest(m_historyConversation, 0, 5));
    QVERIFY2(answer.has_history_page(), answer.DebugString().c_str());
    const v1::HistoryPage& page = answer.history_page();
    QCOMPARE(QString::fromStdString(page.conversation_id()), m_historyConversation);
    QCOMPARE(seqsOf(page), range(21, 25));
    QVERIFY(page.has_more());
    for (const v1::MessageEvent& message : page.messages()) {
        QCOMPARE(message.body(), "message " + std::to_string(message.seq()));
        QCOMPARE(message.sender(), "alice");
        QCOMPARE(message.message_id().size(), size_t(16));
        QVERIFY(message.server_time_ms() > 0);
    }
    QCOMPARE(page.memberships_size(), 0);
}

void TestServerReceiptsHistory::pagingBackwardsVisitsEverySeqOnce_data()
{
    QTest::addColumn<int>("limit");
    QTest::newRow("one entry a page") << 1;
    QTest::newRow("seven entries a page") << 7;
    QTest::newRow("one page less than the whole") << HistoryLength - 1;
    QTest::newRow("exactly the whole in a page") << HistoryLength;
    QTest::newRow("more than the whole in a page") << HistoryLength + 1;
    QTest::newRow("the largest page") << 200;
}

void TestServerReceiptsHistory::pagingBackwardsVisitsEverySeqOnce()
{
    QFETCH(int, limit);

    QList<quint64> visited;
    quint64 before = 0;
    int pages = 0;
    for (bool more = true; more;) {
        QVERIFY2(++pages <= HistoryLength + 1, "the paging does not end");
        const v1::Envelope answer
            = m_alice->request(historyRequest(m_historyConversation, before, quint32(limit)));
        QVERIFY2(answer.has_history_page(), answer.DebugString().c_str());
        const QList<quint64> seqs = seqsOf(answer.history_page());
        QVERIFY(!seqs.isEmpty());
        QVERIFY(seqs.size() <= limit);
        // Ascending without a gap within the page, and just below the previous page.
        QCOMPARE(seqs, range(seqs.first(), seqs.last()));
        if (before != 0) {
            QCOMPARE(seqs.last(), before - 1);
        }
        visited = seqs + visited;
        before = seqs.first();
        more = answer.history_page().has_more();
        // has_more says exactly whether older entries exist.
        QCOMPARE(more, seqs.first() > 1);
    }
    QCOMPARE(visited, range(1, HistoryLength));
    QCOMPARE(pages, (HistoryLength + limit - 1) / limit);
}

void TestServerReceiptsHistory::theEdgesOfTheHistory_data()
{
    QTest::addColumn<quint64>("beforeSeq");
    QTest::addColumn<int>("limit");
    QTest::addColumn<QList<quint64>>("expectedSeqs");
    QTest::addColumn<bool>("expectedMore");

    QTest::newRow("before the first entry") << quint64(1) << 10 << QList<quint64>() << false;
    QTest::newRow("before the second entry") << quint64(2) << 10 << range(1, 1) << false;
    QTest::newRow("one entry before the second") << quint64(2) << 1 << range(1, 1) << false;
    QTest::newRow("one entry before the third") << quint64(3) << 1 << range(2, 2) << true;
    QTest::newRow("just past the newest")
        << quint64(HistoryLength + 1) << 5 << range(21, HistoryLength) << true;
    QTest::newRow("far past the newest") << quint64(1000) << 3 << range(23, HistoryLength) << true;
}

void TestServerReceiptsHistory::theEdgesOfTheHistory()
{
    QFETCH(quint64, beforeSeq);
    QFETCH(int, limit);
    QFETCH(QList<quint64>, expectedSeqs);
    QFETCH(bool, expectedMore);

    const v1::Envelope answer
        = m_alice->request(historyRequest(m_historyConversation, beforeSeq, quint32(limit)));
    QVERIFY2(answer.has_history_page(), answer.DebugString().c_str());
    QCOMPARE(seqsOf(answer.history_page()), expectedSeqs);
    QCOMPARE(answer.history_page().has_more(), expectedMore);
}

void TestServerReceiptsHistory::aPageOfNoneOrOfMoreThanTwoHundredIsRefused_data()
{
    QTest::addColumn<quint32>("limit");
    QTest::newRow("no entries") << quint32(0);
    QTest::newRow("201 entries") << quint32(201);
    QTest::newRow("the largest number there is") << std::numeric_limits<quint32>::max();
}

void TestServerReceiptsHistory::aPageOfNoneOrOfMoreThanTwoHundredIsRefused()
{
    QFETCH(quint32, limit);
    const v1::Envelope answer = m_alice->request(historyRequest(m_historyConversation, 0, limit));
    QVERIFY2(answer.has_error(), answer.DebugString().c_str());
    QCOMPARE(answer.error().code(), v1::BAD_REQUEST);
    // A refused request leaves the connection usable.
    QVERIFY(m_alice->request(historyRequest(m_historyConversation, 0, 1)).has_history_page());
}

QTEST_GUILESS_MAIN(TestServerReceiptsHistory)
#include "tst_server_receipts_history.moc"
