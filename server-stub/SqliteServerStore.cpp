#include "server-stub/SqliteServerStore.h"

#include "server-stub/WalCheckpointer.h"

#include "core/ConversationId.h"
#include "core/Logging.h"
#include "core/MessageId.h"
#include "core/SqlSupport.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSqlQuery>
#include <QUuid>
#include <QVariant>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <sqlite3.h>
#include <unistd.h>

namespace ferry::server {

namespace {

    // "FRSV": marks the file as a Ferry server database.
    constexpr qint64 ApplicationId = 0x46525356;
    /// SQLite's page cache; see open().
    constexpr int CacheKiB = 64 * 1024;
    /// The WAL's length at which the commit checkpoints itself: four checkpoint triggers, and
    /// at least 256 MiB, so that a thread that falls behind under overload has room to catch up.
    constexpr int CheckpointInCommitTriggers = 4;
    constexpr int MinCheckpointInCommitPages = 65536;

    enum class ConversationKind { Direct = 1, Group = 2 };
    enum class EntryKind { Message = 0, Membership = 1 };
    enum class EventKind { Message = 1, Membership = 2, Receipt = 3 };

    // Each entry upgrades the schema from its index to the next version; released entries are
    // never edited, a new version appends a step.
    const QList<QStringList> Migrations = {
        // 1: accounts, devices, direct conversations, messages, per-user event logs.
        {
            QStringLiteral("CREATE TABLE users ("
                           " id INTEGER PRIMARY KEY,"
                           " name TEXT NOT NULL UNIQUE,"
                           " password_hash TEXT NOT NULL,"
                           " last_offset INTEGER NOT NULL DEFAULT 0,"
                           " created_ms INTEGER NOT NULL)"),
            QStringLiteral("CREATE TABLE devices ("
                           " id INTEGER PRIMARY KEY,"
                           " user_id INTEGER NOT NULL REFERENCES users (id),"
                           " name TEXT NOT NULL,"
                           " token_hash BLOB NOT NULL,"
                           " created_ms INTEGER NOT NULL)"),
            QStringLiteral("CREATE TABLE conversations ("
                           " id TEXT PRIMARY KEY,"
                           " kind INTEGER NOT NULL,"
                           " last_seq INTEGER NOT NULL DEFAULT 0,"
                           " created_ms INTEGER NOT NULL) WITHOUT ROWID"),
            QStringLiteral("CREATE TABLE members ("
                           " conversation_id TEXT NOT NULL REFERENCES conversations (id),"
                           " user_id INTEGER NOT NULL REFERENCES users (id),"
                           " PRIMARY KEY (conversation_id, user_id)) WITHOUT ROWID"),
            QStringLiteral("CREATE TABLE messages ("
                           " id INTEGER PRIMARY KEY,"
                           " message_id BLOB NOT NULL UNIQUE,"
                           " conversation_id TEXT NOT NULL REFERENCES conversations (id),"
                           " seq INTEGER NOT NULL,"
                           " sender_user_id INTEGER NOT NULL REFERENCES users (id),"
                           " sender_device_id INTEGER NOT NULL,"
                           " body BLOB NOT NULL,"
                           " server_time_ms INTEGER NOT NULL,"
                           " UNIQUE (conversation_id, seq))"),
            QStringLiteral("CREATE TABLE events ("
                           " user_id INTEGER NOT NULL REFERENCES users (id),"
                           " log_offset INTEGER NOT NULL,"
                           " kind INTEGER NOT NULL,"
                           " message_ref INTEGER REFERENCES messages (id),"
                           " PRIMARY KEY (user_id, log_offset)) WITHOUT ROWID"),
        },
        // 2: groups (titles, membership changes as history entries), receipts, device removal.
        // The event log loses its foreign key, as an event now refers to a message or a receipt.
        {
            QStringLiteral("ALTER TABLE devices ADD COLUMN removed_ms INTEGER"),
            QStringLiteral("ALTER TABLE conversations ADD COLUMN title TEXT NOT NULL DEFAULT ''"),
            QStringLiteral("ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 0"),
            QStringLiteral("CREATE INDEX members_by_user ON members (user_id, conversation_id)"),
            QStringLiteral("CREATE TABLE receipts ("
                           " conversation_id TEXT NOT NULL REFERENCES conversations (id),"
                           " user_id INTEGER NOT NULL REFERENCES users (id),"
                           " delivered_seq INTEGER NOT NULL DEFAULT 0,"
                           " read_seq INTEGER NOT NULL DEFAULT 0,"
                           " PRIMARY KEY (conversation_id, user_id)) WITHOUT ROWID"),
            QStringLiteral("CREATE TABLE receipt_log ("
                           " id INTEGER PRIMARY KEY,"
                           " conversation_id TEXT NOT NULL,"
                           " user_id INTEGER NOT NULL,"
                           " device_id INTEGER NOT NULL,"
                           " kind INTEGER NOT NULL,"
                           " up_to_seq INTEGER NOT NULL,"
                           " created_ms INTEGER NOT NULL)"),
            QStringLiteral("CREATE TABLE events_v2 ("
                           " user_id INTEGER NOT NULL,"
                           " log_offset INTEGER NOT NULL,"
                           " kind INTEGER NOT NULL,"
                           " ref INTEGER NOT NULL,"
                           " PRIMARY KEY (user_id, log_offset)) WITHOUT ROWID"),
            QStringLiteral("INSERT INTO events_v2 (user_id, log_offset, kind, ref)"
                           " SELECT user_id, log_offset, kind, message_ref FROM events"),
            QStringLiteral("DROP TABLE events"),
            QStringLiteral("ALTER TABLE events_v2 RENAME TO events"),
        },
        // 3: a user's newest log offset and a conversation's newest seq are read from the end of
        // the log and of the messages' (conversation_id, seq) index; the counters kept beside
        // them cost a page written per message and go.
        {
            QStringLiteral("ALTER TABLE users DROP COLUMN last_offset"),
            QStringLiteral("ALTER TABLE conversations DROP COLUMN last_seq"),
        },
        // 4: new log entries are appended to log_tail, where a commit's entries share a page,
        // and moved into events in bulk later (LogTail). A row of log_tail that is also in
        // events has been moved and waits to be dropped.
        {
            QStringLiteral("CREATE TABLE log_tail ("
                           " id INTEGER PRIMARY KEY,"
                           " user_id INTEGER NOT NULL,"
                           " log_offset INTEGER NOT NULL,"
                           " kind INTEGER NOT NULL,"
                           " ref INTEGER NOT NULL)"),
        },
        // 5: the same for the conversations: a message's (conversation, seq) entry goes to
        // conversation_index in bulk later (SeqTail), so messages loses its UNIQUE
        // (conversation_id, seq), whose index SQLite wrote at once. The rows of messages from
        // conversation_index_state.waiting_from on that are not in conversation_index wait.
        {
            QStringLiteral("CREATE TABLE messages_v5 ("
                           " id INTEGER PRIMARY KEY,"
                           " message_id BLOB NOT NULL UNIQUE,"
                           " conversation_id TEXT NOT NULL REFERENCES conversations (id),"
                           " seq INTEGER NOT NULL,"
                           " sender_user_id INTEGER NOT NULL REFERENCES users (id),"
                           " sender_device_id INTEGER NOT NULL,"
                           " body BLOB NOT NULL,"
                           " server_time_ms INTEGER NOT NULL,"
                           " kind INTEGER NOT NULL DEFAULT 0)"),
            QStringLiteral("INSERT INTO messages_v5 (id, message_id, conversation_id, seq,"
                           " sender_user_id, sender_device_id, body, server_time_ms, kind)"
                           " SELECT id, message_id, conversation_id, seq, sender_user_id,"
                           " sender_device_id, body, server_time_ms, kind FROM messages"),
            QStringLiteral("DROP TABLE messages"),
            QStringLiteral("ALTER TABLE messages_v5 RENAME TO messages"),
            QStringLiteral("CREATE TABLE conversation_index ("
                           " conversation_id TEXT NOT NULL,"
                           " seq INTEGER NOT NULL,"
                           " message_ref INTEGER NOT NULL,"
                           " PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID"),
            QStringLiteral("INSERT INTO conversation_index (conversation_id, seq, message_ref)"
                           " SELECT conversation_id, seq, id FROM messages"),
            QStringLiteral("CREATE TABLE conversation_index_state ("
                           " waiting_from INTEGER NOT NULL)"),
            QStringLiteral("INSERT INTO conversation_index_state (waiting_from)"
                           " SELECT coalesce(max(id), 0) + 1 FROM messages"),
        },
    };

    QString actionName(MembershipAction action)
    {
        switch (action) {
        case MembershipAction::Created:
            return QStringLiteral("created");
        case MembershipAction::Added:
            return QStringLiteral("added");
        case MembershipAction::Removed:
            return QStringLiteral("removed");
        case MembershipAction::Left:
            return QStringLiteral("left");
        }
        return {};
    }

    // A membership change is kept as a small JSON document in the entry's body. It is written
    // and read only here; clients receive it as a typed MembershipEvent.
    QByteArray encodeMembership(const MembershipRecord& change)
    {
        QJsonObject object;
        object[u"action"] = actionName(change.action);
        object[u"actor"] = change.actor;
        object[u"subjects"] = QJsonArray::fromStringList(change.subjects);
        object[u"title"] = change.title;
        object[u"members"] = QJsonArray::fromStringList(change.members);
        return QJsonDocument(object).toJson(QJsonDocument::Compact);
    }

    MembershipRecord decodeMembership(const QByteArray& body)
    {
        const QJsonObject object = QJsonDocument::fromJson(body).object();
        MembershipRecord change;
        const QString action = object[u"action"].toString();
        for (auto candidate : { MembershipAction::Created, MembershipAction::Added,
                 MembershipAction::Removed, MembershipAction::Left }) {
            if (actionName(candidate) == action) {
                change.action = candidate;
            }
        }
        change.actor = object[u"actor"].toString();
        change.title = object[u"title"].toString();
        for (const QJsonValue& value : object[u"subjects"].toArray()) {
            change.subjects.append(value.toString());
        }
        for (const QJsonValue& value : object[u"members"].toArray()) {
            change.members.append(value.toString());
        }
        return change;
    }

    // Columns of a conversation entry, in the order readEntry expects them, for a query that
    // joins messages as m and the sender's user row as u.
    const QString EntryColumns = QStringLiteral(
        "m.message_id, m.conversation_id, m.seq, u.name, m.sender_device_id, m.body,"
        " m.server_time_ms, m.kind");

    ConversationEntry readEntry(const QSqlQuery& query, int first)
    {
        ConversationEntry entry;
        entry.messageId = query.value(first).toByteArray();
        entry.conversationId = query.value(first + 1).toString();
        entry.seq = query.value(first + 2).toULongLong();
        entry.sender = query.value(first + 3).toString();
        entry.senderDeviceId = query.value(first + 4).toULongLong();
        entry.body = query.value(first + 5).toByteArray();
        entry.serverTimeMs = query.value(first + 6).toLongLong();
        if (query.value(first + 7).toInt() == static_cast<int>(EntryKind::Membership)) {
            entry.membership = decodeMembership(entry.body);
            entry.body.clear();
        }
        return entry;
    }

    /// An event-log entry with what it refers to; `e` is a row of events or of log_tail.
    const QString LogEventSelect = u"SELECT e.log_offset, e.kind, " + EntryColumns
        + u", r.conversation_id, ru.name, r.device_id, r.kind, r.up_to_seq";
    const QString LogEventJoins = QStringLiteral(
        " LEFT JOIN messages m ON e.kind IN (1, 2) AND m.id = e.ref"
        " LEFT JOIN users u ON u.id = m.sender_user_id"
        " LEFT JOIN receipt_log r ON e.kind = 3 AND r.id = e.ref"
        " LEFT JOIN users ru ON ru.id = r.user_id");

    LogEvent readLogEvent(const QSqlQuery& query)
    {
        LogEvent event;
        event.offset = query.value(0).toULongLong();
        if (query.value(1).toInt() == int(EventKind::Receipt)) {
            ReceiptRecord receipt;
            receipt.conversationId = query.value(10).toString();
            receipt.userName = query.value(11).toString();
            receipt.deviceId = query.value(12).toULongLong();
            receipt.kind = static_cast<ReceiptKind>(query.value(13).toInt());
            receipt.upToSeq = query.value(14).toULongLong();
            event.receipt = receipt;
        } else {
            event.entry = readEntry(query, 2);
        }
        return event;
    }

    /// Runs a bound `SELECT max(...)` and returns its value; max() of no rows is NULL, read as 0.
    Result<qint64> readNewest(PreparedStatement& query, const QString& failure)
    {
        if (!query.runQuery() || !query.hasRow()) {
            return storageError(failure, query.error());
        }
        return query.int64At(0);
    }

    struct Folded {
        qsizetype entries = 0;
        qint64 newestRow = 0;
    };

    /// Takes from a tail (FoldQueue) the entries of the keys that have waited longest, a whole
    /// key at a time, while more than `lag` wait and fewer than `budget` have been taken, and
    /// hands each key's entries to `write`, which stores them in their index. `changed` is set
    /// before the tail changes: should a write fail, the transaction rolls back and the tail is
    /// read again from the file.
    template <typename Tail, typename Write>
    Result<Folded> foldOldest(Tail& tail, qsizetype lag, qsizetype budget, bool& changed,
        const Write& write)
    {
        Folded folded;
        while (tail.size() > lag && folded.entries < budget) {
            changed = true;
            const typename Tail::KeyEntries oldest = tail.takeOldest();
            if (Result<Done> written = write(oldest); !written) {
                return written.error();
            }
            folded.entries += oldest.entries.size();
            folded.newestRow = std::max(folded.newestRow, oldest.entries.last().row);
        }
        return folded;
    }

    /// Runs `sql`, which reads the rows of a tail that are not folded yet in the order written,
    /// and hands each row to `append`.
    template <typename Append>
    Result<Done> readTailRows(QSqlDatabase db, const QString& sql, const QString& failure,
        const Append& append)
    {
        QSqlQuery query(db);
        query.setForwardOnly(true);
        if (!query.exec(sql)) {
            return storageError(failure, query);
        }
        while (query.next()) {
            append(query);
        }
        return Done {};
    }

    Error notAMember()
    {
        return Error { StoreError::NotAMember,
            QStringLiteral("no such conversation, or you are not a member of it") };
    }

} // namespace

SqliteServerStore::SqliteServerStore(QString connectionName, QString path)
    : m_connectionName(std::move(connectionName))
    , m_path(std::move(path))
{
}

SqliteServerStore::~SqliteServerStore()
{
    // The checkpoint thread and prepared statements go before the connection they belong to.
    m_checkpointer.reset();
    if (sqlite3* connection = sqliteHandle(database())) {
        sqlite3_rollback_hook(connection, nullptr, nullptr);
    }
    m_preparedQueries.clear();
    m_statements.clear();
    {
        QSqlDatabase db = QSqlDatabase::database(m_connectionName, false);
        db.close();
    }
    QSqlDatabase::removeDatabase(m_connectionName);
}

QSqlDatabase SqliteServerStore::database() const
{
    return QSqlDatabase::database(m_connectionName, false);
}

QSqlQuery& SqliteServerStore::preparedQuery(const QString& sql)
{
    auto found = m_preparedQueries.find(sql);
    if (found == m_preparedQueries.end()) {
        QSqlQuery query(database());
        // A statement that does not prepare reports its error when it is executed.
        query.prepare(sql);
        found = m_preparedQueries.emplace(sql, std::move(query)).first;
    }
    return found->second;
}

PreparedStatement& SqliteServerStore::statement(const char* sql)
{
    std::unique_ptr<PreparedStatement>& kept = m_statements[sql];
    if (!kept) {
        // A statement that does not prepare reports its error when it is run.
        kept = std::make_unique<PreparedStatement>(database(), sql);
    }
    return *kept;
}

Result<std::unique_ptr<SqliteServerStore>> SqliteServerStore::open(
    const QString& dataDir, int checkpointPages, int logFoldLag)
{
    if (!QDir().mkpath(dataDir)) {
        return Error { StoreError::Storage, u"could not create the data folder " + dataDir };
    }
    // SQLite would open a database on a read-only file system and fail later, or say only
    // "unable to open database file" (it cannot create the WAL files there).
    if (::access(QFile::encodeName(dataDir).constData(), W_OK) != 0) {
        return Error { StoreError::Storage,
            u"the data folder " + dataDir + u" is not writable: "
                + QString::fromLocal8Bit(std::strerror(errno)) };
    }
    const QString path = QDir(dataDir).absoluteFilePath(QStringLiteral("server.db"));
    const QString connectionName
        = u"ferry-server-store-" + QUuid::createUuid().toString(QUuid::WithoutBraces);
    std::unique_ptr<SqliteServerStore> store(new SqliteServerStore(connectionName, path));

    Result<QSqlDatabase> db = openSqliteDatabase(path, connectionName, ApplicationId);
    if (!db) {
        return db.error();
    }
    Q_ASSERT(Migrations.size() == SchemaVersion);
    if (auto migrated = migrateSqliteSchema(db.value(), Migrations, ApplicationId); !migrated) {
        return migrated.error();
    }
    // A group message adds an entry to the log of every member, and each member's entries in
    // events sit on a leaf page of their own: a fold (LogTail) changes about one page per member
    // (a thousand for a group of 1,000); before log_tail, every commit did. SQLite's default
    // cache of 2 MiB could not hold them, so every commit read them back from the file. Hence
    // the larger cache. The checkpoints run on a thread of their own: run by SQLite inside the
    // commit that crossed the threshold, one held every message behind that commit for 20-35 ms
    // (WalCheckpointer.h). They start every 1,024 pages of log (4 MiB): since the tails, a
    // message writes about a quarter of a page, and a checkpoint of 64 MiB (the earlier
    // setting, which wrote hot pages to the database less often) competed with the commits for
    // the disk and the cores long enough to double p99 at 30,000 messages/s (docs/design.md,
    // "Shorter checkpoints").
    QSqlQuery settings(db.value());
    settings.exec(QStringLiteral("PRAGMA cache_size = -%1").arg(CacheKiB));
    sqlite3* connection = sqliteHandle(db.value());
    if (!connection) {
        return Error { StoreError::Storage, u"no SQLite connection under the driver for " + path };
    }
    store->m_checkpointer = std::make_unique<WalCheckpointer>(
        connection, path, checkpointPages,
        std::max(CheckpointInCommitTriggers * checkpointPages, MinCheckpointInCommitPages));
    store->m_logFoldLag = logFoldLag;
    sqlite3_rollback_hook(connection, &SqliteServerStore::afterRollback, store.get());
    if (Result<Done> loaded = store->reloadTails(); !loaded) {
        return loaded.error();
    }
    qCInfo(lcServerDb) << "Opened" << path << "at schema" << SchemaVersion;
    return store;
}

qint64 SqliteServerStore::cacheBytes()
{
    return sqliteCacheBytes(database());
}

qint64 SqliteServerStore::cacheLimitBytes() const
{
    return qint64(CacheKiB) * 1024;
}

StoreLogStats SqliteServerStore::logStats() const
{
    StoreLogStats stats;
    stats.logPages = m_checkpointer->logPagesAtLastCommit();
    stats.checkpointsOnThread = qint64(m_checkpointer->checkpointsDone());
    stats.checkpointsFinishedInCommit = qint64(m_checkpointer->finishingCheckpoints());
    stats.checkpointsAtLimit = qint64(m_checkpointer->inlineCheckpoints());
    stats.waitingLogEntries = qint64(m_logTail.size());
    stats.waitingIndexEntries = qint64(m_seqTail.size());
    return stats;
}

Result<Done> SqliteServerStore::ping()
{
    QSqlQuery query(database());
    if (!query.exec(QStringLiteral("SELECT 1")) || !query.next()) {
        return storageError(QStringLiteral("the database does not answer"), query);
    }
    return Done {};
}

// Accounts and devices -----------------------------------------------------------------------

Result<UserRecord> SqliteServerStore::createUser(
    const QString& name, const QByteArray& passwordHash)
{
    QSqlQuery query(database());
    query.prepare(QStringLiteral("INSERT INTO users (name, password_hash, created_ms)"
                                 " VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING"));
    query.addBindValue(name);
    query.addBindValue(QString::fromLatin1(passwordHash));
    query.addBindValue(QDateTime::currentMSecsSinceEpoch());
    if (!query.exec()) {
        return storageError(QStringLiteral("could not create a user"), query);
    }
    if (query.numRowsAffected() != 1) {
        return Error { StoreError::NameTaken, u"the name " + name + u" is taken" };
    }
    return UserRecord { query.lastInsertId().toLongLong(), name, passwordHash };
}

std::optional<UserRecord> SqliteServerStore::findUser(const QString& name)
{
    QSqlQuery query(database());
    query.prepare(QStringLiteral("SELECT id, password_hash FROM users WHERE name = ?"));
    query.addBindValue(name);
    if (!query.exec() || !query.next()) {
        return std::nullopt;
    }
    return UserRecord { query.value(0).toLongLong(), name, query.value(1).toString().toLatin1() };
}

Result<DeviceRecord> SqliteServerStore::createDevice(
    qint64 userId, const QString& name, const QByteArray& tokenHash)
{
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    QSqlQuery query(database());
    query.prepare(QStringLiteral(
        "INSERT INTO devices (user_id, name, token_hash, created_ms) VALUES (?, ?, ?, ?)"));
    query.addBindValue(userId);
    query.addBindValue(name);
    query.addBindValue(tokenHash);
    query.addBindValue(now);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not create a device"), query);
    }
    DeviceRecord device;
    device.id = query.lastInsertId().toULongLong();
    device.userId = userId;
    device.name = name;
    device.tokenHash = tokenHash;
    device.createdMs = now;
    return device;
}

std::optional<DeviceRecord> SqliteServerStore::findDevice(quint64 deviceId)
{
    QSqlQuery query(database());
    query.prepare(QStringLiteral(
        "SELECT d.user_id, u.name, d.name, d.token_hash, d.created_ms, d.removed_ms"
        " FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = ?"));
    query.addBindValue(static_cast<qint64>(deviceId));
    if (!query.exec() || !query.next()) {
        return std::nullopt;
    }
    DeviceRecord device;
    device.id = deviceId;
    device.userId = query.value(0).toLongLong();
    device.userName = query.value(1).toString();
    device.name = query.value(2).toString();
    device.tokenHash = query.value(3).toByteArray();
    device.createdMs = query.value(4).toLongLong();
    device.removed = !query.isNull(5);
    return device;
}

Result<QList<DeviceRecord>> SqliteServerStore::listDevices(qint64 userId)
{
    QSqlQuery query(database());
    query.prepare(QStringLiteral("SELECT id, name, created_ms FROM devices"
                                 " WHERE user_id = ? AND removed_ms IS NULL ORDER BY id"));
    query.addBindValue(userId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not list devices"), query);
    }
    QList<DeviceRecord> devices;
    while (query.next()) {
        DeviceRecord device;
        device.id = query.value(0).toULongLong();
        device.userId = userId;
        device.name = query.value(1).toString();
        device.createdMs = query.value(2).toLongLong();
        devices.append(device);
    }
    return devices;
}

Result<Done> SqliteServerStore::renameDevice(qint64 userId, quint64 deviceId, const QString& name)
{
    QSqlQuery query(database());
    query.prepare(QStringLiteral("UPDATE devices SET name = ?"
                                 " WHERE id = ? AND user_id = ? AND removed_ms IS NULL"));
    query.addBindValue(name);
    query.addBindValue(static_cast<qint64>(deviceId));
    query.addBindValue(userId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not rename a device"), query);
    }
    if (query.numRowsAffected() != 1) {
        return Error { StoreError::NotFound, QStringLiteral("your account has no such device") };
    }
    return Done {};
}

Result<Done> SqliteServerStore::removeDevice(qint64 userId, quint64 deviceId)
{
    QSqlQuery query(database());
    // The token hash goes too: nothing of the device's credentials outlives its removal.
    query.prepare(QStringLiteral("UPDATE devices SET removed_ms = ?, token_hash = x''"
                                 " WHERE id = ? AND user_id = ? AND removed_ms IS NULL"));
    query.addBindValue(QDateTime::currentMSecsSinceEpoch());
    query.addBindValue(static_cast<qint64>(deviceId));
    query.addBindValue(userId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not remove a device"), query);
    }
    if (query.numRowsAffected() != 1) {
        return Error { StoreError::NotFound, QStringLiteral("your account has no such device") };
    }
    return Done {};
}

Result<QList<quint64>> SqliteServerStore::removedDeviceIds()
{
    QSqlQuery query(database());
    if (!query.exec(QStringLiteral("SELECT id FROM devices WHERE removed_ms IS NOT NULL"))) {
        return storageError(QStringLiteral("could not list removed devices"), query);
    }
    QList<quint64> ids;
    while (query.next()) {
        ids.append(query.value(0).toULongLong());
    }
    return ids;
}

// Messages and the event log -----------------------------------------------------------------

Result<StoredMessageAck> SqliteServerStore::appendMessage(const NewMessage& message)
{
    return appendMessages({ message }).first();
}

QList<Result<StoredMessageAck>> SqliteServerStore::appendMessages(const QList<NewMessage>& messages)
{
    QList<Result<StoredMessageAck>> results;
    results.reserve(messages.size());
    beforeWriteTransaction();
    WriteTransaction transaction(database());
    if (!transaction.isOpen()) {
        const Error failed
            = storageError(QStringLiteral("could not start storing messages"), transaction.error());
        for (qsizetype i = 0; i < messages.size(); ++i) {
            results.append(failed);
        }
        return results;
    }

    // A message is refused (not a member, an id used by another message) by what it reads,
    // before it writes anything, so a refused message needs no undoing and the batch goes on
    // without it. A write that fails (a full disk, an I/O error) leaves its message half
    // written, and SQLite may have rolled the whole transaction back by itself: the batch fails
    // as a whole and none of it is stored. A savepoint per message would let the batch carry on
    // past such a failure, but every message would pay for it (three statements, and a copy of
    // each page it touches) for the sake of a failure that stops the next batches as well.
    const auto failAll = [&](const Error& cause) {
        const Error lost { StoreError::Storage,
            u"the transaction of these messages was rolled back: " + cause.message };
        results.clear();
        for (qsizetype i = 0; i < messages.size(); ++i) {
            results.append(lost);
        }
        return results;
    };
    BatchLogs logs;
    qsizetype newMessages = 0;
    for (const NewMessage& message : messages) {
        bool wrote = false;
        Result<StoredMessageAck> stored = storeMessage(message, logs, wrote);
        if (!stored && wrote) {
            return failAll(stored.error());
        }
        if (stored && !stored->alreadyStored) {
            ++newMessages;
        }
        results.append(std::move(stored));
    }

    // The log entries of all the batch's messages, and the conversations' index; should that
    // fail, none of them is stored (the transaction rolls back when it goes out of scope).
    if (Result<Done> written = writeLogs(logs); !written) {
        return failAll(written.error());
    }
    if (Result<Done> folded = foldSeqTail(newMessages); !folded) {
        return failAll(folded.error());
    }
    if (!transaction.commit()) {
        const Error failed
            = storageError(QStringLiteral("could not commit messages"), transaction.error());
        for (Result<StoredMessageAck>& result : results) {
            if (result) {
                result = failed;
            }
        }
        return results;
    }
    return results;
}

Result<StoredMessageAck> SqliteServerStore::storeMessage(
    const NewMessage& message, BatchLogs& logs, bool& wrote)
{
    // A resend of a stored message is answered from what was stored the first time. Nearly
    // every message is new: the cheap check comes first, the full read only for a resend.
    PreparedStatement& seen = statement("SELECT 1 FROM messages WHERE message_id = ?");
    seen.bindBlob(1, message.messageId);
    if (!seen.runQuery()) {
        return storageError(QStringLiteral("could not look up a message id"), seen.error());
    }
    if (seen.hasRow()) {
        return storedAck(message);
    }
    const QByteArray conversationId = message.conversationId.toUtf8();
    const qint64 now = QDateTime::currentMSecsSinceEpoch();

    // Membership is checked on every send, not only when the conversation is created, from the
    // member ids alone (names are not needed here). A conversation without members does not
    // exist yet: a direct one comes into being with its first message; anything else is refused.
    QList<qint64> memberIds;
    PreparedStatement& members = statement("SELECT user_id FROM members WHERE conversation_id = ?");
    members.bindText(1, conversationId);
    if (!members.runQueryColumn(&memberIds)) {
        return storageError(QStringLiteral("could not read the members"), members.error());
    }
    if (memberIds.isEmpty()) {
        // Refuses a sender who is not one of the two before it writes.
        Result<QList<qint64>> created = createDirectConversation(message, now, wrote);
        if (!created) {
            return created.error();
        }
        memberIds = std::move(created.value());
    }
    if (!memberIds.contains(message.senderUserId)) {
        return notAMember();
    }

    Result<qint64> newest = newestSeq(conversationId);
    if (!newest) {
        return newest.error();
    }
    const quint64 seq = static_cast<quint64>(newest.value()) + 1;

    wrote = true;
    PreparedStatement& insert = statement(
        "INSERT INTO messages (message_id, conversation_id, seq, sender_user_id,"
        " sender_device_id, body, server_time_ms, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    insert.bindBlob(1, message.messageId);
    insert.bindText(2, conversationId);
    insert.bindInt64(3, static_cast<qint64>(seq));
    insert.bindInt64(4, message.senderUserId);
    insert.bindInt64(5, static_cast<qint64>(message.senderDeviceId));
    insert.bindBlob(6, message.body);
    insert.bindInt64(7, now);
    insert.bindInt64(8, static_cast<int>(EntryKind::Message));
    if (!insert.run()) {
        return storageError(QStringLiteral("could not store a message"), insert.error());
    }
    const qint64 ref = insert.lastInsertRowId();
    m_memoryChanged = true;
    m_seqTail.append(conversationId, SeqTailEntry { ref, static_cast<qint64>(seq) });
    rememberNewestSeq(conversationId, static_cast<qint64>(seq));
    Result<QList<quint64>> offsets = reserveOffsets(logs, memberIds, ref);
    if (!offsets) {
        return offsets.error();
    }

    StoredMessageAck ack;
    ack.seq = seq;
    ack.serverTimeMs = now;
    ack.notifiedUserIds = std::move(memberIds);
    ack.offsets = std::move(offsets.value());
    return ack;
}

Result<StoredMessageAck> SqliteServerStore::storedAck(const NewMessage& message)
{
    QSqlQuery& lookup
        = preparedQuery(QStringLiteral("SELECT conversation_id, seq, sender_user_id,"
                                       " server_time_ms FROM messages WHERE message_id = ?"));
    lookup.addBindValue(message.messageId);
    if (!lookup.exec()) {
        return storageError(QStringLiteral("could not look up a message id"), lookup);
    }
    if (lookup.next()) {
        const bool sameMessage = lookup.value(0).toString() == message.conversationId
            && lookup.value(2).toLongLong() == message.senderUserId;
        StoredMessageAck ack;
        ack.seq = lookup.value(1).toULongLong();
        ack.serverTimeMs = lookup.value(3).toLongLong();
        ack.alreadyStored = true;
        lookup.finish();
        if (!sameMessage) {
            return Error { StoreError::IdConflict,
                QStringLiteral("this message id is already used by another message") };
        }
        return ack;
    }
    lookup.finish();
    return storageError(QStringLiteral("a stored message id could not be read back"), lookup);
}

Result<QList<qint64>> SqliteServerStore::createDirectConversation(
    const NewMessage& message, qint64 now, bool& wrote)
{
    // A direct conversation comes into being with its first message.
    const QStringList names = directConversationMembers(message.conversationId);
    if (!names.contains(message.senderName)) {
        return notAMember();
    }
    Result<QList<qint64>> memberIds = userIds(names);
    if (!memberIds) {
        return memberIds.error();
    }
    wrote = true;
    QSqlQuery query(database());
    query.prepare(
        QStringLiteral("INSERT INTO conversations (id, kind, created_ms) VALUES (?, ?, ?)"));
    query.addBindValue(message.conversationId);
    query.addBindValue(static_cast<int>(ConversationKind::Direct));
    query.addBindValue(now);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not create a conversation"), query);
    }
    query.prepare(
        QStringLiteral("INSERT OR IGNORE INTO members (conversation_id, user_id) VALUES (?, ?)"));
    for (const qint64 memberId : std::as_const(memberIds.value())) {
        query.addBindValue(message.conversationId);
        query.addBindValue(memberId);
        if (!query.exec()) {
            return storageError(QStringLiteral("could not add a member"), query);
        }
    }
    return memberIds;
}

Result<QList<quint64>> SqliteServerStore::reserveOffsets(
    BatchLogs& logs, const QList<qint64>& memberIds, qint64 ref)
{
    QList<quint64> offsets;
    offsets.reserve(memberIds.size());
    for (const qint64 userId : memberIds) {
        auto last = logs.lastOffsets.find(userId);
        if (last == logs.lastOffsets.end()) {
            Result<qint64> newest = newestLogOffset(userId);
            if (!newest) {
                return newest.error();
            }
            last = logs.lastOffsets.insert(userId, newest.value());
        }
        const qint64 offset = ++last.value();
        logs.entries.append(BatchLogs::Entry { userId, offset, ref });
        offsets.append(static_cast<quint64>(offset));
    }
    return offsets;
}

Result<Done> SqliteServerStore::writeLogs(BatchLogs& logs)
{
    // In the order handed out, which is each user's offset order.
    for (const BatchLogs::Entry& entry : std::as_const(logs.entries)) {
        if (Result<Done> appended
            = appendLogEntry(entry.userId, entry.offset, int(EventKind::Message), entry.ref);
            !appended) {
            return appended;
        }
    }
    return foldLogTail(logs.entries.size());
}

Result<Done> SqliteServerStore::appendLogEntry(qint64 userId, qint64 offset, int kind, qint64 ref)
{
    PreparedStatement& append = statement(
        "INSERT INTO log_tail (user_id, log_offset, kind, ref) VALUES (?, ?, ?, ?)");
    append.bindInt64(1, userId);
    append.bindInt64(2, offset);
    append.bindInt64(3, kind);
    append.bindInt64(4, ref);
    if (!append.run()) {
        return storageError(QStringLiteral("could not append to an event log"), append.error());
    }
    m_memoryChanged = true;
    m_logTail.append(userId, LogTailEntry { append.lastInsertRowId(), offset, kind, ref });
    return Done {};
}

Result<Done> SqliteServerStore::foldLogTail(qsizetype appended)
{
    // Folding twice what was added drains a tail that grew past the lag (a lower lag at start).
    PreparedStatement& insert
        = statement("INSERT INTO events (user_id, log_offset, kind, ref) VALUES (?, ?, ?, ?)");
    const Result<Folded> folded = foldOldest(m_logTail, m_logFoldLag, 2 * appended,
        m_memoryChanged, [&insert](const LogTail::KeyEntries& oldest) -> Result<Done> {
            for (const LogTailEntry& entry : oldest.entries) {
                insert.bindInt64(1, oldest.key);
                insert.bindInt64(2, entry.offset);
                insert.bindInt64(3, entry.kind);
                insert.bindInt64(4, entry.ref);
                if (!insert.run()) {
                    return storageError(
                        QStringLiteral("could not move log entries into the log"), insert.error());
                }
            }
            return Done {};
        });
    if (!folded) {
        return folded.error();
    }
    if (folded->entries == 0) {
        return Done {};
    }
    // Every row before the oldest entry still waiting has been folded.
    PreparedStatement& drop = statement("DELETE FROM log_tail WHERE id < ?");
    drop.bindInt64(1, m_logTail.oldestRow().value_or(std::numeric_limits<qint64>::max()));
    if (!drop.run()) {
        return storageError(QStringLiteral("could not drop moved log entries"), drop.error());
    }
    return Done {};
}

Result<Done> SqliteServerStore::reloadLogTail()
{
    m_logTail.clear();
    // In the order written, which is each user's offset order.
    Result<Done> read = readTailRows(database(),
        QStringLiteral(
            "SELECT t.id, t.user_id, t.log_offset, t.kind, t.ref FROM log_tail t"
            " WHERE NOT EXISTS (SELECT 1 FROM events e"
            "                   WHERE e.user_id = t.user_id AND e.log_offset = t.log_offset)"
            " ORDER BY t.id"),
        QStringLiteral("could not read the newest log entries"), [this](const QSqlQuery& row) {
            m_logTail.append(row.value(1).toLongLong(),
                LogTailEntry { row.value(0).toLongLong(), row.value(2).toLongLong(),
                    row.value(3).toInt(), row.value(4).toLongLong() });
        });
    qCDebug(lcServerDb) << "Log entries not yet folded:" << m_logTail.size();
    return read;
}

Result<Done> SqliteServerStore::foldSeqTail(qsizetype appended)
{
    // As foldLogTail(), except that the waiting entries are the message rows themselves: what
    // moves on is the mark from which messages may still be waiting.
    PreparedStatement& insert = statement(
        "INSERT INTO conversation_index (conversation_id, seq, message_ref) VALUES (?, ?, ?)");
    const Result<Folded> folded = foldOldest(m_seqTail, m_logFoldLag, 2 * appended,
        m_memoryChanged, [&insert](const SeqTail::KeyEntries& oldest) -> Result<Done> {
            for (const SeqTailEntry& entry : oldest.entries) {
                insert.bindText(1, oldest.key);
                insert.bindInt64(2, entry.seq);
                insert.bindInt64(3, entry.row);
                if (!insert.run()) {
                    return storageError(
                        QStringLiteral("could not move messages into the conversations' index"),
                        insert.error());
                }
            }
            return Done {};
        });
    if (!folded) {
        return folded.error();
    }
    if (folded->entries == 0) {
        return Done {};
    }
    // With nothing left waiting, every message so far has been folded, the newest among them.
    PreparedStatement& mark = statement("UPDATE conversation_index_state SET waiting_from = ?");
    mark.bindInt64(1, m_seqTail.oldestRow().value_or(folded->newestRow + 1));
    if (!mark.run()) {
        return storageError(
            QStringLiteral("could not note where waiting messages start"), mark.error());
    }
    return Done {};
}

Result<Done> SqliteServerStore::reloadSeqTail()
{
    m_seqTail.clear();
    // In the order stored, which is each conversation's seq order.
    Result<Done> read = readTailRows(database(),
        QStringLiteral(
            "SELECT m.id, m.conversation_id, m.seq FROM messages m"
            " WHERE m.id >= (SELECT waiting_from FROM conversation_index_state)"
            " AND NOT EXISTS (SELECT 1 FROM conversation_index c"
            "                 WHERE c.conversation_id = m.conversation_id AND c.seq = m.seq)"
            " ORDER BY m.id"),
        QStringLiteral("could not read the newest messages"), [this](const QSqlQuery& row) {
            m_seqTail.append(row.value(1).toString().toUtf8(),
                SeqTailEntry { row.value(0).toLongLong(), row.value(2).toLongLong() });
        });
    qCDebug(lcServerDb) << "Messages not yet in the conversations' index:" << m_seqTail.size();
    return read;
}

Result<Done> SqliteServerStore::reloadTails()
{
    m_newestSeqs.clear();
    if (Result<Done> loaded = reloadLogTail(); !loaded) {
        return loaded;
    }
    if (Result<Done> loaded = reloadSeqTail(); !loaded) {
        return loaded;
    }
    m_memoryStale = false;
    m_memoryChanged = false;
    return Done {};
}

Result<Done> SqliteServerStore::ensureMemory()
{
    if (!m_memoryStale) {
        return Done {};
    }
    qCInfo(lcServerDb) << "A transaction that wrote log entries or messages rolled back;"
                          " reading them again";
    return reloadTails();
}

void SqliteServerStore::beforeWriteTransaction()
{
    m_checkpointer->finishBeforeWrite();
    // The transaction before this one committed, or rolled back and afterRollback() marked the
    // memory stale: either way, what the next one changes starts here.
    m_memoryChanged = false;
}

void SqliteServerStore::afterRollback(void* store)
{
    auto* self = static_cast<SqliteServerStore*>(store);
    if (self->m_memoryChanged) {
        self->m_memoryStale = true;
        self->m_memoryChanged = false;
    }
}

Result<QList<quint64>> SqliteServerStore::appendEvents(
    const QList<qint64>& userIds, int kind, qint64 ref)
{
    QList<quint64> offsets;
    offsets.reserve(userIds.size());
    for (const qint64 userId : userIds) {
        Result<qint64> newest = newestLogOffset(userId);
        if (!newest) {
            return newest.error();
        }
        const qint64 offset = newest.value() + 1;
        if (Result<Done> appended = appendLogEntry(userId, offset, kind, ref); !appended) {
            return appended.error();
        }
        offsets.append(static_cast<quint64>(offset));
    }
    if (Result<Done> folded = foldLogTail(userIds.size()); !folded) {
        return folded.error();
    }
    return offsets;
}

Result<EventPage> SqliteServerStore::eventsAfter(qint64 userId, quint64 afterOffset, int limit)
{
    if (Result<Done> ready = ensureMemory(); !ready) {
        return ready.error();
    }
    // The older part of the log is in events, its newest entries are in log_tail (LogTail);
    // every offset in the tail is above every offset of the same user in events.
    QSqlQuery query(database());
    query.setForwardOnly(true);
    // One row more than asked tells whether the page reaches the end of that part.
    query.prepare(LogEventSelect
        + u" FROM events e" + LogEventJoins
        + u" WHERE e.user_id = ? AND e.log_offset > ? ORDER BY e.log_offset LIMIT ?");
    query.addBindValue(userId);
    query.addBindValue(static_cast<qint64>(afterOffset));
    query.addBindValue(limit + 1);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not read an event log"), query);
    }

    EventPage page;
    while (query.next()) {
        if (page.events.size() == limit) {
            return page;
        }
        page.events.append(readLogEvent(query));
    }
    if (const QList<LogTailEntry>* tail = m_logTail.entriesOf(userId)) {
        QSqlQuery& newest = preparedQuery(
            LogEventSelect + u" FROM log_tail e" + LogEventJoins + u" WHERE e.id = ?");
        for (const LogTailEntry& entry : *tail) {
            if (entry.offset <= static_cast<qint64>(afterOffset)) {
                continue;
            }
            if (page.events.size() == limit) {
                return page;
            }
            newest.addBindValue(entry.row);
            if (!newest.exec() || !newest.next()) {
                const Error failed = storageError(
                    QStringLiteral("could not read an event log's newest entry"), newest);
                newest.finish();
                return failed;
            }
            page.events.append(readLogEvent(newest));
            newest.finish();
        }
    }
    page.caughtUp = true;
    return page;
}

Result<quint64> SqliteServerStore::lastOffset(qint64 userId)
{
    Result<qint64> newest = newestLogOffset(userId);
    if (!newest) {
        return newest.error();
    }
    return static_cast<quint64>(newest.value());
}

Result<qint64> SqliteServerStore::newestLogOffset(qint64 userId)
{
    if (Result<Done> ready = ensureMemory(); !ready) {
        return ready.error();
    }
    if (const QList<LogTailEntry>* inTail = m_logTail.entriesOf(userId)) {
        return inTail->last().offset;
    }
    // Nothing waits in the tail: the newest entry is the end of the user's range in events; a
    // counter in the user's row cost one more page written per user and commit (docs/design.md,
    // "Counters read from the end"). max() of no rows is NULL, read as 0: an empty log.
    PreparedStatement& newest = statement("SELECT max(log_offset) FROM events WHERE user_id = ?");
    newest.bindInt64(1, userId);
    return readNewest(newest, QStringLiteral("could not read an event log's offset"));
}

Result<qint64> SqliteServerStore::newestSeq(const QByteArray& conversationId)
{
    if (Result<Done> ready = ensureMemory(); !ready) {
        return ready.error();
    }
    if (const auto cached = m_newestSeqs.constFind(conversationId); cached != m_newestSeqs.cend()) {
        return cached.value();
    }
    // As for the log: the newest message waiting, else the end of the conversation's range in
    // conversation_index. 0 for a conversation without messages.
    if (const QList<SeqTailEntry>* waiting = m_seqTail.entriesOf(conversationId)) {
        rememberNewestSeq(conversationId, waiting->last().seq);
        return waiting->last().seq;
    }
    PreparedStatement& newest
        = statement("SELECT max(seq) FROM conversation_index WHERE conversation_id = ?");
    newest.bindText(1, conversationId);
    Result<qint64> read = readNewest(newest, QStringLiteral("could not read a sequence number"));
    if (read) {
        rememberNewestSeq(conversationId, read.value());
    }
    return read;
}

void SqliteServerStore::rememberNewestSeq(const QByteArray& conversationId, qint64 seq)
{
    // A bound on memory: most sends go to conversations that were busy a moment ago, and
    // reading a forgotten one back costs one seek.
    if (m_newestSeqs.size() >= MaxRememberedSeqs && !m_newestSeqs.contains(conversationId)) {
        m_newestSeqs.clear();
    }
    m_newestSeqs.insert(conversationId, seq);
}

// Conversations ------------------------------------------------------------------------------

Result<ConversationRecord> SqliteServerStore::readConversation(const QString& conversationId)
{
    QSqlQuery& header
        = preparedQuery(QStringLiteral("SELECT title FROM conversations WHERE id = ?"));
    header.addBindValue(conversationId);
    if (!header.exec()) {
        return storageError(QStringLiteral("could not look up a conversation"), header);
    }
    if (!header.next()) {
        header.finish();
        return Error { StoreError::NotFound, QStringLiteral("no such conversation") };
    }
    ConversationRecord conversation;
    conversation.id = conversationId;
    conversation.title = header.value(0).toString();
    header.finish();
    Result<qint64> newest = newestSeq(conversationId.toUtf8());
    if (!newest) {
        return newest.error();
    }
    conversation.lastSeq = static_cast<quint64>(newest.value());

    QSqlQuery& members = preparedQuery(
        QStringLiteral("SELECT u.name, u.id FROM members m JOIN users u ON u.id = m.user_id"
                       " WHERE m.conversation_id = ? ORDER BY u.name"));
    members.addBindValue(conversationId);
    if (!members.exec()) {
        return storageError(QStringLiteral("could not read the members"), members);
    }
    while (members.next()) {
        conversation.members.append(members.value(0).toString());
        conversation.memberIds.append(members.value(1).toLongLong());
    }
    members.finish();
    return conversation;
}

QString SqliteServerStore::userName(qint64 userId)
{
    QSqlQuery query(database());
    query.prepare(QStringLiteral("SELECT name FROM users WHERE id = ?"));
    query.addBindValue(userId);
    return query.exec() && query.next() ? query.value(0).toString() : QString();
}

Result<QList<qint64>> SqliteServerStore::userIds(const QStringList& names)
{
    QList<qint64> ids;
    for (const QString& name : names) {
        const std::optional<UserRecord> user = findUser(name);
        if (!user) {
            return Error { StoreError::UnknownRecipient, u"there is no user " + name };
        }
        ids.append(user->id);
    }
    return ids;
}

Result<Done> SqliteServerStore::recordMembershipChange(const QString& conversationId,
    qint64 actorUserId, const MembershipRecord& change, const QList<qint64>& userIds)
{
    Result<qint64> newest = newestSeq(conversationId.toUtf8());
    if (!newest) {
        return newest.error();
    }
    const qint64 seq = newest.value() + 1;

    QSqlQuery query(database());
    query.prepare(QStringLiteral(
        "INSERT INTO messages (message_id, conversation_id, seq, sender_user_id,"
        " sender_device_id, body, server_time_ms, kind) VALUES (?, ?, ?, ?, 0, ?, ?, ?)"));
    query.addBindValue(MessageId::generate().bytes());
    query.addBindValue(conversationId);
    query.addBindValue(seq);
    query.addBindValue(actorUserId);
    query.addBindValue(encodeMembership(change));
    query.addBindValue(QDateTime::currentMSecsSinceEpoch());
    query.addBindValue(static_cast<int>(EntryKind::Membership));
    if (!query.exec()) {
        return storageError(QStringLiteral("could not record a membership change"), query);
    }
    const qint64 ref = query.lastInsertId().toLongLong();
    m_memoryChanged = true;
    m_seqTail.append(conversationId.toUtf8(), SeqTailEntry { ref, seq });
    rememberNewestSeq(conversationId.toUtf8(), seq);
    Result<QList<quint64>> appended = appendEvents(userIds, int(EventKind::Membership), ref);
    if (!appended) {
        return appended.error();
    }
    return foldSeqTail(1);
}

Result<ChangeResult> SqliteServerStore::commitMembershipChange(WriteTransaction& transaction,
    const QString& conversationId, qint64 actorUserId, const MembershipRecord& change,
    const QList<qint64>& notifiedUserIds)
{
    if (auto recorded
        = recordMembershipChange(conversationId, actorUserId, change, notifiedUserIds);
        !recorded) {
        return recorded.error();
    }
    Result<ConversationRecord> changed = readConversation(conversationId);
    if (!changed) {
        return changed.error();
    }
    if (!transaction.commit()) {
        return storageError(QStringLiteral("could not commit a membership change"),
            transaction.error());
    }
    return ChangeResult { changed.value(), notifiedUserIds, true };
}

Result<ChangeResult> SqliteServerStore::createGroup(const QString& conversationId,
    const QString& title, qint64 creatorUserId, const QStringList& memberNames)
{
    beforeWriteTransaction();
    WriteTransaction transaction(database());
    if (!transaction.isOpen()) {
        return storageError(
            QStringLiteral("could not start creating a group"), transaction.error());
    }
    QSqlQuery query(database());
    const QString creator = userName(creatorUserId);

    // Creating the same group twice is a resend: answer with the group as it is.
    Result<ConversationRecord> existing = readConversation(conversationId);
    if (existing) {
        if (!existing->members.contains(creator)) {
            return Error { StoreError::IdConflict,
                QStringLiteral("a conversation with this id exists already") };
        }
        return ChangeResult { existing.value(), {}, false };
    }
    if (existing.error().kind != StoreError::NotFound) {
        return existing.error();
    }

    QStringList members = memberNames;
    members.append(creator);
    members.removeDuplicates();
    members.sort();
    Result<QList<qint64>> memberIds = userIds(members);
    if (!memberIds) {
        return memberIds.error();
    }

    query.prepare(QStringLiteral("INSERT INTO conversations (id, kind, created_ms, title)"
                                 " VALUES (?, ?, ?, ?)"));
    query.addBindValue(conversationId);
    query.addBindValue(static_cast<int>(ConversationKind::Group));
    query.addBindValue(QDateTime::currentMSecsSinceEpoch());
    query.addBindValue(title);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not create a group"), query);
    }
    query.prepare(QStringLiteral("INSERT INTO members (conversation_id, user_id) VALUES (?, ?)"));
    for (const qint64 memberId : std::as_const(memberIds.value())) {
        query.addBindValue(conversationId);
        query.addBindValue(memberId);
        if (!query.exec()) {
            return storageError(QStringLiteral("could not add a member"), query);
        }
    }

    MembershipRecord change;
    change.action = MembershipAction::Created;
    change.actor = creator;
    change.subjects = members;
    change.subjects.removeAll(creator);
    change.title = title;
    change.members = members;
    return commitMembershipChange(
        transaction, conversationId, creatorUserId, change, memberIds.value());
}

Result<ChangeResult> SqliteServerStore::addMembers(
    const QString& conversationId, qint64 actorUserId, const QStringList& names)
{
    beforeWriteTransaction();
    WriteTransaction transaction(database());
    if (!transaction.isOpen()) {
        return storageError(QStringLiteral("could not start adding members"), transaction.error());
    }
    Result<ConversationRecord> conversation = this->conversation(conversationId, actorUserId);
    if (!conversation) {
        return conversation.error();
    }
    if (!conversationId.startsWith(u"group:")) {
        return Error { StoreError::BadRequest, QStringLiteral("only groups take new members") };
    }
    QStringList added;
    for (const QString& name : names) {
        if (!conversation->members.contains(name) && !added.contains(name)) {
            added.append(name);
        }
    }
    if (added.isEmpty()) {
        return ChangeResult { conversation.value(), {}, false };
    }
    Result<QList<qint64>> addedIds = userIds(added);
    if (!addedIds) {
        return addedIds.error();
    }

    QSqlQuery query(database());
    query.prepare(QStringLiteral("INSERT INTO members (conversation_id, user_id) VALUES (?, ?)"));
    for (const qint64 userId : std::as_const(addedIds.value())) {
        query.addBindValue(conversationId);
        query.addBindValue(userId);
        if (!query.exec()) {
            return storageError(QStringLiteral("could not add a member"), query);
        }
    }
    QStringList members = conversation->members + added;
    members.sort();
    Result<QList<qint64>> memberIds = userIds(members);
    if (!memberIds) {
        return memberIds.error();
    }

    MembershipRecord change;
    change.action = MembershipAction::Added;
    change.actor = userName(actorUserId);
    change.subjects = added;
    change.title = conversation->title;
    change.members = members;
    return commitMembershipChange(
        transaction, conversationId, actorUserId, change, memberIds.value());
}

Result<ChangeResult> SqliteServerStore::removeMember(
    const QString& conversationId, qint64 actorUserId, const QString& name)
{
    beforeWriteTransaction();
    WriteTransaction transaction(database());
    if (!transaction.isOpen()) {
        return storageError(QStringLiteral("could not start removing a member"),
            transaction.error());
    }
    Result<ConversationRecord> conversation = this->conversation(conversationId, actorUserId);
    if (!conversation) {
        return conversation.error();
    }
    if (!conversationId.startsWith(u"group:")) {
        return Error { StoreError::BadRequest, QStringLiteral("only groups lose members") };
    }
    if (!conversation->members.contains(name)) {
        return Error { StoreError::NotFound, name + u" is not a member of this group" };
    }
    const std::optional<UserRecord> removed = findUser(name);
    if (!removed) {
        return Error { StoreError::NotFound, u"there is no user " + name };
    }

    QSqlQuery query(database());
    query.prepare(QStringLiteral("DELETE FROM members WHERE conversation_id = ? AND user_id = ?"));
    query.addBindValue(conversationId);
    query.addBindValue(removed->id);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not remove a member"), query);
    }

    QStringList members = conversation->members;
    members.removeAll(name);
    Result<QList<qint64>> remainingIds = userIds(members);
    if (!remainingIds) {
        return remainingIds.error();
    }
    // The removed member hears of the removal (and of nothing after it).
    QList<qint64> notified = remainingIds.value();
    notified.append(removed->id);

    MembershipRecord change;
    change.action = removed->id == actorUserId ? MembershipAction::Left : MembershipAction::Removed;
    change.actor = userName(actorUserId);
    change.subjects = { name };
    change.title = conversation->title;
    change.members = members;
    return commitMembershipChange(transaction, conversationId, actorUserId, change, notified);
}

Result<ConversationRecord> SqliteServerStore::conversation(
    const QString& conversationId, qint64 viewerUserId)
{
    Result<ConversationRecord> conversation = readConversation(conversationId);
    if (!conversation) {
        return conversation.error().kind == StoreError::NotFound ? notAMember()
                                                                 : conversation.error();
    }
    QSqlQuery query(database());
    query.prepare(QStringLiteral(
        "SELECT 1 FROM members WHERE conversation_id = ? AND user_id = ?"));
    query.addBindValue(conversationId);
    query.addBindValue(viewerUserId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not check a membership"), query);
    }
    if (!query.next()) {
        return notAMember();
    }
    return conversation;
}

Result<HistoryPage> SqliteServerStore::history(
    const QString& conversationId, qint64 viewerUserId, quint64 beforeSeq, int limit)
{
    // Membership is checked on reads as on writes: a former member reads nothing here.
    Result<ConversationRecord> conversation = this->conversation(conversationId, viewerUserId);
    if (!conversation) {
        return conversation.error();
    }
    const quint64 before = beforeSeq == 0 ? conversation->lastSeq + 1 : beforeSeq;
    // One entry more than asked tells whether there are more.
    Result<QList<ConversationEntry>> newest = newestEntries(conversationId, before, limit + 1);
    if (!newest) {
        return newest.error();
    }
    HistoryPage page;
    page.hasMore = newest->size() > limit;
    for (qsizetype i = std::min<qsizetype>(limit, newest->size()) - 1; i >= 0; --i) {
        page.entries.append(std::move(newest.value()[i]));
    }
    return page;
}

Result<QList<ConversationEntry>> SqliteServerStore::newestEntries(
    const QString& conversationId, quint64 beforeSeq, int limit)
{
    // The conversation's messages still waiting have the highest seqs: a fold moves all of a
    // conversation's waiting messages at once.
    QList<ConversationEntry> entries;
    const QString entryFrom = u"SELECT " + EntryColumns
        + u" FROM messages m JOIN users u ON u.id = m.sender_user_id";
    if (const QList<SeqTailEntry>* waiting = m_seqTail.entriesOf(conversationId.toUtf8())) {
        QSqlQuery& byRow = preparedQuery(entryFrom + u" WHERE m.id = ?");
        for (auto entry = waiting->crbegin(); entry != waiting->crend(); ++entry) {
            if (entry->seq >= static_cast<qint64>(beforeSeq)) {
                continue;
            }
            if (entries.size() == limit) {
                return entries;
            }
            byRow.addBindValue(entry->row);
            if (!byRow.exec() || !byRow.next()) {
                const Error failed
                    = storageError(QStringLiteral("could not read a newest message"), byRow);
                byRow.finish();
                return failed;
            }
            entries.append(readEntry(byRow, 0));
            byRow.finish();
        }
    }
    if (entries.size() == limit) {
        return entries;
    }
    QSqlQuery query(database());
    query.setForwardOnly(true);
    query.prepare(entryFrom
        + u" JOIN conversation_index c ON c.message_ref = m.id"
          u" WHERE c.conversation_id = ? AND c.seq < ? ORDER BY c.seq DESC LIMIT ?");
    query.addBindValue(conversationId);
    query.addBindValue(static_cast<qint64>(beforeSeq));
    query.addBindValue(limit - int(entries.size()));
    if (!query.exec()) {
        return storageError(QStringLiteral("could not read the history"), query);
    }
    while (query.next()) {
        entries.append(readEntry(query, 0));
    }
    return entries;
}

// Receipts and contacts ----------------------------------------------------------------------

Result<ChangeResult> SqliteServerStore::recordReceipt(qint64 userId, quint64 deviceId,
    const QString& conversationId, ReceiptKind kind, quint64 upToSeq)
{
    beforeWriteTransaction();
    WriteTransaction transaction(database());
    if (!transaction.isOpen()) {
        return storageError(QStringLiteral("could not start a receipt"), transaction.error());
    }
    Result<ConversationRecord> conversation = this->conversation(conversationId, userId);
    if (!conversation) {
        return conversation.error();
    }
    // A receipt cannot run ahead of the conversation.
    const quint64 upTo = std::min(upToSeq, conversation->lastSeq);

    QSqlQuery query(database());
    query.prepare(QStringLiteral("SELECT delivered_seq, read_seq FROM receipts"
                                 " WHERE conversation_id = ? AND user_id = ?"));
    query.addBindValue(conversationId);
    query.addBindValue(userId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not read receipts"), query);
    }
    quint64 delivered = 0;
    quint64 read = 0;
    if (query.next()) {
        delivered = query.value(0).toULongLong();
        read = query.value(1).toULongLong();
    }
    query.finish();

    // Marks only move forward, and reading a message implies having received it.
    const quint64 current = kind == ReceiptKind::Read ? read : delivered;
    if (upTo <= current) {
        return ChangeResult { conversation.value(), {}, false };
    }
    if (kind == ReceiptKind::Read) {
        read = upTo;
    }
    delivered = std::max(delivered, upTo);

    query.prepare(QStringLiteral(
        "INSERT INTO receipts (conversation_id, user_id, delivered_seq, read_seq)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id, user_id)"
        " DO UPDATE SET delivered_seq = excluded.delivered_seq, read_seq = excluded.read_seq"));
    query.addBindValue(conversationId);
    query.addBindValue(userId);
    query.addBindValue(static_cast<qint64>(delivered));
    query.addBindValue(static_cast<qint64>(read));
    if (!query.exec()) {
        return storageError(QStringLiteral("could not store a receipt"), query);
    }
    query.prepare(QStringLiteral("INSERT INTO receipt_log (conversation_id, user_id, device_id,"
                                 " kind, up_to_seq, created_ms) VALUES (?, ?, ?, ?, ?, ?)"));
    query.addBindValue(conversationId);
    query.addBindValue(userId);
    query.addBindValue(static_cast<qint64>(deviceId));
    query.addBindValue(static_cast<int>(kind));
    query.addBindValue(static_cast<qint64>(upTo));
    query.addBindValue(QDateTime::currentMSecsSinceEpoch());
    if (!query.exec()) {
        return storageError(QStringLiteral("could not log a receipt"), query);
    }
    const qint64 ref = query.lastInsertId().toLongLong();

    // Every member hears of it, the reporter too: the reporter's other devices learn the read
    // state that way.
    const QList<qint64>& memberIds = conversation->memberIds;
    if (auto appended = appendEvents(memberIds, int(EventKind::Receipt), ref); !appended) {
        return appended.error();
    }
    if (!transaction.commit()) {
        return storageError(QStringLiteral("could not commit a receipt"), transaction.error());
    }
    return ChangeResult { conversation.value(), memberIds, true };
}

Result<QList<qint64>> SqliteServerStore::contactsOf(qint64 userId)
{
    QSqlQuery query(database());
    query.prepare(
        QStringLiteral("SELECT DISTINCT other.user_id FROM members mine"
                       " JOIN members other ON other.conversation_id = mine.conversation_id"
                       " WHERE mine.user_id = ? AND other.user_id != ?"));
    query.addBindValue(userId);
    query.addBindValue(userId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not list contacts"), query);
    }
    QList<qint64> ids;
    while (query.next()) {
        ids.append(query.value(0).toLongLong());
    }
    return ids;
}

} // namespace ferry::server
