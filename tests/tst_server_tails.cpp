// The server store's two tails (server-stub/FoldQueue.h): new event-log entries go to log_tail and
// are later moved ("folded") into events, a user at a time; new messages wait in messages alone
// and are later indexed in conversation_index, a conversation at a time. With a fold lag of a few
// entries nearly every commit folds, so these checks cross the boundary all the time: every page
// of a log a device reads holds the offsets the acks announced, and every page of a history the
// seqs they announced, in order, with no gap and nothing twice, from any starting point and with
// pages that span both places; after the store is reopened; and after a commit that failed while
// folding, whose entries (and the seqs its messages took, which the store also keeps in memory)
// must vanish from memory as they vanished from the file.

#include "core/MessageId.h"
#include "server-stub/SqliteServerStore.h"
#include "tests/support/SqliteFile.h"

#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>

#include <map>

using namespace ferry;
using namespace ferry::server;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

constexpr int FoldLag = 3;
const QString Group = u"group:5d1e2f3a-0000-4000-8000-0000000000aa"_s;

} // namespace

class TestServerTails : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void everyPageHoldsTheAnnouncedOffsetsAndSeqsAcrossBothTables();
    void aReopenedStoreGoesOnFromWhereItsLogsAndHistoriesStood();
    void aCommitThatFailedWhileFoldingLeavesNoTrace_data();
    void aCommitThatFailedWhileFoldingLeavesNoTrace();

private:
    void openStore();
    /// Sends `rounds` batches mixing direct and group messages; records what the acks announce.
    void sendRounds(int rounds);
    NewMessage message(const QString& sender, const QString& conversation);
    /// Reads each user's log from every offset, four events a page, against what was announced.
    void verifyLogs();
    /// Reads each conversation's history before every seq, four entries a page, likewise.
    void verifyHistories();
    qint64 rowCount(const QString& table);

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SqliteServerStore> m_store;
    std::map<QString, qint64> m_userIds;
    /// Per user id: offset -> message id, as the acks announced them.
    std::map<qint64, std::map<quint64, QByteArray>> m_announced;
    /// Per conversation: the seq of the newest message acknowledged.
    std::map<QString, quint64> m_lastSeqs;
    /// Per conversation: seq -> message id, as the acks announced them.
    std::map<QString, std::map<quint64, QByteArray>> m_announcedSeqs;
    /// Per user id: the offset of the first message, after the group's creation.
    std::map<qint64, quint64> m_firstMessageOffset;
};

void TestServerTails::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    openStore();
    QVERIFY(m_store);
    for (const QString& name : { u"alice"_s, u"bob"_s, u"carol"_s, u"dave"_s }) {
        Result<UserRecord> user = m_store->createUser(name, "not-a-real-hash");
        QVERIFY(user);
        m_userIds[name] = user->id;
    }
    QVERIFY(m_store->createGroup(Group, u"t"_s, m_userIds[u"alice"_s], { u"bob"_s, u"carol"_s }));
    // The group's creation is the first entry of its members' logs.
    for (const auto& [name, id] : m_userIds) {
        m_firstMessageOffset[id] = m_store->lastOffset(id).value() + 1;
    }
}

void TestServerTails::cleanup()
{
    m_store.reset();
    m_dir.reset();
    m_userIds.clear();
    m_announced.clear();
    m_firstMessageOffset.clear();
    m_lastSeqs.clear();
    m_announcedSeqs.clear();
}

void TestServerTails::openStore()
{
    m_store.reset();
    Result<std::unique_ptr<SqliteServerStore>> opened = SqliteServerStore::open(
        m_dir->path(), SqliteServerStore::DefaultCheckpointPages, FoldLag);
    QVERIFY2(opened, qPrintable(opened ? QString() : opened.error().message));
    m_store = std::move(opened.value());
}

NewMessage TestServerTails::message(const QString& sender, const QString& conversation)
{
    NewMessage message;
    message.messageId = MessageId::generate().bytes();
    message.conversationId = conversation;
    message.senderUserId = m_userIds[sender];
    message.senderName = sender;
    message.senderDeviceId = 1;
    message.body = "body";
    return message;
}

void TestServerTails::sendRounds(int rounds)
{
    for (int round = 0; round < rounds; ++round) {
        const QList<NewMessage> batch {
            message(u"alice"_s, u"direct:alice:bob"_s),
            message(u"carol"_s, u"direct:carol:dave"_s),
            message(round % 2 ? u"bob"_s : u"carol"_s, Group),
            message(u"dave"_s, u"direct:carol:dave"_s),
        };
        const QList<Result<StoredMessageAck>> results = m_store->appendMessages(batch);
        QCOMPARE(results.size(), batch.size());
        for (qsizetype i = 0; i < batch.size(); ++i) {
            QVERIFY2(results[i], qPrintable(results[i] ? QString() : results[i].error().message));
            const StoredMessageAck& ack = results[i].value();
            // Each conversation's seqs go on one by one, whatever was rolled back before.
            if (const auto last = m_lastSeqs.find(batch[i].conversationId);
                last != m_lastSeqs.end()) {
                QCOMPARE(ack.seq, last->second + 1);
            }
            m_lastSeqs[batch[i].conversationId] = ack.seq;
            m_announcedSeqs[batch[i].conversationId][ack.seq] = batch[i].messageId;
            QCOMPARE(ack.offsets.size(), ack.notifiedUserIds.size());
            for (qsizetype m = 0; m < ack.offsets.size(); ++m) {
                auto& log = m_announced[ack.notifiedUserIds[m]];
                QVERIFY2(!log.contains(ack.offsets[m]), "an offset announced twice");
                log[ack.offsets[m]] = batch[i].messageId;
            }
        }
    }
}

void TestServerTails::verifyLogs()
{
    constexpr int PageSize = 4;
    for (const auto& [userId, announced] : m_announced) {
        const quint64 newest = announced.rbegin()->first;
        const quint64 first = m_firstMessageOffset.at(userId);
        // Offsets go on from the group's creation and leave no gap.
        QCOMPARE(announced.begin()->first, first);
        QCOMPARE(quint64(announced.size()), newest - first + 1);
        QCOMPARE(m_store->lastOffset(userId).value(), newest);
        for (quint64 after = 0; after <= newest; ++after) {
            Result<EventPage> page = m_store->eventsAfter(userId, after, PageSize);
            QVERIFY2(page, qPrintable(page ? QString() : page.error().message));
            const quint64 expected = std::min<quint64>(PageSize, newest - after);
            QCOMPARE(quint64(page->events.size()), expected);
            QCOMPARE(page->caughtUp, after + PageSize >= newest);
            for (qsizetype i = 0; i < page->events.size(); ++i) {
                const LogEvent& event = page->events[i];
                QCOMPARE(event.offset, after + 1 + quint64(i));
                QVERIFY(event.entry);
                if (event.offset >= first) {
                    QCOMPARE(event.entry->messageId, announced.at(event.offset));
                }
            }
        }
    }
}

void TestServerTails::verifyHistories()
{
    constexpr int PageSize = 4;
    for (const auto& [conversation, announced] : m_announcedSeqs) {
        const quint64 newest = announced.rbegin()->first;
        // The group's first entry is its creation; everything after it was announced.
        const quint64 first = announced.begin()->first;
        QCOMPARE(quint64(announced.size()), newest - first + 1);
        const qint64 viewer = m_userIds[conversation == Group ? u"carol"_s : u"dave"_s];
        const qint64 member = conversation == u"direct:alice:bob"_s ? m_userIds[u"bob"_s] : viewer;
        QCOMPARE(m_store->conversation(conversation, member)->lastSeq, newest);
        // 0 asks for the newest page.
        for (quint64 before = 0; before <= newest + 1; ++before) {
            Result<HistoryPage> page = m_store->history(conversation, member, before, PageSize);
            QVERIFY2(page, qPrintable(page ? QString() : page.error().message));
            const quint64 end = before == 0 ? newest + 1 : before;
            const quint64 expected = std::min<quint64>(PageSize, end - 1);
            QCOMPARE(quint64(page->entries.size()), expected);
            QCOMPARE(page->hasMore, end - 1 > PageSize);
            for (qsizetype i = 0; i < page->entries.size(); ++i) {
                const ConversationEntry& entry = page->entries[i];
                QCOMPARE(entry.seq, end - expected + quint64(i));
                QCOMPARE(entry.conversationId, conversation);
                if (entry.seq >= first) {
                    QCOMPARE(entry.messageId, announced.at(entry.seq));
                }
            }
        }
    }
}

qint64 TestServerTails::rowCount(const QString& table)
{
    SqliteFile file(m_dir->filePath(u"server.db"_s), SqliteFile::Access::ReadOnly);
    if (!file.isOpen()) {
        qWarning() << file.openError();
        return -1;
    }
    QSqlQuery query(file.database());
    if (!query.exec(u"SELECT count(*) FROM "_s + table) || !query.next()) {
        return -1;
    }
    return query.value(0).toLongLong();
}

void TestServerTails::everyPageHoldsTheAnnouncedOffsetsAndSeqsAcrossBothTables()
{
    sendRounds(30);
    // Most entries were folded; the tail keeps the newest few and the folded rows before the
    // oldest of those (at most a round's worth per user).
    const qint64 folded = rowCount(u"events"_s);
    const qint64 inTail = rowCount(u"log_tail"_s);
    QVERIFY2(folded > 200, qPrintable(QString::number(folded)));
    QVERIFY2(inTail >= 0 && inTail < 40, qPrintable(QString::number(inTail)));
    // 120 messages and the group's creation: each is either indexed or waiting, and few wait.
    const qint64 indexed = rowCount(u"conversation_index"_s);
    const qint64 waiting = m_store->logStats().waitingIndexEntries;
    QCOMPARE(rowCount(u"messages"_s), 121);
    QCOMPARE(indexed + waiting, 121);
    QVERIFY2(waiting <= FoldLag, qPrintable(QString::number(waiting)));
    verifyLogs();
    verifyHistories();
}

void TestServerTails::aReopenedStoreGoesOnFromWhereItsLogsAndHistoriesStood()
{
    sendRounds(17);
    QVERIFY(rowCount(u"log_tail"_s) > 0);
    QVERIFY(rowCount(u"conversation_index"_s) < rowCount(u"messages"_s));
    openStore();
    QVERIFY(m_store);
    verifyLogs();
    verifyHistories();
    sendRounds(5);
    verifyLogs();
    verifyHistories();
}

void TestServerTails::aCommitThatFailedWhileFoldingLeavesNoTrace_data()
{
    QTest::addColumn<QString>("table");
    QTest::newRow("folding a log") << u"events"_s;
    QTest::newRow("folding a conversation's index") << u"conversation_index"_s;
}

void TestServerTails::aCommitThatFailedWhileFoldingLeavesNoTrace()
{
    QFETCH(QString, table);
    sendRounds(10);
    {
        SqliteFile file(m_dir->filePath(u"server.db"_s));
        QVERIFY2(file.isOpen(), qPrintable(file.openError()));
        QSqlQuery query(file.database());
        QVERIFY(query.exec(u"CREATE TRIGGER poison BEFORE INSERT ON "_s + table
            + u" BEGIN SELECT RAISE(ROLLBACK, 'poisoned'); END"_s));
    }
    // With a lag of three entries every batch of four messages folds in both tails, so every
    // batch fails as a whole.
    for (int attempt = 0; attempt < 3; ++attempt) {
        const QList<Result<StoredMessageAck>> results
            = m_store->appendMessages({ message(u"alice"_s, u"direct:alice:bob"_s),
                message(u"bob"_s, Group), message(u"carol"_s, u"direct:carol:dave"_s),
                message(u"dave"_s, u"direct:carol:dave"_s) });
        for (const Result<StoredMessageAck>& result : results) {
            QVERIFY(!result);
        }
    }
    {
        SqliteFile file(m_dir->filePath(u"server.db"_s));
        QVERIFY2(file.isOpen(), qPrintable(file.openError()));
        QSqlQuery query(file.database());
        QVERIFY(query.exec(u"DROP TRIGGER poison"_s));
    }
    // The failed batches took no offset and no seq: the next ones go on from the last committed.
    verifyLogs();
    verifyHistories();
    sendRounds(3);
    verifyLogs();
    verifyHistories();
}

QTEST_GUILESS_MAIN(TestServerTails)
#include "tst_server_tails.moc"
