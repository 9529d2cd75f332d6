#include "core/ClientStore.h"

#include "core/Logging.h"

#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QUuid>
#include <QVariant>

#include "core/MessageId.h"
#include "core/SqlSupport.h"

namespace ferry {

namespace {

    // "FRRY": marks the file as a Ferry client database, so that opening some other SQLite file
    // by mistake is refused instead of being written into.
    constexpr qint64 ApplicationId = 0x46525259;

    const QString MessageColumns = QStringLiteral(
        "local_id, message_id, conversation_id, sender, body, seq, state, server_time_ms, "
        "written_ms, failure_reason");

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
        return message;
    }

    // Each entry upgrades the schema from its index to the next version. Entries are never
    // edited once released: a new version appends a step.
    const QList<QStringList> Migrations = {
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
    }
    return QStringLiteral("unknown");
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
    // The profile holds the device token: only its owner may read it.
    QFile::setPermissions(dir.absolutePath(),
        QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);

    const QString path = dir.absoluteFilePath(QStringLiteral("ferry.db"));
    const QString connectionName
        = u"ferry-store-" + QUuid::createUuid().toString(QUuid::WithoutBraces);
    std::unique_ptr<ClientStore> store(new ClientStore(connectionName, path));

    Result<QSqlDatabase> db = openSqliteDatabase(path, connectionName, ApplicationId);
    if (!db) {
        return db.error();
    }
    if (auto migrated = migrateSqliteSchema(db.value(), Migrations, ApplicationId); !migrated) {
        return migrated.error();
    }
    qCInfo(lcStore) << "Opened" << path << "at schema" << SchemaVersion;
    return store;
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
    query.addBindValue(account.deviceToken);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not save the account"), query);
    }
    return Done {};
}

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

    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral(
        "INSERT INTO messages (message_id, conversation_id, sender, body, state, written_ms)"
        " VALUES (?, ?, ?, ?, 0, ?)"));
    query.addBindValue(message.messageId);
    query.addBindValue(message.conversationId);
    query.addBindValue(message.sender);
    query.addBindValue(message.body);
    query.addBindValue(message.writtenMs);
    // A single statement outside a transaction is its own transaction: when exec returns true,
    // the message is durably in the outbox.
    if (!query.exec()) {
        return storageError(QStringLiteral("could not write the message to the outbox"), query);
    }
    message.localId = query.lastInsertId().toLongLong();
    qCDebug(lcStore) << "Queued" << MessageId::fromBytes(message.messageId)->toString();
    return message;
}

Result<QList<StoredMessage>> ClientStore::outbox() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    if (!query.exec(u"SELECT " + MessageColumns + u" FROM messages WHERE state = 0"
                                                  u" ORDER BY local_id")) {
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

Result<AppliedEvents> ClientStore::applyEvents(
    const QList<IncomingMessage>& events, quint64 lastOffset)
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
    const std::optional<AccountInfo> self = account();
    const QString selfName = self ? self->userName : QString();

    QSqlQuery find(db);
    find.prepare(u"SELECT " + MessageColumns + u" FROM messages WHERE message_id = ?");
    QSqlQuery insert(db);
    insert.prepare(QStringLiteral(
        "INSERT INTO messages (message_id, conversation_id, sender, body, seq, state,"
        " server_time_ms, written_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
    QSqlQuery confirm(db);
    confirm.prepare(QStringLiteral("UPDATE messages SET seq = ?, state = 1, server_time_ms = ?,"
                                   " failure_reason = NULL WHERE local_id = ?"));

    AppliedEvents applied;
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    for (const IncomingMessage& event : events) {
        if (event.offset <= storedOffset) {
            ++applied.duplicates;
            continue;
        }

        find.addBindValue(event.messageId);
        if (!find.exec()) {
            return storageError(QStringLiteral("could not look up a message"), find);
        }
        if (find.next()) {
            StoredMessage existing = readMessage(find);
            find.finish();
            if (existing.seq.has_value()) {
                ++applied.duplicates;
                continue;
            }
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
            applied.confirmed.append(existing);
            continue;
        }
        find.finish();

        StoredMessage message;
        message.messageId = event.messageId;
        message.conversationId = event.conversationId;
        message.sender = event.sender;
        message.body = event.body;
        message.seq = event.seq;
        message.state = event.sender == selfName ? MessageState::Sent : MessageState::Received;
        message.serverTimeMs = event.serverTimeMs;
        message.writtenMs = now;
        insert.addBindValue(message.messageId);
        insert.addBindValue(message.conversationId);
        insert.addBindValue(message.sender);
        insert.addBindValue(message.body);
        insert.addBindValue(static_cast<qint64>(event.seq));
        insert.addBindValue(static_cast<int>(message.state));
        insert.addBindValue(message.serverTimeMs.value());
        insert.addBindValue(now);
        if (!insert.exec()) {
            return storageError(QStringLiteral("could not store a received message"), insert);
        }
        message.localId = insert.lastInsertId().toLongLong();
        applied.added.append(message);
    }

    if (lastOffset > storedOffset) {
        query.prepare(QStringLiteral("UPDATE sync_state SET event_offset = ? WHERE id = 1"));
        query.addBindValue(static_cast<qint64>(lastOffset));
        if (!query.exec()) {
            return storageError(QStringLiteral("could not advance the event offset"), query);
        }
    }
    if (!transaction.commit()) {
        return storageError(QStringLiteral("could not commit received events"), transaction.error());
    }
    qCDebug(lcStore) << "Applied" << events.size() << "events up to offset" << lastOffset << ":"
                     << applied.added.size() << "new," << applied.confirmed.size()
                     << "confirmed," << applied.duplicates << "already known";
    return applied;
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

Result<QList<StoredMessage>> ClientStore::history(const QString& conversationId) const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    query.prepare(u"SELECT " + MessageColumns
        + u" FROM messages WHERE conversation_id = ?"
          u" ORDER BY seq IS NULL, seq, local_id");
    query.addBindValue(conversationId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not read the history"), query);
    }
    QList<StoredMessage> messages;
    while (query.next()) {
        messages.append(readMessage(query));
    }
    return messages;
}

Result<QStringList> ClientStore::conversationIds() const
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    if (!query.exec(QStringLiteral("SELECT conversation_id FROM messages"
                                   " GROUP BY conversation_id ORDER BY MAX(local_id) DESC"))) {
        return storageError(QStringLiteral("could not list conversations"), query);
    }
    QStringList ids;
    while (query.next()) {
        ids.append(query.value(0).toString());
    }
    return ids;
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

} // namespace ferry
