#include "server-stub/SqliteServerStore.h"

#include "core/ConversationId.h"
#include "core/Logging.h"
#include "core/SqlSupport.h"

#include <QDateTime>
#include <QDir>
#include <QSqlQuery>
#include <QUuid>
#include <QVariant>

namespace ferry::server {

namespace {

    // "FRSV": marks the file as a Ferry server database.
    constexpr qint64 ApplicationId = 0x46525356;

    enum class ConversationKind { Direct = 1 };
    enum class EventKind { Message = 1 };

    // Each entry upgrades the schema from its index to the next version; released entries are
    // never edited, a new version appends a step.
    const QList<QStringList> Migrations = {
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
            // One log per user; offsets are dense and strictly increasing per user.
            QStringLiteral("CREATE TABLE events ("
                           " user_id INTEGER NOT NULL REFERENCES users (id),"
                           " log_offset INTEGER NOT NULL,"
                           " kind INTEGER NOT NULL,"
                           " message_ref INTEGER REFERENCES messages (id),"
                           " PRIMARY KEY (user_id, log_offset)) WITHOUT ROWID"),
        },
    };

} // namespace

SqliteServerStore::SqliteServerStore(QString connectionName, QString path)
    : m_connectionName(std::move(connectionName))
    , m_path(std::move(path))
{
}

SqliteServerStore::~SqliteServerStore()
{
    {
        QSqlDatabase db = QSqlDatabase::database(m_connectionName, false);
        db.close();
    }
    QSqlDatabase::removeDatabase(m_connectionName);
}

Result<std::unique_ptr<SqliteServerStore>> SqliteServerStore::open(const QString& dataDir)
{
    if (!QDir().mkpath(dataDir)) {
        return Error { StoreError::Storage, u"could not create the data folder " + dataDir };
    }
    const QString path = QDir(dataDir).absoluteFilePath(QStringLiteral("server.db"));
    const QString connectionName
        = u"ferry-server-store-" + QUuid::createUuid().toString(QUuid::WithoutBraces);
    std::unique_ptr<SqliteServerStore> store(new SqliteServerStore(connectionName, path));

    Result<QSqlDatabase> db = openSqliteDatabase(path, connectionName, ApplicationId);
    if (!db) {
        return db.error();
    }
    if (auto migrated = migrateSqliteSchema(db.value(), Migrations, ApplicationId); !migrated) {
        return migrated.error();
    }
    qCInfo(lcServerDb) << "Opened" << path << "at schema" << SchemaVersion;
    return store;
}

Result<UserRecord> SqliteServerStore::createUser(
    const QString& name, const QByteArray& passwordHash)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral(
        "INSERT INTO users (name, password_hash, created_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO NOTHING"));
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
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
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
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral(
        "INSERT INTO devices (user_id, name, token_hash, created_ms) VALUES (?, ?, ?, ?)"));
    query.addBindValue(userId);
    query.addBindValue(name);
    query.addBindValue(tokenHash);
    query.addBindValue(QDateTime::currentMSecsSinceEpoch());
    if (!query.exec()) {
        return storageError(QStringLiteral("could not create a device"), query);
    }
    DeviceRecord device;
    device.id = query.lastInsertId().toULongLong();
    device.userId = userId;
    device.name = name;
    device.tokenHash = tokenHash;
    return device;
}

std::optional<DeviceRecord> SqliteServerStore::findDevice(quint64 deviceId)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral("SELECT d.user_id, u.name, d.name, d.token_hash"
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
    return device;
}

Result<StoredMessageAck> SqliteServerStore::appendMessage(const NewMessage& message)
{
    QSqlDatabase db = QSqlDatabase::database(m_connectionName);
    WriteTransaction transaction(db);
    if (!transaction.isOpen()) {
        return storageError(QStringLiteral("could not start storing a message"),
            transaction.error());
    }
    QSqlQuery query(db);

    // A resend of a stored message is answered from what was stored the first time.
    query.prepare(QStringLiteral("SELECT conversation_id, seq, sender_user_id, server_time_ms"
                                 " FROM messages WHERE message_id = ?"));
    query.addBindValue(message.messageId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not look up a message id"), query);
    }
    if (query.next()) {
        if (query.value(0).toString() != message.conversationId
            || query.value(2).toLongLong() != message.senderUserId) {
            return Error { StoreError::IdConflict,
                QStringLiteral("this message id is already used by another message") };
        }
        StoredMessageAck ack;
        ack.seq = query.value(1).toULongLong();
        ack.serverTimeMs = query.value(3).toLongLong();
        ack.alreadyStored = true;
        return ack;
    }

    // Find the conversation; a direct one comes into being with its first message.
    quint64 lastSeq = 0;
    query.prepare(QStringLiteral("SELECT last_seq FROM conversations WHERE id = ?"));
    query.addBindValue(message.conversationId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not look up a conversation"), query);
    }
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    if (query.next()) {
        lastSeq = query.value(0).toULongLong();
    } else {
        const QStringList names = directConversationMembers(message.conversationId);
        if (!names.contains(message.senderName)) {
            return Error { StoreError::NotAMember,
                QStringLiteral("no such conversation, or the sender is not in it") };
        }
        QList<qint64> memberIds;
        for (const QString& name : names) {
            const std::optional<UserRecord> user = findUser(name);
            if (!user) {
                return Error { StoreError::UnknownRecipient, u"there is no user " + name };
            }
            memberIds.append(user->id);
        }
        query.prepare(QStringLiteral(
            "INSERT INTO conversations (id, kind, last_seq, created_ms) VALUES (?, ?, 0, ?)"));
        query.addBindValue(message.conversationId);
        query.addBindValue(static_cast<int>(ConversationKind::Direct));
        query.addBindValue(now);
        if (!query.exec()) {
            return storageError(QStringLiteral("could not create a conversation"), query);
        }
        query.prepare(QStringLiteral(
            "INSERT OR IGNORE INTO members (conversation_id, user_id) VALUES (?, ?)"));
        for (const qint64 memberId : memberIds) {
            query.addBindValue(message.conversationId);
            query.addBindValue(memberId);
            if (!query.exec()) {
                return storageError(QStringLiteral("could not add a member"), query);
            }
        }
    }

    // Membership is checked on every send, not only when the conversation is created.
    QList<qint64> memberIds;
    query.prepare(QStringLiteral(
        "SELECT user_id FROM members WHERE conversation_id = ? ORDER BY user_id"));
    query.addBindValue(message.conversationId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not read the members"), query);
    }
    while (query.next()) {
        memberIds.append(query.value(0).toLongLong());
    }
    if (!memberIds.contains(message.senderUserId)) {
        return Error { StoreError::NotAMember, QStringLiteral("the sender is not a member") };
    }

    const quint64 seq = lastSeq + 1;
    query.prepare(QStringLiteral("UPDATE conversations SET last_seq = ? WHERE id = ?"));
    query.addBindValue(static_cast<qint64>(seq));
    query.addBindValue(message.conversationId);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not advance the sequence number"), query);
    }

    query.prepare(QStringLiteral(
        "INSERT INTO messages (message_id, conversation_id, seq, sender_user_id,"
        " sender_device_id, body, server_time_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"));
    query.addBindValue(message.messageId);
    query.addBindValue(message.conversationId);
    query.addBindValue(static_cast<qint64>(seq));
    query.addBindValue(message.senderUserId);
    query.addBindValue(static_cast<qint64>(message.senderDeviceId));
    query.addBindValue(message.body);
    query.addBindValue(now);
    if (!query.exec()) {
        return storageError(QStringLiteral("could not store a message"), query);
    }
    const qint64 messageRef = query.lastInsertId().toLongLong();

    QSqlQuery bump(db);
    bump.prepare(QStringLiteral(
        "UPDATE users SET last_offset = last_offset + 1 WHERE id = ? RETURNING last_offset"));
    QSqlQuery append(db);
    append.prepare(QStringLiteral(
        "INSERT INTO events (user_id, log_offset, kind, message_ref) VALUES (?, ?, ?, ?)"));
    for (const qint64 memberId : std::as_const(memberIds)) {
        bump.addBindValue(memberId);
        if (!bump.exec() || !bump.next()) {
            return storageError(QStringLiteral("could not advance an event log"), bump);
        }
        const qint64 offset = bump.value(0).toLongLong();
        bump.finish();
        append.addBindValue(memberId);
        append.addBindValue(offset);
        append.addBindValue(static_cast<int>(EventKind::Message));
        append.addBindValue(messageRef);
        if (!append.exec()) {
            return storageError(QStringLiteral("could not append to an event log"), append);
        }
    }

    if (!transaction.commit()) {
        return storageError(QStringLiteral("could not commit a message"), transaction.error());
    }

    StoredMessageAck ack;
    ack.seq = seq;
    ack.serverTimeMs = now;
    ack.notifiedUserIds = memberIds;
    return ack;
}

Result<EventPage> SqliteServerStore::eventsAfter(qint64 userId, quint64 afterOffset, int limit)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.setForwardOnly(true);
    // One row more than asked tells whether the page reaches the end of the log.
    query.prepare(QStringLiteral(
        "SELECT e.log_offset, m.message_id, m.conversation_id, m.seq, u.name, m.sender_device_id,"
        " m.body, m.server_time_ms"
        " FROM events e"
        " JOIN messages m ON m.id = e.message_ref"
        " JOIN users u ON u.id = m.sender_user_id"
        " WHERE e.user_id = ? AND e.log_offset > ?"
        " ORDER BY e.log_offset LIMIT ?"));
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
        LogEvent event;
        event.offset = query.value(0).toULongLong();
        event.messageId = query.value(1).toByteArray();
        event.conversationId = query.value(2).toString();
        event.seq = query.value(3).toULongLong();
        event.sender = query.value(4).toString();
        event.senderDeviceId = query.value(5).toULongLong();
        event.body = query.value(6).toByteArray();
        event.serverTimeMs = query.value(7).toLongLong();
        page.events.append(std::move(event));
    }
    page.caughtUp = true;
    return page;
}

Result<quint64> SqliteServerStore::lastOffset(qint64 userId)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName));
    query.prepare(QStringLiteral("SELECT last_offset FROM users WHERE id = ?"));
    query.addBindValue(userId);
    if (!query.exec() || !query.next()) {
        return storageError(QStringLiteral("could not read an event log's offset"), query);
    }
    return query.value(0).toULongLong();
}

} // namespace ferry::server
