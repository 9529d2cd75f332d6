// The server store's group commit, in-process on a real SQLite file: a batch of messages in which
// some are refused or resent tells, for every message it stored, the offset it took in each
// member's log. Pushes are built from those offsets, so they must be exactly what the log holds:
// consecutive per user across the batch, no offset taken by a refused message or a resend.

#include "core/MessageId.h"
#include "server-stub/SqliteServerStore.h"

#include <QTemporaryDir>
#include <QTest>

#include <map>

using namespace ferry;
using namespace ferry::server;
using namespace Qt::StringLiterals;

namespace {

const QString Group = u"group:3f0c1d2e-0000-4000-8000-00000000abcd"_s;

} // namespace

class TestServerStoreBatch : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void aBatchTellsEachStoredMessagesOffsetsAndTheyAreTheLog();

private:
    NewMessage message(const QString& sender, const QString& conversation, const QByteArray& body,
        const QByteArray& id = MessageId::generate().bytes());

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SqliteServerStore> m_store;
    std::map<QString, qint64> m_userIds;
};

void TestServerStoreBatch::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    Result<std::unique_ptr<SqliteServerStore>> opened = SqliteServerStore::open(m_dir->path());
    QVERIFY2(opened, qPrintable(opened ? QString() : opened.error().message));
    m_store = std::move(opened.value());
    for (const QString& name : { u"alice"_s, u"bob"_s, u"carol"_s, u"dave"_s }) {
        Result<UserRecord> user = m_store->createUser(name, "not-a-real-hash");
        QVERIFY(user);
        m_userIds[name] = user->id;
    }
    QVERIFY(m_store->createGroup(Group, u"t"_s, m_userIds[u"alice"_s], { u"bob"_s, u"carol"_s }));
}

void TestServerStoreBatch::cleanup()
{
    m_store.reset();
    m_dir.reset();
    m_userIds.clear();
}

NewMessage TestServerStoreBatch::message(const QString& sender, const QString& conversation,
    const QByteArray& body, const QByteArray& id)
{
    NewMessage message;
    message.messageId = id;
    message.conversationId = conversation;
    message.senderUserId = m_userIds[sender];
    message.senderName = sender;
    message.senderDeviceId = 1;
    message.body = body;
    return message;
}

void TestServerStoreBatch::aBatchTellsEachStoredMessagesOffsetsAndTheyAreTheLog()
{
    const QByteArray firstId = MessageId::generate().bytes();
    const QList<NewMessage> batch {
        message(u"alice"_s, Group, "one", firstId),
        message(u"dave"_s, Group, "not a member"),
        message(u"bob"_s, Group, "two"),
        message(u"carol"_s, Group, "one again", firstId), // someone else's id: a conflict
        message(u"alice"_s, Group, "one", firstId), // a resend: answered, nothing written
        message(u"alice"_s, u"direct:alice:bob"_s, "aside"), // creates the conversation
        message(u"carol"_s, Group, "three"),
    };
    const QList<Result<StoredMessageAck>> results = m_store->appendMessages(batch);
    QCOMPARE(results.size(), batch.size());

    QVERIFY(!results[1]);
    QCOMPARE(results[1].error().kind, StoreError::NotAMember);
    QVERIFY(!results[3]);
    QCOMPARE(results[3].error().kind, StoreError::IdConflict);
    QVERIFY(results[4] && results[4]->alreadyStored);
    QVERIFY(results[4]->offsets.isEmpty());

    // Per user, the offsets the batch handed out, in order, with the body each one carries.
    std::map<qint64, QList<std::pair<quint64, QByteArray>>> handedOut;
    for (const int stored : { 0, 2, 5, 6 }) {
        const Result<StoredMessageAck>& result = results[stored];
        QVERIFY2(result, qPrintable(u"message "_s + QString::number(stored)));
        QVERIFY(!result->alreadyStored);
        QCOMPARE(result->offsets.size(), result->notifiedUserIds.size());
        for (qsizetype i = 0; i < result->offsets.size(); ++i) {
            handedOut[result->notifiedUserIds[i]].append(
                { result->offsets[i], batch[stored].body });
        }
    }
    // The group's creation took offset 1 in each member's log; dave's log stays empty.
    QCOMPARE(handedOut[m_userIds[u"alice"_s]].size(), 4);
    QCOMPARE(handedOut[m_userIds[u"bob"_s]].size(), 4);
    QCOMPARE(handedOut[m_userIds[u"carol"_s]].size(), 3);
    QVERIFY(!handedOut.contains(m_userIds[u"dave"_s]));

    for (const auto& [userId, entries] : handedOut) {
        Result<EventPage> page = m_store->eventsAfter(userId, 1, 100);
        QVERIFY(page);
        QVERIFY(page->caughtUp);
        QCOMPARE(page->events.size(), entries.size());
        for (qsizetype i = 0; i < entries.size(); ++i) {
            QCOMPARE(entries[i].first, quint64(2 + i));
            QCOMPARE(page->events[i].offset, entries[i].first);
            QVERIFY(page->events[i].entry);
            QCOMPARE(page->events[i].entry->body, entries[i].second);
        }
        Result<quint64> last = m_store->lastOffset(userId);
        QVERIFY(last);
        QCOMPARE(last.value(), entries.last().first);
    }

    // The next batch continues each log right after.
    const Result<StoredMessageAck> next = m_store->appendMessage(message(u"bob"_s, Group, "four"));
    QVERIFY(next);
    const qsizetype bob = next->notifiedUserIds.indexOf(m_userIds[u"bob"_s]);
    QVERIFY(bob >= 0);
    QCOMPARE(next->offsets[bob], quint64(6));
}

QTEST_GUILESS_MAIN(TestServerStoreBatch)
#include "tst_server_store_batch.moc"
