#include "core/ClientStore.h"

#include "core/ConversationId.h"
#include "core/Logging.h"
#include "core/MessageId.h"
#include "core/SqlSupport.h"

#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSet>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QUuid>
#include <QVariant>

#include <algorithm>

namespace ferry {

namespace {

    // "FRRY": marks the file as a Ferry client database, so that opening some other SQLite file
    // by mistake is refused instead of being written into.
    constexpr qint64 ApplicationId = 0x46525259;
    const QString DatabaseFileName = QStringLiteral("ferry.db");

    // Receipt marks only move forward: a mark lower than the stored one changes nothing.
    const QString RaiseReceiptMark = QStringLiteral(
        "INSERT INTO receipt_marks (conversation_id, user_name, delivered_seq, read_seq)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id, user_name) DO UPDATE SET"
        " delivered_seq = MAX(delivered_seq, excluded.delivered_seq),"
        " read_seq = MAX(read_seq, excluded.read_seq)");

    const QString MessageColumns = QStringLiteral(
        "local_id, message_id, conversation_id, sender, body, seq, state, server_time_ms, "
        "written_ms, failure_reason, kind");

    StoredMessage readMessage(const QSqlQuery& query)
    {
        StoredMessage message;
        message.localId = query.value(0).toLongLong();
        message.messageId = query.value(1).toByteArray();
        message.conversationId = query.value(2).toString();
        message.sender = query.value(3).toString();
        message.body = query.value(4).toByteArray();
        if (!query.isNull(5)) {
            message.seq = query.value(5).toULongLong();
        }
        message.state = static_cast<MessageState>(query.value(6).toInt());
        if (!query.isNull(7)) {
            message.serverTimeMs = query.value(7).toLongLong();
        }
        message.writtenMs = query.value(8).toLongLong();
        message.failureReason = query.value(9).toString();
        message.kind = static_cast<EntryKind>(query.value(10).toInt());
        return message;
    }

    QString toJson(const QStringList& list)
    {
        return QString::fromUtf8(
            QJsonDocument(QJsonArray::fromStringList(list)).toJson(QJsonDocument::Compact));
    }

    QStringList fromJson(const QString& text)
    {
        QStringList list;
        for (const QJsonValue& value : QJsonDocument::fromJson(text.toUtf8()).array()) {
            list.append(value.toString());
        }
        return list;
    }

    Error notFound(const QString& what)
    {
        return Error { QStringLiteral("not-found"), what };
    }

    // Each entry upgrades the schema from its index to the next version. Entries are never
    // edited once released: a new version appends a step.
    const QList<QStringList> Migrations = {
        // 1: the account, the event offset, and one table for outbox and inbox.
        {
            QStringLiteral("CREATE TABLE account ("
                           " id INTEGER PRIMARY KEY CHECK (id = 1),"
                           " server_url TEXT NOT NULL,"
                           " user_name TEXT NOT NULL,"
                           " device_id INTEGER NOT NULL,"
                           " device_token BLOB NOT NULL)"),
            QStringLiteral("CREATE TABLE sync_state ("
                           " id INTEGER PRIMARY KEY CHECK (id = 1),"
                           " event_offset INTEGER NOT NULL)"),
            QStringLiteral("INSERT INTO sync_state (id, event_offset) VALUES (1, 0)"),
            QStringLiteral("CREATE TABLE messages ("
                           " local_id INTEGER PRIMARY KEY AUTOINCREMENT,"
                           " message_id BLOB NOT NULL UNIQUE,"
                           " conversation_id TEXT NOT NULL,"
                           " sender TEXT NOT NULL,"
                           " body BLOB NOT NULL,"
                           " seq INTEGER,"
                           " state INTEGER NOT NULL,"
                           " server_time_ms INTEGER,"
                           " written_ms INTEGER NOT NULL,"
                           " failure_reason TEXT)"),
            QStringLiteral("CREATE INDEX messages_by_conversation"
                           " ON messages (conversation_id, seq, local_id)"),
            // The outbox is the set of queued messages; this keeps reading it cheap however
            // large the history grows.
            QStringLiteral("CREATE INDEX messages_outbox ON messages (local_id) WHERE state = 0"),
        },
        // 2: groups (membership changes as entries), conversations, receipts, engine status.
        {
            QStringLiteral("ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 0"),
            QStringLiteral(
                "CREATE INDEX messages_unsent ON messages (local_id) WHERE state IN (0, 3)"),
            QStringLiteral("CREATE TABLE conversations ("
                           " id TEXT PRIMARY KEY,"
                           " title TEXT NOT NULL DEFAULT '',"
                           " members TEXT NOT NULL DEFAULT '[]',"
                           " left_group INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"),
            QStringLiteral("INSERT INTO conversations (id)"
                           " SELECT DISTINCT conversation_id FROM messages"),
            QStringLiteral("CREATE TABLE receipt_marks ("
                           " conversation_id TEXT NOT NULL,"
                           " user_name TEXT NOT NULL,"
                           " delivered_seq INTEGER NOT NULL DEFAULT 0,"
                           " read_seq INTEGER NOT NULL DEFAULT 0,"
                           " PRIMARY KEY (conversation_id, user_name)) WITHOUT ROWID"),
            QStringLiteral("CREATE TABLE outgoing_receipts ("
                           " conversation_id TEXT NOT NULL,"
                           " kind INTEGER NOT NULL,"
                           " up_to_seq INTEGER NOT NULL,"
                           " PRIMARY KEY (conversation_id, kind)) WITHOUT ROWID"),
            QStringLiteral("CREATE TABLE engine_status ("
                           " id INTEGER PRIMARY KEY CHECK (id = 1),"
                           " state TEXT NOT NULL,"
                           " next_retry_ms INTEGER,"
                           " last_error TEXT,"
                           " pid INTEGER,"
                           " updated_ms INTEGER NOT NULL)"),
        },
    };

} // namespace

QString messageStateName(MessageState state)
{
    switch (state) {
    case MessageState::Queued:
        return QStringLiteral("queued");
    case MessageState::Sent:
        return QStringLiteral("sent");
    case MessageState::Received:
        return QStringLiteral("received");
    case MessageState::Failed:
        return QStringLiteral("failed");
    case MessageState::Delivered:
        return QStringLiteral("delivered");
    case MessageState::Read:
        return QStringLiteral("read");
    }
    return QStringLiteral("unknown");
}

QString describeEntry(const StoredMessage& entry)
{
    if (entry.kind == EntryKind::Message) {
        return QString::fromUtf8(entry.body);
    }
    const QJsonObject change = QJsonDocument::fromJson(entry.body).object();
    const QString action = change[u"action"].toString();
    const QString actor = change[u"actor"].toString();
    QStringList subjects;
    for (const QJsonValue& subject : change[u"subjects"].toArray()) {
        subjects.append(subject.toString());
    }
    const QString who = subjects.join(QStringLiteral(", "));
    if (action == u"created") {
        return actor + u" created the group \"" + change[u"title"].toString() + u"\""
            + (who.isEmpty() ? QString() : u" with " + who);
    }
    if (action == u"added") {
        return actor + u" added " + who;
    }
    if (action == u"removed") {
        return actor + u" removed " + who;
    }
    if (action == u"left") {
        return actor + u" left";
    }
    return QStringLiteral("(a change this version does not know)");
}

ClientStore::ClientStore(QString connectionName, QString path)
    : m_connectionName(std::move(connectionName))
    , m_path(std::move(path))
{
}

ClientStore::~ClientStore()
{
    {
        QSqlDatabase db = QSqlDatabase::database(m_connectionName, false);
        db.close();
    }
    QSqlDatabase::removeDatabase(m_connectionName);
}

Result<std::unique_ptr<ClientStore>> ClientStore::open(const QString& profileDir)
{
    QDir dir(profileDir);
    if (!dir.exists() && !QDir().mkpath(profileDir)) {
        return Error { QStringLiteral("profile"),
            u"could not create the profile folder " + profileDir };
    }
    // The profile holds the device token: only its owner may read it. A folder its owner made
    // read-only is left exactly as it is, and permissions are only ever taken away, never given.
    const QFileDevice::Permissions ownerOnly
        = QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner;
    const QFileDevice::Permissions othersMay = QFileDevice::ReadGroup | QFileDevice::WriteGroup
        | QFileDevice::ExeGroup | QFileDevice::ReadOther | QFileDevice::WriteOther
        | QFileDevice::ExeOther;
    const QFileDevice::Permissions current = QFile::permissions(dir.absolutePath());
    if ((current & othersMay) && (current & QFileDevice::WriteOwner)) {
        QFile::setPermissions(dir.absolutePath(), current & ownerOnly);
    }

    const QString path = dir.absoluteFilePath(DatabaseFileName);
    const QString connectionName
        = u"ferry-store-" + QUuid::createUuid().toString(QUuid::WithoutBraces);
    std::unique_ptr<ClientStore> store(new ClientStore(connectionName, path));

    Result<QSqlDatabase> db = openSqliteDatabase(path, connectionName, ApplicationId);
    if (!db) {
        // SQLite must write beside a write-ahead-log database (its -shm file) even to read it,
        // and says of a folder or file it may not write only "unable to open database file";
        // the user is told what is actually in the way.
        const bool readOnly = !QFileInfo(dir.absolutePath()).isWritable()
            || (QFileInfo::exists(path) && !QFileInfo(path).isWritable());
        if (db.error().kind == u"cannot-open" && readOnly) {
            return Error { QStringLiteral("read-only"),
                path + u" or its folder cannot be written" };
        }
        return db.error();
    }
    if (auto migrated = migrateSqliteSchema(db.value(), Migrations, ApplicationId); !migrated) {
        return migrated.error();
    }
    // A damaged page is found only when read. The tables every command reads first are read
    // here once, so that damage there is reported at open, where recovery can be offered.
    QSqlQuery probe(db.value());
    for (const char* table : { "account", "sync_state", "conversations" }) {
        if (!probe.exec(u"SELECT * FROM " + QLatin1String(table) + u" LIMIT 1")) {
            return storageError(u"could not read " + path, probe);
        }
    }
    qCInfo(lcStore) << "Opened" << path << "at schema" << SchemaVersion;
    return store;
}

Result<RecoveryReport> ClientStore::recover(const QString& profileDir)
{
    QDir dir(profileDir);
    const QString path = dir.absoluteFilePath(DatabaseFileName);
    RecoveryReport report;

    // What can still be read comes out first, through a read-only connection.
    std::optional<AccountInfo> account;
    QList<StoredMessage> queued;
    {
        const QString name = u"ferry-recover-" + QUuid::createUuid().toString(QUuid::WithoutBraces);
        {
            QSqlDatabase damaged = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), name);
            damaged.setDatabaseName(path);
            damaged.setConnectOptions(QStringLiteral("QSQLITE_OPEN_READONLY"));
            if (damaged.open()) {
                QSqlQuery query(damaged);
                if (query.exec(QStringLiteral("PRAGMA quick_check")) && query.next()) {
                    report.cause = query.value(0).toString();
                } else {
                    report.cause = query.lastError().text();
                }
                if (query.exec(QStringLiteral("SELECT server_url, user_name, device_id,"
                                              " device_token FROM account WHERE id = 1"))
                    && query.next()) {
                    // A damaged row can read back with missing fields. An account without its
                    // server or user name is not one to carry over: saving it would fail, and
                    // with it the whole recovery.
                    const AccountInfo read { query.value(0).toString(), query.value(1).toString(),
                        query.value(2).toULongLong(), query.value(3).toByteArray() };
                    if (!read.serverUrl.isNull() && !read.userName.isEmpty()) {
                        account = read;
                    }
                }
                // Row by row, so that one unreadable row does not cost the others.
                QSqlQuery ids(damaged);
                if (ids.exec(QStringLiteral("SELECT local_id FROM messages WHERE state = 0"
                                            " ORDER BY local_id"))) {
                    QList<qint64> localIds;
                    while (ids.next()) {
                        localIds.append(ids.value(0).toLongLong());
                    }
                    for (const qint64 localId : std::as_const(localIds)) {
                        query.prepare(u"SELECT "
                            + MessageColumns.left(MessageColumns.lastIndexOf(u','))
                            + u" FROM messages WHERE local_id = ?");
                        query.addBindValue(localId);
                        if (query.exec() && query.next()) {
                            queued.append(readMessage(query));
                        }
                    }
                }
            } else {
                report.cause = damaged.lastError().text();
            }
            damaged.close();
        }
        QSqlDatabase::removeDatabase(name);
    }

    // The damaged files are kept, never deleted: someone may want to look at them.
    const QString aside = u"damaged-"
        + QDateTime::currentDateTimeUtc().toString(QStringLiteral("yyyyMMdd-hhmmss-zzz"));
    if (!dir.mkpath(aside)) {
        return Error { QStringLiteral("profile"), u"could not create " + dir.filePath(aside) };
    }
    for (const QString& suffix : { QString(), QStringLiteral("-wal"), QStringLiteral("-shm") }) {
        const QString file = DatabaseFileName + suffix;
        if (dir.exists(file) && !dir.rename(file, aside + u'/' + file)) {
            return Error { QStringLiteral("profile"),
                u"could not move " + dir.filePath(file) + u" aside" };
        }
    }
    report.damagedCopy = dir.absoluteFilePath(aside);

    Result<std::unique_ptr<ClientStore>> fresh = open(profileDir);
    if (!fresh) {
        return fresh.error();
    }
    if (account) {
        if (auto saved = fresh.value()->saveAccount(*account); !saved) {
            return saved.error();
        }
        report.accountRecovered = true;
    }
    QSqlQuery insert(QSqlDatabase::database(fresh.value()->m_connectionName));
    insert.prepare(QStringLiteral(
        "INSERT OR IGNORE INTO messages (message_id, conversation_id, sender, body, state,"
        " written_ms, kind) VALUES (?, ?, ?, ?, 0, ?, 0)"));
    for (const StoredMessage& message : std::as_const(queued)) {
        if (!MessageId::fromBytes(message.messageId)) {
            continue;
        }
        insert.addBindValue(message.messageId);
        insert.addBindValue(message.conversationId);
        insert.addBindValue(message.sender);
        insert.addBindValue(message.body);
        insert.addBindValue(message.writtenMs);
        if (insert.exec() && fresh.value()->ensureConversation(message.conversationId)) {
            ++report.messagesRecovered;
        }
    }
    qCWarning(lcStore) << "Recovered a damaged profile database:" << report.messagesRecovered
                       << "queued messages kept, damaged files in" << report.damagedCopy;
    return report;
}

std::optional<AccountInfo> ClientStore::account() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    if (!query.exec(QStringLiteral(
            "SELECT server_url, user_name, device_id, device_token FROM account WHERE id = 1"))
        || !query.next()) {
        return std::nullopt;
    }
    AccountInfo account;
    account.serverUrl = query.value(0).toString();
    account.userName = query.value(1).toString();
    account.deviceId = query.value(2).toULongLong();
    account.deviceToken = query.value(3).toByteArray();
    return account;
}

Result<Done> ClientStore::saveAccount(const AccountInfo& account)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral(
        "INSERT OR REPLACE INTO account (id, server_url, user_name, device_id, device_token)"
        " VALUES (1, ?, ?, ?, ?)"));
    query.addBindValue(account.serverUrl);
    query.addBindValue(account.userName);
    query.addBindValue(static_cast<qint64>(account.deviceId));
    // An empty token (kept in a keychain instead) must reach SQLite as an empty blob: Qt binds
    // a null QByteArray as NULL, which the column refuses.
    query.addBindValue(account.deviceToken.isEmpty() ? QByteArray("", 0) : account.deviceToken);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not save the account"), query);
    }
    return Done {};
}

Result<Done> ClientStore::ensureConversation(const QString& conversationId)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral(
        "INSERT OR IGNORE INTO conversations (id, members) VALUES (?, ?)"));
    query.addBindValue(conversationId);
    query.addBindValue(toJson(directConversationMembers(conversationId)));
    if (!query.exec()) {
        return storageError(QStringLiteral("could not record a conversation"), query);
    }
    return Done {};
}

// The outbox ---------------------------------------------------------------------------------

Result<StoredMessage> ClientStore::enqueue(const QString& conversationId, const QByteArray& body)
{
    const std::optional<AccountInfo> self = account();
    if (!self) {
        return Error { QStringLiteral("no-account"),
            QStringLiteral("this profile has no account yet; register or log in first") };
    }

    StoredMessage message;
    message.messageId = MessageId::generate().bytes();
    message.conversationId = conversationId;
    message.sender = self->userName;
    message.body = body;
    message.state = MessageState::Queued;
    message.writtenMs = QDateTime::currentMSecsSinceEpoch();

    QSqlDatabase db = QSqlDatabase::database(m_connectionName);
    WriteTransaction transaction(db);
    if (!transaction.isOpen()) {
        return storageError(QStringLiteral("could not write to the outbox"), transaction.error());
    }
    if (auto known = ensureConversation(conversationId); !known) {
        return known.error();
    }
    QSqlQuery query(db);
    query.prepare(QStringLiteral(
        "INSERT INTO messages (message_id, conversation_id, sender, body, state, written_ms, kind)"
        " VALUES (?, ?, ?, ?, 0, ?, 0)"));
    query.addBindValue(message.messageId);
    query.addBindValue(message.conversationId);
    query.addBindValue(message.sender);
    query.addBindValue(message.body);
    query.addBindValue(message.writtenMs);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not write the message to the outbox"), query);
    }
    message.localId = query.lastInsertId().toLongLong();
    // When the commit returns, the message is durably in the outbox.
    if (!transaction.commit()) {
        return storageError(QStringLiteral("could not commit the message"), transaction.error());
    }
    qCDebug(lcStore) << "Queued" << MessageId::fromBytes(message.messageId)->toString();
    return message;
}

Result<QList<StoredMessage>> ClientStore::outbox() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    if (!query.exec(u"SELECT " + MessageColumns
            + u" FROM messages WHERE state = 0 ORDER BY local_id")) {
        return storageError(QStringLiteral("could not read the outbox"), query);
    }
    QList<StoredMessage> messages;
    while (query.next()) {
        messages.append(readMessage(query));
    }
    return messages;
}

Result<QList<StoredMessage>> ClientStore::unsentMessages() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    if (!query.exec(u"SELECT " + MessageColumns
            + u" FROM messages WHERE state IN (0, 3) ORDER BY local_id")) {
        return storageError(QStringLiteral("could not read the outbox"), query);
    }
    QList<StoredMessage> messages;
    while (query.next()) {
        messages.append(readMessage(query));
    }
    return messages;
}

Result<Done> ClientStore::markSent(const QByteArray& messageId, quint64 seq, qint64 serverTimeMs)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral("UPDATE messages SET seq = ?, state = 1, server_time_ms = ?,"
                                 " failure_reason = NULL WHERE message_id = ? AND seq IS NULL"));
    query.addBindValue(static_cast<qint64>(seq));
    query.addBindValue(serverTimeMs);
    query.addBindValue(messageId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not record an acknowledgement"), query);
    }
    return Done {};
}

Result<Done> ClientStore::markFailed(const QByteArray& messageId, const QString& reason)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral("UPDATE messages SET state = 3, failure_reason = ?"
                                 " WHERE message_id = ? AND state = 0"));
    query.addBindValue(reason);
    query.addBindValue(messageId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not record a refused message"), query);
    }
    return Done {};
}

Result<Done> ClientStore::retry(const QByteArray& messageId)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral("UPDATE messages SET state = 0, failure_reason = NULL"
                                 " WHERE message_id = ? AND state = 3"));
    query.addBindValue(messageId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not queue the message again"), query);
    }
    if (query.numRowsAffected() != 1) {
        return notFound(QStringLiteral("no failed message has this id"));
    }
    return Done {};
}

Result<Done> ClientStore::cancel(const QByteArray& messageId)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral("DELETE FROM messages WHERE message_id = ? AND state IN (0, 3)"));
    query.addBindValue(messageId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not cancel the message"), query);
    }
    if (query.numRowsAffected() != 1) {
        return notFound(QStringLiteral("no queued or failed message has this id"));
    }
    return Done {};
}

// The inbox ----------------------------------------------------------------------------------

Result<AppliedEvents> ClientStore::applyEvents(const QList<IncomingMessage>& events,
    quint64 lastOffset, const QList<IncomingReceipt>& receipts)
{
    QSqlDatabase db = QSqlDatabase::database(m_connectionName);
    WriteTransaction transaction(db);
    if (!transaction.isOpen()) {
        return storageError(QStringLiteral("could not start applying events"), transaction.error());
    }

    QSqlQuery query(db);
    if (!query.exec(QStringLiteral("SELECT event_offset FROM sync_state WHERE id = 1"))
        || !query.next()) {
        return storageError(QStringLiteral("could not read the event offset"), query);
    }
    const quint64 storedOffset = query.value(0).toULongLong();
    query.finish();

    AppliedEvents applied;
    if (auto done = applyEntries(events, storedOffset, true, &applied); !done) {
        return done.error();
    }

    // Receipt marks only move forward, and a read mark raises the delivered one with it.
    QSqlQuery mark(db);
    mark.prepare(RaiseReceiptMark);
    for (const IncomingReceipt& receipt : receipts) {
        if (receipt.offset <= storedOffset) {
            ++applied.duplicates;
            continue;
        }
        mark.addBindValue(receipt.conversationId);
        mark.addBindValue(receipt.userName);
        mark.addBindValue(static_cast<qint64>(receipt.upToSeq));
        mark.addBindValue(
            static_cast<qint64>(receipt.kind == ReceiptKind::Read ? receipt.upToSeq : 0));
        if (!mark.exec()) {
            return storageError(QStringLiteral("could not store a receipt"), mark);
        }
        if (!applied.touchedConversations.contains(receipt.conversationId)) {
            applied.touchedConversations.append(receipt.conversationId);
        }
    }

    if (lastOffset > storedOffset) {
        query.prepare(QStringLiteral("UPDATE sync_state SET event_offset = ? WHERE id = 1"));
        query.addBindValue(static_cast<qint64>(lastOffset));
        if (!query.exec()) {
            return storageError(QStringLiteral("could not advance the event offset"), query);
        }
    }
    if (!transaction.commit()) {
        return storageError(
            QStringLiteral("could not commit received events"), transaction.error());
    }
    qCDebug(lcStore) << "Applied" << events.size() + receipts.size() << "events up to offset"
                     << lastOffset << ":" << applied.added.size() << "new,"
                     << applied.confirmed.size() << "confirmed," << applied.duplicates
                     << "already known";
    return applied;
}

Result<AppliedEvents> ClientStore::applyHistory(const QList<IncomingMessage>& entries)
{
    QSqlDatabase db = QSqlDatabase::database(m_connectionName);
    WriteTransaction transaction(db);
    if (!transaction.isOpen()) {
        return storageError(QStringLiteral("could not start storing history"), transaction.error());
    }
    AppliedEvents applied;
    if (auto done = applyEntries(entries, 0, false, &applied); !done) {
        return done.error();
    }
    if (!transaction.commit()) {
        return storageError(QStringLiteral("could not commit history"), transaction.error());
    }
    return applied;
}

Result<Done> ClientStore::applyEntries(const QList<IncomingMessage>& entries,
    quint64 storedOffset, bool fromLog, AppliedEvents* applied)
{
    QSqlDatabase db = QSqlDatabase::database(m_connectionName);
    const std::optional<AccountInfo> self = account();
    const QString selfName = self ? self->userName : QString();

    // A catch-up applies thousands of entries per call, so the work per entry is kept to one
    // statement in the common case: the insert itself, which the unique message id turns into
    // the duplicate check. Everything else is looked up once per conversation per call, or only
    // when the insert found the id already stored.
    PreparedStatement insert(db,
        "INSERT INTO messages (message_id, conversation_id, sender, body, seq, state,"
        " server_time_ms, written_ms, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (message_id) DO NOTHING");
    if (!insert.isValid()) {
        return storageError(QStringLiteral("could not prepare storing messages"), insert.error());
    }
    PreparedStatement stored(db, "SELECT local_id, seq FROM messages WHERE message_id = ?");
    PreparedStatement predecessor(db,
        "SELECT EXISTS (SELECT 1 FROM messages WHERE conversation_id = ?1 AND seq = ?2),"
        " EXISTS (SELECT 1 FROM messages WHERE conversation_id = ?1 AND seq < ?2)");
    PreparedStatement conversation(
        db, "INSERT OR IGNORE INTO conversations (id, members) VALUES (?, ?)");
    for (const PreparedStatement* statement : { &stored, &predecessor, &conversation }) {
        if (!statement->isValid()) {
            return storageError(
                QStringLiteral("could not prepare storing messages"), statement->error());
        }
    }
    // Only for settling an own queued message, which needs the whole stored row.
    QSqlQuery find(db);
    find.prepare(u"SELECT " + MessageColumns + u" FROM messages WHERE local_id = ?");
    QSqlQuery confirm(db);
    confirm.prepare(QStringLiteral("UPDATE messages SET seq = ?, state = 1, server_time_ms = ?,"
                                   " failure_reason = NULL WHERE local_id = ?"));
    QSqlQuery membership(db);
    membership.prepare(QStringLiteral(
        "UPDATE conversations SET title = ?, members = ?, left_group = ? WHERE id = ?"));

    QSet<QString> touched(
        applied->touchedConversations.cbegin(), applied->touchedConversations.cend());
    // Per conversation, the seq of the entry this call stored last: the next entry whose seq
    // follows it has its predecessor, without asking the database.
    QHash<QString, quint64> storedSeq;
    applied->added.reserve(applied->added.size() + entries.size());

    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    for (const IncomingMessage& event : entries) {
        if (fromLog && event.offset <= storedOffset) {
            ++applied->duplicates;
            continue;
        }
        if (!touched.contains(event.conversationId)) {
            // As ensureConversation() does, with the statement prepared once per call.
            const QByteArray id = event.conversationId.toUtf8();
            const QByteArray members
                = toJson(directConversationMembers(event.conversationId)).toUtf8();
            conversation.bindText(1, id);
            conversation.bindText(2, members);
            if (!conversation.run()) {
                return storageError(
                    QStringLiteral("could not record a conversation"), conversation.error());
            }
            touched.insert(event.conversationId);
            applied->touchedConversations.append(event.conversationId);
        }
        // Only the log's membership changes say who is in the group now; history pages are
        // about the past.
        if (event.kind == EntryKind::Membership && fromLog) {
            membership.addBindValue(event.title);
            membership.addBindValue(toJson(event.members));
            membership.addBindValue(event.members.contains(selfName) ? 0 : 1);
            membership.addBindValue(event.conversationId);
            if (!membership.exec()) {
                return storageError(QStringLiteral("could not update the members"), membership);
            }
        }

        StoredMessage message;
        message.messageId = event.messageId;
        message.conversationId = event.conversationId;
        message.sender = event.sender;
        message.body = event.body;
        message.seq = event.seq;
        message.state = event.sender == selfName ? MessageState::Sent : MessageState::Received;
        message.serverTimeMs = event.serverTimeMs;
        message.writtenMs = now;
        message.kind = event.kind;
        const QByteArray conversationUtf8 = event.conversationId.toUtf8();
        const QByteArray senderUtf8 = event.sender.toUtf8();
        insert.bindBlob(1, event.messageId);
        insert.bindText(2, conversationUtf8);
        insert.bindText(3, senderUtf8);
        insert.bindBlob(4, event.body);
        insert.bindInt64(5, static_cast<qint64>(event.seq));
        insert.bindInt64(6, static_cast<int>(message.state));
        insert.bindInt64(7, event.serverTimeMs);
        insert.bindInt64(8, now);
        insert.bindInt64(9, static_cast<int>(event.kind));
        if (!insert.run()) {
            return storageError(
                QStringLiteral("could not store a received message"), insert.error());
        }

        if (insert.changes() == 0) {
            // The id is stored already: a duplicate, or our own queued message.
            stored.bindBlob(1, event.messageId);
            if (!stored.runQuery() || !stored.hasRow()) {
                return storageError(QStringLiteral("could not look up a message"), stored.error());
            }
            if (!stored.isNullAt(1)) {
                ++applied->duplicates;
                if (static_cast<quint64>(stored.int64At(1)) == event.seq) {
                    storedSeq.insert(event.conversationId, event.seq);
                }
                continue;
            }
            find.addBindValue(stored.int64At(0));
            if (!find.exec() || !find.next()) {
                return storageError(QStringLiteral("could not look up a message"), find);
            }
            StoredMessage existing = readMessage(find);
            find.finish();
            // Our own message, committed by the server while its ack never reached us (or the
            // ack and this event crossed): the event settles it exactly as the ack would have.
            confirm.addBindValue(static_cast<qint64>(event.seq));
            confirm.addBindValue(event.serverTimeMs);
            confirm.addBindValue(existing.localId);
            if (!confirm.exec()) {
                return storageError(QStringLiteral("could not settle a queued message"), confirm);
            }
            existing.seq = event.seq;
            existing.serverTimeMs = event.serverTimeMs;
            existing.state = MessageState::Sent;
            existing.failureReason.clear();
            applied->confirmed.append(existing);
            storedSeq.insert(event.conversationId, event.seq);
            continue;
        }
        message.localId = insert.lastInsertRowId();
        applied->added.append(message);

        const auto previous = storedSeq.constFind(event.conversationId);
        const bool followsStored = previous != storedSeq.cend() && *previous + 1 == event.seq;
        storedSeq.insert(event.conversationId, event.seq);
        if (!followsStored && !applied->gapSuspected.contains(event.conversationId)) {
            predecessor.bindText(1, conversationUtf8);
            predecessor.bindInt64(2, static_cast<qint64>(event.seq) - 1);
            if (!predecessor.runQuery() || !predecessor.hasRow()) {
                return storageError(
                    QStringLiteral("could not look for a gap"), predecessor.error());
            }
            const bool hasPredecessor = predecessor.int64At(0) != 0;
            const bool hasOlder = predecessor.int64At(1) != 0;
            if (event.seq > 1 && !hasPredecessor && hasOlder) {
                applied->gapSuspected.append(event.conversationId);
            }
        }
    }
    return Done {};
}

Result<quint64> ClientStore::eventOffset() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    if (!query.exec(QStringLiteral("SELECT event_offset FROM sync_state WHERE id = 1"))
        || !query.next()) {
        return storageError(QStringLiteral("could not read the event offset"), query);
    }
    return query.value(0).toULongLong();
}

// Reading ------------------------------------------------------------------------------------

Result<QList<StoredMessage>> ClientStore::history(
    const QString& conversationId, std::optional<quint64> beforeSeq, int limit) const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    QList<StoredMessage> messages;
    if (!beforeSeq) {
        query.prepare(u"SELECT " + MessageColumns
            + u" FROM messages WHERE conversation_id = ?"
              u" ORDER BY seq IS NULL, seq, local_id");
        query.addBindValue(conversationId);
        if (!query.exec()) {
            return storageError(QStringLiteral("could not read the history"), query);
        }
        while (query.next()) {
            messages.append(readMessage(query));
        }
    } else {
        // A page: the newest `limit` sequenced entries below beforeSeq, read backwards through
        // the index, then put in display order.
        query.prepare(u"SELECT " + MessageColumns
            + u" FROM messages WHERE conversation_id = ? AND seq < ?"
              u" ORDER BY seq DESC LIMIT ?");
        query.addBindValue(conversationId);
        query.addBindValue(static_cast<qint64>(*beforeSeq));
        query.addBindValue(limit < 0 ? -1 : limit);
        if (!query.exec()) {
            return storageError(QStringLiteral("could not read the history"), query);
        }
        while (query.next()) {
            messages.prepend(readMessage(query));
        }
    }
    deriveOwnStates(conversationId, &messages);
    return messages;
}

void ClientStore::deriveOwnStates(
    const QString& conversationId, QList<StoredMessage>* entries) const
{
    const std::optional<AccountInfo> self = account();
    if (!self) {
        return;
    }
    // An own message is delivered (read) once every other member's mark has reached it.
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral("SELECT members FROM conversations WHERE id = ?"));
    query.addBindValue(conversationId);
    if (!query.exec() || !query.next()) {
        return;
    }
    QStringList others = fromJson(query.value(0).toString());
    others.removeAll(self->userName);
    if (others.isEmpty()) {
        return;
    }
    query.prepare(QStringLiteral("SELECT user_name, delivered_seq, read_seq FROM receipt_marks"
                                 " WHERE conversation_id = ?"));
    query.addBindValue(conversationId);
    if (!query.exec()) {
        return;
    }
    QHash<QString, std::pair<quint64, quint64>> marks;
    while (query.next()) {
        marks.insert(query.value(0).toString(),
            { query.value(1).toULongLong(), query.value(2).toULongLong() });
    }
    quint64 delivered = std::numeric_limits<quint64>::max();
    quint64 read = std::numeric_limits<quint64>::max();
    for (const QString& other : std::as_const(others)) {
        const auto mark = marks.value(other, { 0, 0 });
        delivered = std::min(delivered, mark.first);
        read = std::min(read, mark.second);
    }
    for (StoredMessage& entry : *entries) {
        if (entry.state != MessageState::Sent || !entry.seq || entry.kind != EntryKind::Message) {
            continue;
        }
        if (*entry.seq <= read) {
            entry.state = MessageState::Read;
        } else if (*entry.seq <= delivered) {
            entry.state = MessageState::Delivered;
        }
    }
}

Result<QStringList> ClientStore::conversationIds() const
{
    Result<QList<ConversationSummary>> all = conversations();
    if (!all) {
        return all.error();
    }
    QStringList ids;
    for (const ConversationSummary& summary : std::as_const(all.value())) {
        ids.append(summary.id);
    }
    return ids;
}

Result<QList<ConversationSummary>> ClientStore::conversations() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    if (!query.exec(QStringLiteral("SELECT id FROM conversations"))) {
        return storageError(QStringLiteral("could not list conversations"), query);
    }
    QStringList ids;
    while (query.next()) {
        ids.append(query.value(0).toString());
    }
    const std::optional<AccountInfo> self = account();
    const QString selfName = self ? self->userName : QString();
    QList<ConversationSummary> summaries;
    summaries.reserve(ids.size());
    for (const QString& id : std::as_const(ids)) {
        Result<ConversationSummary> summary = summarize(id, selfName);
        if (!summary) {
            return summary.error();
        }
        summaries.append(summary.value());
    }
    // Most recently active first: the conversation whose newest entry was stored last. Each
    // summary is a few index lookups, so the list costs the same with a million messages as
    // with a hundred; nothing here reads a conversation's entries one by one.
    const auto activity = [](const ConversationSummary& summary) {
        return summary.last ? summary.last->localId : 0;
    };
    std::sort(summaries.begin(), summaries.end(),
        [&](const ConversationSummary& a, const ConversationSummary& b) {
            return activity(a) != activity(b) ? activity(a) > activity(b) : a.id < b.id;
        });
    return summaries;
}

Result<ConversationSummary> ClientStore::conversation(const QString& conversationId) const
{
    const std::optional<AccountInfo> self = account();
    return summarize(conversationId, self ? self->userName : QString());
}

Result<ConversationSummary> ClientStore::summarize(
    const QString& conversationId, const QString& selfName) const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    query.prepare(QStringLiteral("SELECT title, members, left_group FROM conversations"
                                 " WHERE id = ?"));
    query.addBindValue(conversationId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not read a conversation"), query);
    }
    if (!query.next()) {
        return notFound(u"no conversation " + conversationId + u" on this device");
    }
    ConversationSummary summary;
    summary.id = conversationId;
    summary.title = query.value(0).toString();
    summary.members = fromJson(query.value(1).toString());
    summary.left = query.value(2).toInt() != 0;

    query.prepare(QStringLiteral("SELECT read_seq FROM receipt_marks"
                                 " WHERE conversation_id = ? AND user_name = ?"));
    query.addBindValue(conversationId);
    query.addBindValue(selfName);
    if (query.exec() && query.next()) {
        summary.readSeq = query.value(0).toULongLong();
    }

    // Every count walks only the part of the (conversation_id, seq, local_id) index it needs:
    // the newest seq is its last entry, unread messages lie after the read mark, and unsent
    // messages (queued or failed, the only entries without a seq) sit together at its start.
    query.prepare(
        QStringLiteral("SELECT (SELECT MAX(seq) FROM messages WHERE conversation_id = ?),"
                       " (SELECT COUNT(*) FROM messages"
                       "   WHERE conversation_id = ? AND seq > ? AND kind = 0 AND sender != ?),"
                       " (SELECT COUNT(*) FROM messages"
                       "   WHERE conversation_id = ? AND seq IS NULL AND state = 0),"
                       " (SELECT COUNT(*) FROM messages"
                       "   WHERE conversation_id = ? AND seq IS NULL AND state = 3)"));
    query.addBindValue(conversationId);
    query.addBindValue(conversationId);
    query.addBindValue(static_cast<qint64>(summary.readSeq));
    query.addBindValue(selfName);
    query.addBindValue(conversationId);
    query.addBindValue(conversationId);
    if (!query.exec() || !query.next()) {
        return storageError(QStringLiteral("could not count a conversation"), query);
    }
    summary.lastSeq = query.value(0).toULongLong();
    summary.unread = query.value(1).toInt();
    summary.queued = query.value(2).toInt();
    summary.failed = query.value(3).toInt();

    // The newest entry: the last one written here and not yet sequenced, else the newest seq.
    query.prepare(u"SELECT " + MessageColumns
        + u" FROM messages WHERE conversation_id = ? AND seq IS NULL"
          u" ORDER BY local_id DESC LIMIT 1");
    query.addBindValue(conversationId);
    if (query.exec() && query.next()) {
        summary.last = readMessage(query);
    } else if (summary.lastSeq > 0) {
        query.prepare(
            u"SELECT " + MessageColumns + u" FROM messages WHERE conversation_id = ? AND seq = ?");
        query.addBindValue(conversationId);
        query.addBindValue(static_cast<qint64>(summary.lastSeq));
        if (query.exec() && query.next()) {
            summary.last = readMessage(query);
        }
    }
    return summary;
}

Result<QList<SeqRange>> ClientStore::missingRanges(const QString& conversationId) const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    // Interior gaps only: what lies before the oldest entry held is older history, fetched when
    // someone scrolls there, not a hole.
    query.prepare(QStringLiteral(
        "SELECT previous + 1, seq - 1 FROM ("
        "  SELECT seq, LAG(seq) OVER (ORDER BY seq) AS previous FROM messages"
        "  WHERE conversation_id = ? AND seq IS NOT NULL)"
        " WHERE previous IS NOT NULL AND seq > previous + 1"));
    query.addBindValue(conversationId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not look for gaps"), query);
    }
    QList<SeqRange> ranges;
    while (query.next()) {
        ranges.append(SeqRange { query.value(0).toULongLong(), query.value(1).toULongLong() });
    }
    return ranges;
}

std::optional<StoredMessage> ClientStore::message(const QByteArray& messageId) const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(u"SELECT " + MessageColumns + u" FROM messages WHERE message_id = ?");
    query.addBindValue(messageId);
    if (!query.exec() || !query.next()) {
        return std::nullopt;
    }
    return readMessage(query);
}

// Receipts -----------------------------------------------------------------------------------

Result<quint64> ClientStore::markRead(const QString& conversationId, quint64 upToSeq)
{
    const std::optional<AccountInfo> self = account();
    if (!self) {
        return Error { QStringLiteral("no-account"), QStringLiteral("no account in this profile") };
    }
    Result<ConversationSummary> summary = conversation(conversationId);
    if (!summary) {
        return summary.error();
    }
    const quint64 upTo = upToSeq == 0 ? summary->lastSeq : std::min(upToSeq, summary->lastSeq);

    QSqlDatabase db = QSqlDatabase::database(m_connectionName);
    WriteTransaction transaction(db);
    if (!transaction.isOpen()) {
        return storageError(QStringLiteral("could not start marking read"), transaction.error());
    }
    // The own mark moves at once, so the unread count drops offline too; the receipt that tells
    // the server (and through it the other devices) goes when the engine is connected.
    QSqlQuery query(db);
    query.prepare(RaiseReceiptMark);
    query.addBindValue(conversationId);
    query.addBindValue(self->userName);
    query.addBindValue(static_cast<qint64>(upTo));
    query.addBindValue(static_cast<qint64>(upTo));
    if (!query.exec()) {
        return storageError(QStringLiteral("could not mark read"), query);
    }
    if (auto queued = queueReceipt(conversationId, ReceiptKind::Read, upTo); !queued) {
        return queued.error();
    }
    if (!transaction.commit()) {
        return storageError(QStringLiteral("could not commit the read mark"), transaction.error());
    }
    return upTo;
}

Result<Done> ClientStore::queueReceipt(
    const QString& conversationId, ReceiptKind kind, quint64 upToSeq)
{
    if (upToSeq == 0) {
        return Done {};
    }
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral(
        "INSERT INTO outgoing_receipts (conversation_id, kind, up_to_seq) VALUES (?, ?, ?)"
        " ON CONFLICT (conversation_id, kind)"
        " DO UPDATE SET up_to_seq = MAX(up_to_seq, excluded.up_to_seq)"));
    query.addBindValue(conversationId);
    query.addBindValue(static_cast<int>(kind));
    query.addBindValue(static_cast<qint64>(upToSeq));
    if (!query.exec()) {
        return storageError(QStringLiteral("could not queue a receipt"), query);
    }
    return Done {};
}

Result<Done> ClientStore::queueReceipts(const QList<OutgoingReceipt>& receipts)
{
    if (receipts.isEmpty()) {
        return Done {};
    }
    WriteTransaction transaction(QSqlDatabase::database(m_connectionName));
    if (!transaction.isOpen()) {
        return storageError(
            QStringLiteral("could not start queueing receipts"), transaction.error());
    }
    for (const OutgoingReceipt& receipt : receipts) {
        if (auto queued = queueReceipt(receipt.conversationId, receipt.kind, receipt.upToSeq);
            !queued) {
            return queued.error();
        }
    }
    if (!transaction.commit()) {
        return storageError(QStringLiteral("could not commit owed receipts"), transaction.error());
    }
    return Done {};
}

Result<QList<OutgoingReceipt>> ClientStore::outgoingReceipts() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    if (!query.exec(QStringLiteral("SELECT conversation_id, kind, up_to_seq FROM outgoing_receipts"
                                   " ORDER BY conversation_id, kind"))) {
        return storageError(QStringLiteral("could not read owed receipts"), query);
    }
    QList<OutgoingReceipt> receipts;
    while (query.next()) {
        receipts.append(OutgoingReceipt { query.value(0).toString(),
            static_cast<ReceiptKind>(query.value(1).toInt()), query.value(2).toULongLong() });
    }
    return receipts;
}

Result<Done> ClientStore::receiptSent(const OutgoingReceipt& receipt)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral("DELETE FROM outgoing_receipts"
                                 " WHERE conversation_id = ? AND kind = ? AND up_to_seq <= ?"));
    query.addBindValue(receipt.conversationId);
    query.addBindValue(static_cast<int>(receipt.kind));
    query.addBindValue(static_cast<qint64>(receipt.upToSeq));
    if (!query.exec()) {
        return storageError(QStringLiteral("could not forget a sent receipt"), query);
    }
    return Done {};
}

Result<QString> ClientStore::integrityCheck() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    if (!query.exec(QStringLiteral("PRAGMA quick_check")) || !query.next()) {
        return storageError(QStringLiteral("could not check the database"), query);
    }
    return query.value(0).toString();
}

// Engine status ------------------------------------------------------------------------------

Result<Done> ClientStore::saveEngineStatus(const EngineStatus& status)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral(
        "INSERT OR REPLACE INTO engine_status (id, state, next_retry_ms, last_error, pid,"
        " updated_ms) VALUES (1, ?, ?, ?, ?, ?)"));
    query.addBindValue(status.state);
    query.addBindValue(status.nextRetryMs);
    query.addBindValue(status.lastError);
    query.addBindValue(status.pid);
    query.addBindValue(status.updatedMs);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not save the engine status"), query);
    }
    return Done {};
}

std::optional<EngineStatus> ClientStore::engineStatus() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    if (!query.exec(QStringLiteral("SELECT state, next_retry_ms, last_error, pid, updated_ms"
                                   " FROM engine_status WHERE id = 1"))
        || !query.next()) {
        return std::nullopt;
    }
    return EngineStatus { query.value(0).toString(), query.value(1).toLongLong(),
        query.value(2).toString(), query.value(3).toLongLong(), query.value(4).toLongLong() };
}

} // namespace ferry
