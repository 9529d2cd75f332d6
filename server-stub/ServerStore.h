#pragma once

#include "core/Result.h"

#include <QByteArray>
#include <QList>
#include <QString>

#include <optional>

namespace ferry::server {

struct UserRecord {
    qint64 id = 0;
    QString name;
    QByteArray passwordHash; ///< crypto_pwhash_str output, NUL-free ASCII
};

struct DeviceRecord {
    quint64 id = 0;
    qint64 userId = 0;
    QString userName;
    QString name;
    QByteArray tokenHash; ///< BLAKE2b of the device token; the token itself is never stored
};

/// A message as a sender hands it to the server.
struct NewMessage {
    QByteArray messageId;
    QString conversationId;
    qint64 senderUserId = 0;
    QString senderName;
    quint64 senderDeviceId = 0;
    QByteArray body;
};

/// The outcome of storing a message: its place in the conversation, and whose event logs grew.
struct StoredMessageAck {
    quint64 seq = 0;
    qint64 serverTimeMs = 0;
    bool alreadyStored = false;     ///< the id was sent before; nothing new was written
    QList<qint64> notifiedUserIds;  ///< members whose event log gained an entry
};

/// One entry of a user's event log, joined with the message it refers to.
struct LogEvent {
    quint64 offset = 0;
    QByteArray messageId;
    QString conversationId;
    quint64 seq = 0;
    QString sender;
    quint64 senderDeviceId = 0;
    QByteArray body;
    qint64 serverTimeMs = 0;
};

struct EventPage {
    QList<LogEvent> events;
    bool caughtUp = false; ///< nothing after the last event existed when the page was read
};

/// Error kinds the store reports, so callers can map them onto protocol error codes.
namespace StoreError {
    inline const QString NameTaken = QStringLiteral("name-taken");
    inline const QString UnknownRecipient = QStringLiteral("unknown-recipient");
    inline const QString NotAMember = QStringLiteral("not-a-member");
    inline const QString IdConflict = QStringLiteral("id-conflict");
    inline const QString Storage = QStringLiteral("storage");
}

/// Everything the server keeps. The reference server implements it on SQLite; the interface is
/// shaped so that a PostgreSQL implementation can stand in without the protocol code changing:
/// every operation is one transaction and nothing relies on state held in this process.
class ServerStore {
public:
    virtual ~ServerStore() = default;

    virtual Result<UserRecord> createUser(const QString& name, const QByteArray& passwordHash) = 0;
    virtual std::optional<UserRecord> findUser(const QString& name) = 0;

    virtual Result<DeviceRecord> createDevice(
        qint64 userId, const QString& name, const QByteArray& tokenHash)
        = 0;
    virtual std::optional<DeviceRecord> findDevice(quint64 deviceId) = 0;

    /// Stores a message with the next sequence number of its conversation and appends an event
    /// to every member's log, all in one transaction. A message id seen before from the same
    /// sender in the same conversation returns the first result and writes nothing.
    virtual Result<StoredMessageAck> appendMessage(const NewMessage& message) = 0;

    /// Events of `userId`'s log after `afterOffset`, oldest first, at most `limit`.
    virtual Result<EventPage> eventsAfter(qint64 userId, quint64 afterOffset, int limit) = 0;

    /// The newest offset in `userId`'s event log, 0 when it is empty.
    virtual Result<quint64> lastOffset(qint64 userId) = 0;
};

} // namespace ferry::server
