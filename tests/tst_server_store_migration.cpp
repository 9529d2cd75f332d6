// The server store opening a database an older server wrote. tests/data/server-schema2.sql is
// such a database at schema 2, where each user's row kept the newest offset of its event log and
// each conversation's row its newest seq; schema 3 drops both counters and reads them from the
// end of the log and of the messages instead. Whatever the old counters said must still hold:
// the next offset and the next seq follow on with no gap and no reuse.

#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "server-stub/SqliteServerStore.h"
#include "tests/support/SqliteFile.h"

#include <QDir>
#include <QFile>
#include <QSqlError>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>

using namespace ferry;
using namespace ferry::server;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

const QString Group = u"group:3f0c1d2e-0000-4000-8000-00000000abcd"_s;

/// Runs the dump's statements into a new database file at `path`.
bool loadDump(const QString& dumpPath, const QString& path)
{
    QFile dump(dumpPath);
    if (!dump.open(QIODevice::ReadOnly | QIODevice::Text)) {
        qWarning() << "cannot read" << dumpPath;
        return false;
    }
    const SqliteFile file(path);
    bool done = file.isOpen();
    QSqlQuery query(file.database());
    // One statement per line; comment lines are skipped.
    while (done && !dump.atEnd()) {
        const QString line = QString::fromUtf8(dump.readLine()).trimmed();
        if (line.isEmpty() || line.startsWith(u"--")) {
            continue;
        }
        done = query.exec(line);
        if (!done) {
            qWarning() << line << query.lastError().text();
        }
    }
    return done;
}

/// The first column of every row `sql` returns, as text.
QStringList readColumn(const QString& path, const QString& sql)
{
    QStringList values;
    const SqliteFile file(path, SqliteFile::Access::ReadOnly);
    QSqlQuery query(file.database());
    query.exec(sql);
    while (query.next()) {
        values.append(query.value(0).toString());
    }
    return values;
}

QStringList columns(const QString& path, const QString& table)
{
    return readColumn(path, u"SELECT name FROM pragma_table_info('"_s + table + u"')"_s);
}

} // namespace

class TestServerStoreMigration : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void aSchemaTwoDatabaseKeepsItsOffsetsAndSeqs()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString path = QDir(dir.path()).filePath(u"server.db"_s);
        QVERIFY(loadDump(QStringLiteral(FERRY_TEST_DATA_DIR "/server-schema2.sql"), path));
        QVERIFY(columns(path, u"users"_s).contains(u"last_offset"_s));
        QCOMPARE(readColumn(path, u"PRAGMA user_version"_s), QStringList { u"2"_s });
        const QStringList storedBefore
            = readColumn(path, u"SELECT count(*) || ' ' || max(id) FROM messages"_s);
        QCOMPARE(storedBefore, QStringList { u"5 5"_s });

        Result<std::unique_ptr<SqliteServerStore>> opened = SqliteServerStore::open(dir.path());
        QVERIFY2(opened, qPrintable(opened ? QString() : opened.error().message));
        SqliteServerStore& store = *opened.value();

        const std::optional<UserRecord> alice = store.findUser(u"alice"_s);
        const std::optional<UserRecord> bob = store.findUser(u"bob"_s);
        const std::optional<UserRecord> carol = store.findUser(u"carol"_s);
        QVERIFY(alice && bob && carol);

        // What the old counters said: alice's and bob's logs at 6 (three direct messages, the
        // group, its message, bob's receipt), carol's at 2; the direct conversation at seq 3,
        // the group at 2 (its creation and one message).
        QCOMPARE(store.lastOffset(alice->id).value(), quint64(6));
        QCOMPARE(store.lastOffset(bob->id).value(), quint64(6));
        QCOMPARE(store.lastOffset(carol->id).value(), quint64(2));
        const QString direct = directConversationId(u"alice"_s, u"bob"_s);
        QCOMPARE(store.conversation(direct, alice->id)->lastSeq, quint64(3));
        QCOMPARE(store.conversation(Group, carol->id)->lastSeq, quint64(2));

        NewMessage message;
        message.messageId = MessageId::generate().bytes();
        message.conversationId = Group;
        message.senderUserId = carol->id;
        message.senderName = carol->name;
        message.senderDeviceId = 1;
        message.body = "after the upgrade";
        const Result<StoredMessageAck> stored = store.appendMessage(message);
        QVERIFY2(stored, qPrintable(stored ? QString() : stored.error().message));
        QCOMPARE(stored->seq, quint64(3));
        QCOMPARE(stored->notifiedUserIds.size(), 3);
        for (qsizetype i = 0; i < stored->notifiedUserIds.size(); ++i) {
            const qint64 userId = stored->notifiedUserIds[i];
            QCOMPARE(stored->offsets[i], userId == carol->id ? quint64(3) : quint64(7));
        }

        // A membership change takes the next seq and offsets too.
        const Result<ChangeResult> left = store.removeMember(Group, bob->id, u"bob"_s);
        QVERIFY(left);
        QCOMPARE(store.conversation(Group, carol->id)->lastSeq, quint64(4));
        QCOMPARE(store.lastOffset(carol->id).value(), quint64(4));

        // Every log reads back whole, offsets consecutive from 1.
        for (const qint64 userId : { alice->id, bob->id, carol->id }) {
            const Result<EventPage> page = store.eventsAfter(userId, 0, 100);
            QVERIFY(page);
            for (qsizetype i = 0; i < page->events.size(); ++i) {
                QCOMPARE(page->events[i].offset, quint64(i + 1));
            }
            QCOMPARE(quint64(page->events.size()), store.lastOffset(userId).value());
        }

        // The histories read the messages the old server stored from conversation_index (schema
        // 5 moved them there) and those stored since from the messages not yet indexed.
        const Result<HistoryPage> group = store.history(Group, carol->id, 0, 100);
        QVERIFY2(group, qPrintable(group ? QString() : group.error().message));
        QCOMPARE(group->entries.size(), 4);
        for (qsizetype i = 0; i < group->entries.size(); ++i) {
            QCOMPARE(group->entries[i].seq, quint64(i + 1));
        }
        QCOMPARE(group->entries[2].body, QByteArray("after the upgrade"));
        const Result<HistoryPage> older = store.history(direct, bob->id, 3, 100);
        QVERIFY(older);
        QCOMPARE(older->entries.size(), 2);
        QCOMPARE(older->entries[0].seq, quint64(1));
        QCOMPARE(older->entries[1].seq, quint64(2));

        opened.value().reset();
        // Messages keep one index, on their ids; the one on (conversation_id, seq) is now a
        // table, holding the five messages from before the upgrade (and the two since, once
        // folded).
        QCOMPARE(readColumn(path, u"SELECT count(*) FROM pragma_index_list('messages')"_s),
            QStringList { u"1"_s });
        QCOMPARE(readColumn(path,
                     u"SELECT count(*) FROM conversation_index c JOIN messages m"
                     " ON m.id = c.message_ref AND m.conversation_id = c.conversation_id"
                     " AND m.seq = c.seq WHERE m.id <= 5"_s),
            QStringList { u"5"_s });
        QVERIFY(!columns(path, u"users"_s).contains(u"last_offset"_s));
        QVERIFY(!columns(path, u"conversations"_s).contains(u"last_seq"_s));
        QCOMPARE(readColumn(path, u"PRAGMA user_version"_s),
            QStringList { QString::number(SqliteServerStore::SchemaVersion) });
    }
};

QTEST_GUILESS_MAIN(TestServerStoreMigration)
#include "tst_server_store_migration.moc"
