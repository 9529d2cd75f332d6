// The client's local store, in-process against real SQLite files in a temporary folder: the
// outbox, acknowledgements, applying the event log without ever storing a message twice, the
// display order, durability across close and open, and refusing files that are not its own.

#include "core/ClientStore.h"
#include "core/MessageId.h"
#include "tests/support/Checks.h"
#include "tests/support/SqliteFile.h"
#include "tests/support/TestFiles.h"

#include <QDir>
#include <QFile>
#include <QRandomGenerator>
#include <QSqlError>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

Q_DECLARE_METATYPE(ferry::MessageState)

namespace ferry {

// Lets QCOMPARE print a state by its name.
char* toString(MessageState state) { return QTest::toString(messageStateName(state)); }

} // namespace ferry

namespace {

const QString Conversation = QStringLiteral("direct:alice:bob");
const QString OtherConversation = QStringLiteral("direct:alice:carol");

IncomingMessage eventFrom(const QString& sender, quint64 offset, quint64 seq,
    const QByteArray& body, const QString& conversation = Conversation)
{
    IncomingMessage event;
    event.offset = offset;
    event.messageId = MessageId::generate().bytes();
    event.conversationId = conversation;
    event.seq = seq;
    event.sender = sender;
    event.body = body;
    event.serverTimeMs = 1'700'000'000'000 + static_cast<qint64>(seq);
    return event;
}

QByteArrayList bodiesOf(const QList<StoredMessage>& messages)
{
    QByteArrayList bodies;
    for (const StoredMessage& message : messages) {
        bodies.append(message.body);
    }
    return bodies;
}

QByteArrayList idsOf(const QList<StoredMessage>& messages)
{
    QByteArrayList ids;
    for (const StoredMessage& message : messages) {
        ids.append(message.messageId);
    }
    return ids;
}

/// Writes a SQLite database the way another program would, through its own connection.
QString writeForeignDatabase(const QString& path, const QStringList& statements)
{
    const SqliteFile file(path);
    QString error = file.openError();
    QSqlQuery query(file.database());
    for (const QString& statement : statements) {
        if (error.isEmpty() && !query.exec(statement)) {
            error = statement + u": " + query.lastError().text();
        }
    }
    return error;
}

} // namespace

class TestClientStore : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void enqueueWritesQueuedMessagesToTheOutboxInWriteOrder();
    void markSentSetsSeqAndStateAndTheFirstAckWins();
    void applyEventsStoresNewMessages_data();
    void applyEventsStoresNewMessages();
    void applyEventsSkipsEventsAtOrBelowTheStoredOffset();
    void applyEventsNeverStoresAMessageIdTwice_data();
    void applyEventsNeverStoresAMessageIdTwice();
    void applyEventsSettlesAnOwnQueuedMessageWhenItsEventArrives();
    void applyEventsAdvancesTheOffsetAndNeverMovesItBack();
    void historyIsBySeqThenQueuedInWriteOrder();
    void reopeningKeepsEverything();
    void aFileThatIsNotADatabaseIsRefusedAndLeftUntouched_data();
    void aFileThatIsNotADatabaseIsRefusedAndLeftUntouched();
    void anotherProgramsDatabaseIsRefusedAndLeftUntouched_data();
    void anotherProgramsDatabaseIsRefusedAndLeftUntouched();

private:
    /// The profile the store under test lives in.
    QString profileDir() const { return m_dir->filePath(QStringLiteral("profile")); }
    /// A second profile folder, for files the store must refuse.
    QString foreignDir() const { return m_dir->filePath(QStringLiteral("foreign")); }
    QString foreignDatabasePath() const
    {
        return QDir(foreignDir()).filePath(QStringLiteral("ferry.db"));
    }

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<ClientStore> m_store;
};

void TestClientStore::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY2(m_dir->isValid(), qPrintable(m_dir->errorString()));
    QVERIFY(QDir().mkpath(foreignDir()));

    Result<std::unique_ptr<ClientStore>> opened = ClientStore::open(profileDir());
    QVERIFY2(opened, whyNot(opened).constData());
    m_store = std::move(opened.value());
    AccountInfo account;
    account.serverUrl = QStringLiteral("ws://127.0.0.1:1");
    account.userName = QStringLiteral("alice");
    account.deviceId = 7;
    account.deviceToken = QByteArrayLiteral("token");
    const Result<Done> saved = m_store->saveAccount(account);
    QVERIFY2(saved, whyNot(saved).constData());
}

void TestClientStore::cleanup()
{
    // The store closes its connection before the folder it lives in is removed.
    m_store.reset();
    m_dir.reset();
}

void TestClientStore::enqueueWritesQueuedMessagesToTheOutboxInWriteOrder()
{
    // Ids written in the same millisecond differ in random bits, so with this many messages the
    // id order almost surely differs from the write order: the outbox must not follow ids.
    QByteArrayList written;
    QByteArrayList writtenIds;
    for (int i = 0; i < 30; ++i) {
        written.append(QByteArray("message " + QByteArray::number(i)));
        const Result<StoredMessage> queued = m_store->enqueue(Conversation, written.last());
        QVERIFY2(queued, whyNot(queued).constData());
        QCOMPARE(queued->state, MessageState::Queued);
        QVERIFY(!queued->seq.has_value());
        QCOMPARE(queued->sender, QStringLiteral("alice"));
        writtenIds.append(queued->messageId);
    }

    const Result<QList<StoredMessage>> outbox = m_store->outbox();
    QVERIFY2(outbox, whyNot(outbox).constData());
    QCOMPARE(bodiesOf(outbox.value()), written);
    QCOMPARE(idsOf(outbox.value()), writtenIds);
    for (const StoredMessage& message : outbox.value()) {
        QCOMPARE(message.state, MessageState::Queued);
        QCOMPARE(message.conversationId, Conversation);
        QVERIFY(!message.seq.has_value());
    }
}

void TestClientStore::markSentSetsSeqAndStateAndTheFirstAckWins()
{
    const Result<StoredMessage> queued = m_store->enqueue(Conversation, "hello");
    QVERIFY2(queued, whyNot(queued).constData());

    const Result<Done> first = m_store->markSent(queued->messageId, 4, 1234);
    QVERIFY2(first, whyNot(first).constData());
    std::optional<StoredMessage> sent = m_store->message(queued->messageId);
    QVERIFY(sent);
    QCOMPARE(sent->state, MessageState::Sent);
    QCOMPARE(sent->seq.value_or(0), quint64(4));
    QCOMPARE(sent->serverTimeMs.value_or(0), qint64(1234));
    QVERIFY(m_store->outbox()->isEmpty());

    // Acks arrive twice after a reconnect; the second, even one that disagrees, changes nothing.
    const Result<Done> again = m_store->markSent(queued->messageId, 4, 1234);
    QVERIFY2(again, whyNot(again).constData());
    const Result<Done> different = m_store->markSent(queued->messageId, 9, 9999);
    QVERIFY2(different, whyNot(different).constData());
    sent = m_store->message(queued->messageId);
    QCOMPARE(sent->seq.value_or(0), quint64(4));
    QCOMPARE(sent->serverTimeMs.value_or(0), qint64(1234));
    QCOMPARE(m_store->history(Conversation)->size(), 1);

    // An ack for a message this device never wrote stores nothing.
    const Result<Done> unknown = m_store->markSent(MessageId::generate().bytes(), 5, 1);
    QVERIFY2(unknown, whyNot(unknown).constData());
    QCOMPARE(m_store->history(Conversation)->size(), 1);
}

void TestClientStore::applyEventsStoresNewMessages_data()
{
    QTest::addColumn<QString>("sender");
    QTest::addColumn<MessageState>("expectedState");

    QTest::newRow("from the peer, into the inbox")
        << QStringLiteral("bob") << MessageState::Received;
    QTest::newRow("from another device of this account, as sent")
        << QStringLiteral("alice") << MessageState::Sent;
}

void TestClientStore::applyEventsStoresNewMessages()
{
    QFETCH(QString, sender);
    QFETCH(MessageState, expectedState);

    const QList<IncomingMessage> events
        = { eventFrom(sender, 1, 1, "one"), eventFrom(sender, 2, 2, "two") };
    const Result<AppliedEvents> applied = m_store->applyEvents(events, 2);
    QVERIFY2(applied, whyNot(applied).constData());
    QCOMPARE(applied->added.size(), 2);
    QCOMPARE(applied->confirmed.size(), 0);
    QCOMPARE(applied->duplicates, 0);

    const Result<QList<StoredMessage>> history = m_store->history(Conversation);
    QVERIFY2(history, whyNot(history).constData());
    QCOMPARE(history->size(), 2);
    for (int i = 0; i < 2; ++i) {
        const StoredMessage& stored = history->at(i);
        QCOMPARE(stored.messageId, events[i].messageId);
        QCOMPARE(stored.sender, sender);
        QCOMPARE(stored.body, events[i].body);
        QCOMPARE(stored.seq.value_or(0), quint64(events[i].seq));
        QCOMPARE(stored.serverTimeMs.value_or(0), qint64(events[i].serverTimeMs));
        QCOMPARE(stored.state, expectedState);
    }
    QVERIFY(m_store->outbox()->isEmpty());
}

void TestClientStore::applyEventsSkipsEventsAtOrBelowTheStoredOffset()
{
    const Result<AppliedEvents> first
        = m_store->applyEvents({ eventFrom(u"bob"_s, 1, 1, "one"), eventFrom(u"bob"_s, 2, 2, "two"),
                                   eventFrom(u"bob"_s, 3, 3, "three") },
            3);
    QVERIFY2(first, whyNot(first).constData());

    // Offsets 2 and 3 are applied already, whatever they carry now; only 4 is new.
    const Result<AppliedEvents> second = m_store->applyEvents(
        { eventFrom(u"bob"_s, 2, 20, "stale two"), eventFrom(u"bob"_s, 3, 30, "stale three"),
            eventFrom(u"bob"_s, 4, 4, "four") },
        4);
    QVERIFY2(second, whyNot(second).constData());
    QCOMPARE(second->added.size(), 1);
    QCOMPARE(second->duplicates, 2);

    QCOMPARE(bodiesOf(m_store->history(Conversation).value()),
        QByteArrayList({ "one", "two", "three", "four" }));
    QCOMPARE(m_store->eventOffset().value(), quint64(4));
}

void TestClientStore::applyEventsNeverStoresAMessageIdTwice_data()
{
    QTest::addColumn<int>("replayShift");

    // The server never repeats an offset, but a client can ask for the same events twice (a
    // restarted catch-up), and a rebuilt log could carry a message under a new offset.
    QTest::newRow("the same batch applied twice") << 0;
    QTest::newRow("the same messages again at later offsets") << 3;
}

void TestClientStore::applyEventsNeverStoresAMessageIdTwice()
{
    QFETCH(int, replayShift);

    const QList<IncomingMessage> batch = { eventFrom(u"bob"_s, 1, 1, "one"),
        eventFrom(u"alice"_s, 2, 2, "two"), eventFrom(u"bob"_s, 3, 3, "three") };
    const Result<AppliedEvents> first = m_store->applyEvents(batch, 3);
    QVERIFY2(first, whyNot(first).constData());
    QCOMPARE(first->added.size(), 3);

    QList<IncomingMessage> replay = batch;
    for (IncomingMessage& event : replay) {
        event.offset += static_cast<quint64>(replayShift);
    }
    const Result<AppliedEvents> second
        = m_store->applyEvents(replay, 3 + static_cast<quint64>(replayShift));
    QVERIFY2(second, whyNot(second).constData());
    QCOMPARE(second->added.size(), 0);
    QCOMPARE(second->confirmed.size(), 0);
    QCOMPARE(second->duplicates, 3);

    const Result<QList<StoredMessage>> history = m_store->history(Conversation);
    QCOMPARE(idsOf(history.value()),
        QByteArrayList({ batch[0].messageId, batch[1].messageId, batch[2].messageId }));
    QCOMPARE(m_store->eventOffset().value(), 3 + static_cast<quint64>(replayShift));
}

void TestClientStore::applyEventsSettlesAnOwnQueuedMessageWhenItsEventArrives()
{
    const Result<StoredMessage> queued = m_store->enqueue(Conversation, "mine");
    QVERIFY2(queued, whyNot(queued).constData());

    // The server committed the message but its ack was lost; the event log tells the same.
    IncomingMessage event = eventFrom(u"alice"_s, 1, 5, "mine");
    event.messageId = queued->messageId;
    const Result<AppliedEvents> applied = m_store->applyEvents({ event }, 1);
    QVERIFY2(applied, whyNot(applied).constData());
    QCOMPARE(applied->added.size(), 0);
    QCOMPARE(applied->confirmed.size(), 1);
    QCOMPARE(applied->confirmed.first().messageId, queued->messageId);

    const std::optional<StoredMessage> settled = m_store->message(queued->messageId);
    QVERIFY(settled);
    QCOMPARE(settled->state, MessageState::Sent);
    QCOMPARE(settled->seq.value_or(0), quint64(5));
    QCOMPARE(settled->serverTimeMs.value_or(0), qint64(event.serverTimeMs));
    QVERIFY(m_store->outbox()->isEmpty());
    QCOMPARE(m_store->history(Conversation)->size(), 1);
    QCOMPARE(m_store->eventOffset().value(), quint64(1));
}

void TestClientStore::applyEventsAdvancesTheOffsetAndNeverMovesItBack()
{
    QCOMPARE(m_store->eventOffset().value(), quint64(0));

    QVERIFY(m_store->applyEvents({ eventFrom(u"bob"_s, 1, 1, "one") }, 1));
    QCOMPARE(m_store->eventOffset().value(), quint64(1));

    // Events of a kind this version does not know arrive as an empty list; their offsets count.
    QVERIFY(m_store->applyEvents({}, 10));
    QCOMPARE(m_store->eventOffset().value(), quint64(10));

    QVERIFY(m_store->applyEvents({}, 4));
    QCOMPARE(m_store->eventOffset().value(), quint64(10));
}

void TestClientStore::historyIsBySeqThenQueuedInWriteOrder()
{
    QVERIFY(m_store->enqueue(Conversation, "queued first"));

    // Stored out of seq order, so that neither insertion order nor offsets can pass for seq.
    QVERIFY(m_store->applyEvents({ eventFrom(u"bob"_s, 1, 3, "seq 3") }, 1));
    QVERIFY(m_store->applyEvents(
        { eventFrom(u"bob"_s, 2, 1, "seq 1"), eventFrom(u"alice"_s, 3, 2, "seq 2") }, 3));
    QVERIFY(
        m_store->applyEvents({ eventFrom(u"carol"_s, 4, 1, "elsewhere", OtherConversation) }, 4));
    QVERIFY(m_store->enqueue(Conversation, "queued second"));

    const Result<QList<StoredMessage>> history = m_store->history(Conversation);
    QVERIFY2(history, whyNot(history).constData());
    QCOMPARE(bodiesOf(history.value()),
        QByteArrayList({ "seq 1", "seq 2", "seq 3", "queued first", "queued second" }));
}

void TestClientStore::reopeningKeepsEverything()
{
    const Result<StoredMessage> sent = m_store->enqueue(Conversation, "sent");
    const Result<StoredMessage> queued = m_store->enqueue(Conversation, "still queued");
    QVERIFY(sent && queued);
    QVERIFY(m_store->markSent(sent->messageId, 1, 100));
    QVERIFY(m_store->applyEvents({ eventFrom(u"bob"_s, 2, 2, "reply") }, 2));
    const QList<StoredMessage> before = m_store->history(Conversation).value();
    QCOMPARE(before.size(), 3);

    m_store.reset();
    Result<std::unique_ptr<ClientStore>> reopened = ClientStore::open(profileDir());
    QVERIFY2(reopened, whyNot(reopened).constData());
    m_store = std::move(reopened.value());

    const std::optional<AccountInfo> account = m_store->account();
    QVERIFY(account);
    QCOMPARE(account->userName, QStringLiteral("alice"));
    QCOMPARE(account->deviceId, quint64(7));
    QCOMPARE(account->deviceToken, QByteArrayLiteral("token"));
    QCOMPARE(m_store->eventOffset().value(), quint64(2));
    QCOMPARE(idsOf(m_store->outbox().value()), QByteArrayList({ queued->messageId }));

    const QList<StoredMessage> after = m_store->history(Conversation).value();
    QCOMPARE(idsOf(after), idsOf(before));
    QCOMPARE(bodiesOf(after), bodiesOf(before));
    for (qsizetype i = 0; i < after.size(); ++i) {
        QCOMPARE(after[i].seq.value_or(0), before[i].seq.value_or(0));
        QCOMPARE(after[i].state, before[i].state);
    }
}

void TestClientStore::aFileThatIsNotADatabaseIsRefusedAndLeftUntouched_data()
{
    QTest::addColumn<QByteArray>("content");

    QTest::newRow("a text file") << QByteArrayLiteral("These are my notes, not a database.\n");

    QByteArray noise(8192, Qt::Uninitialized);
    QRandomGenerator generator(42);
    generator.fillRange(reinterpret_cast<quint32*>(noise.data()), noise.size() / 4);
    QTest::newRow("random bytes") << noise;

    QByteArray damaged("SQLite format 3", 16);
    damaged.append(QByteArray(4080, '\xff'));
    QTest::newRow("a SQLite header followed by garbage") << damaged;

    // SQLite itself takes a one-byte file for an empty database (found by fuzz_stored_data).
    QTest::newRow("a single byte") << QByteArrayLiteral(":");
}

void TestClientStore::aFileThatIsNotADatabaseIsRefusedAndLeftUntouched()
{
    QFETCH(QByteArray, content);

    QFile file(foreignDatabasePath());
    QVERIFY(file.open(QIODevice::WriteOnly));
    QCOMPARE(file.write(content), content.size());
    file.close();

    const Result<std::unique_ptr<ClientStore>> opened = ClientStore::open(foreignDir());
    QVERIFY2(!opened, "a file that is not a database was opened as a store");
    QCOMPARE(opened.error().kind, QStringLiteral("damaged"));
    QVERIFY2(opened.error().message.contains(QStringLiteral("not a database")),
        qPrintable(opened.error().message));

    const Result<QByteArray> after = readFileBytes(foreignDatabasePath());
    QVERIFY2(after, whyNot(after).constData());
    QVERIFY2(after.value() == content, "the refused file was changed");
    QVERIFY(!QFile::exists(foreignDatabasePath() + u"-wal"));
}

void TestClientStore::anotherProgramsDatabaseIsRefusedAndLeftUntouched_data()
{
    QTest::addColumn<QStringList>("statements");
    QTest::addColumn<QString>("expectedReason");
    QTest::addColumn<QString>("expectedKind");

    const QString createTable = QStringLiteral("CREATE TABLE notes (id INTEGER, text TEXT)");
    const QString insertRow = QStringLiteral("INSERT INTO notes VALUES (1, 'keep me')");
    const QString foreignId = QStringLiteral("PRAGMA application_id = 1");

    QTest::newRow("another program's application id")
        << QStringList { createTable, insertRow, foreignId } << QStringLiteral("another program")
        << QStringLiteral("foreign");
    // Most programs never set an application id; their tables say the file is not empty.
    QTest::newRow("no application id but someone's tables")
        << QStringList { createTable, insertRow } << QStringLiteral("another program")
        << QStringLiteral("foreign");
    // 0x46525356 marks the Ferry server's database, which a client must not take for its own.
    QTest::newRow("the Ferry server's database")
        << QStringList { QStringLiteral("PRAGMA journal_mode = WAL"), createTable, insertRow,
               QStringLiteral("PRAGMA application_id = 1179800406"),
               QStringLiteral("PRAGMA user_version = 1") }
        << QStringLiteral("another program") << QStringLiteral("foreign");
    QTest::newRow("a newer Ferry's schema")
        << QStringList { QStringLiteral("PRAGMA journal_mode = WAL"), createTable, insertRow,
               QStringLiteral("PRAGMA application_id = 1179800153"),
               QStringLiteral("PRAGMA user_version = 99") }
        << QStringLiteral("newer Ferry") << QStringLiteral("too-new");
}

void TestClientStore::anotherProgramsDatabaseIsRefusedAndLeftUntouched()
{
    QFETCH(QStringList, statements);
    QFETCH(QString, expectedReason);
    QFETCH(QString, expectedKind);

    const QString written = writeForeignDatabase(foreignDatabasePath(), statements);
    QVERIFY2(written.isEmpty(), qPrintable(written));
    const Result<QByteArray> before = readFileBytes(foreignDatabasePath());
    QVERIFY2(before, whyNot(before).constData());

    const Result<std::unique_ptr<ClientStore>> opened = ClientStore::open(foreignDir());
    QVERIFY2(!opened, "another program's database was opened as a store");
    QCOMPARE(opened.error().kind, expectedKind);
    QVERIFY2(opened.error().message.contains(expectedReason), qPrintable(opened.error().message));
    QVERIFY2(opened.error().message.contains(QStringLiteral("untouched")),
        qPrintable(opened.error().message));

    const Result<QByteArray> after = readFileBytes(foreignDatabasePath());
    QVERIFY2(after, whyNot(after).constData());
    QVERIFY2(after.value() == before.value(), "the refused database was changed");
}

QTEST_GUILESS_MAIN(TestClientStore)
#include "tst_clientstore.moc"
