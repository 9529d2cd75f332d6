#pragma once

#include "core/Result.h"

#include <QByteArray>
#include <QList>
#include <QString>
#include <QStringList>

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
    qint64 createdMs = 0;
    bool removed = false;
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
    QList<quint64> offsets; ///< the entry's offset in each of those logs, in that order
};

enum class MembershipAction { Created = 1, Added = 2, Removed = 3, Left = 4 };

/// A change of a group's members, as it stands in the conversation's history.
struct MembershipRecord {
    MembershipAction action = MembershipAction::Created;
    QString actor;
    QStringList subjects;
    QString title;
    QStringList members; ///< after the change
};

/// An entry of a conversation's history: a message or a membership change, each with its seq.
struct ConversationEntry {
    QByteArray messageId; ///< empty for a membership change
    QString conversationId;
    quint64 seq = 0;
    QString sender;
    quint64 senderDeviceId = 0;
    QByteArray body;
    qint64 serverTimeMs = 0;
    std::optional<MembershipRecord> membership;
};

enum class ReceiptKind { Delivered = 1, Read = 2 };

struct ReceiptRecord {
    QString conversationId;
    QString userName;
    quint64 deviceId = 0;
    ReceiptKind kind = ReceiptKind::Delivered;
    quint64 upToSeq = 0;
};

/// One entry of a user's event log.
struct LogEvent {
    quint64 offset = 0;
    std::optional<ConversationEntry> entry; ///< a message or a membership change
    std::optional<ReceiptRecord> receipt;
};

struct EventPage {
    QList<LogEvent> events;
    bool caughtUp = false; ///< nothing after the last event existed when the page was read
};

struct ConversationRecord {
    QString id;
    QString title;
    QStringList members;      ///< user names, sorted
    QList<qint64> memberIds;  ///< in the same order
    quint64 lastSeq = 0;
};

/// What a membership change or receipt did: whose logs grew, and (for changes) the result.
struct ChangeResult {
    ConversationRecord conversation;
    QList<qint64> notifiedUserIds;
    bool changed = true; ///< false when the request repeated what was already so
};

struct HistoryPage {
    QList<ConversationEntry> entries; ///< ascending seq
    bool hasMore = false;
};

/// The store's write-ahead log and its upkeep, for the metrics; -1 where a store keeps no such
/// log in this process.
struct StoreLogStats {
    qint64 logPages = -1; ///< the log's length after the latest commit
    qint64 checkpointsOnThread = -1; ///< checkpoints done off the committing thread
    /// The short checkpoints a commit ran so that the log could start over.
    qint64 checkpointsFinishedInCommit = -1;
    /// The checkpoints a commit had to run because the log had reached its bound.
    qint64 checkpointsAtLimit = -1;
    /// Event-log entries kept in memory until they are moved to their final place.
    qint64 waitingLogEntries = -1;
    /// Messages whose entry in their conversation's index is kept in memory until it moves.
    qint64 waitingIndexEntries = -1;
};

/// Error kinds the store reports, so callers can map them onto protocol error codes.
namespace StoreError {
    inline const QString NameTaken = QStringLiteral("name-taken");
    inline const QString UnknownRecipient = QStringLiteral("unknown-recipient");
    inline const QString NotAMember = QStringLiteral("not-a-member");
    inline const QString NotFound = QStringLiteral("not-found");
    inline const QString IdConflict = QStringLiteral("id-conflict");
    inline const QString BadRequest = QStringLiteral("bad-request");
    inline const QString Storage = QStringLiteral("storage");
}

/// Everything the server keeps. The reference server implements it on SQLite; the interface is
/// shaped so that a PostgreSQL implementation can stand in without the protocol code changing:
/// every operation is one transaction, and nothing relies on state held in this process.
class ServerStore {
public:
    virtual ~ServerStore() = default;

    /// Succeeds when the database answers a trivial query; for health checks.
    virtual Result<Done> ping() = 0;
    /// What the store's own cache in this process holds now and may hold at most, in bytes;
    /// -1 for both where it keeps none. The metrics show them, and a test of flat memory tells
    /// a cache filling up to its bound from a leak.
    virtual qint64 cacheBytes() = 0;
    virtual qint64 cacheLimitBytes() const = 0;
    virtual StoreLogStats logStats() const = 0;

    // Accounts and devices.
    virtual Result<UserRecord> createUser(const QString& name, const QByteArray& passwordHash) = 0;
    virtual std::optional<UserRecord> findUser(const QString& name) = 0;
    virtual Result<DeviceRecord> createDevice(
        qint64 userId, const QString& name, const QByteArray& tokenHash)
        = 0;
    /// Finds a device, removed ones included (check `removed`).
    virtual std::optional<DeviceRecord> findDevice(quint64 deviceId) = 0;
    virtual Result<QList<DeviceRecord>> listDevices(qint64 userId) = 0;
    virtual Result<Done> renameDevice(qint64 userId, quint64 deviceId, const QString& name) = 0;
    /// Marks a device of `userId` removed and forgets its token.
    virtual Result<Done> removeDevice(qint64 userId, quint64 deviceId) = 0;
    /// Every removed device, for the revocation set a server loads at start.
    virtual Result<QList<quint64>> removedDeviceIds() = 0;

    // Messages and the event log.

    /// Stores a message with the next sequence number of its conversation and appends an event
    /// to every member's log, all in one transaction. A message id seen before from the same
    /// sender in the same conversation returns the first result and writes nothing.
    virtual Result<StoredMessageAck> appendMessage(const NewMessage& message) = 0;

    /// Stores several messages in one transaction, one commit for all: each in turn as
    /// appendMessage would, so that a message's refusal (not a member, an id conflict) leaves
    /// the others stored. Returns one result per message, in order. When the commit fails, every
    /// message that was not refused gets the storage error and none is stored.
    virtual QList<Result<StoredMessageAck>> appendMessages(const QList<NewMessage>& messages) = 0;

    /// Events of `userId`'s log after `afterOffset`, oldest first, at most `limit`.
    virtual Result<EventPage> eventsAfter(qint64 userId, quint64 afterOffset, int limit) = 0;

    /// The newest offset in `userId`'s event log, 0 when it is empty.
    virtual Result<quint64> lastOffset(qint64 userId) = 0;

    // Conversations.

    /// Creates a group with `creator` and `memberNames` as members. Creating the same id again
    /// with the same creator answers with the group as it is and changes nothing.
    virtual Result<ChangeResult> createGroup(const QString& conversationId, const QString& title,
        qint64 creatorUserId, const QStringList& memberNames)
        = 0;
    virtual Result<ChangeResult> addMembers(
        const QString& conversationId, qint64 actorUserId, const QStringList& names)
        = 0;
    /// Removes `name` from the group; with `name` being the actor's own, the actor leaves.
    virtual Result<ChangeResult> removeMember(
        const QString& conversationId, qint64 actorUserId, const QString& name)
        = 0;
    /// The conversation as `viewerUserId`, a member, sees it; NotAMember otherwise.
    virtual Result<ConversationRecord> conversation(
        const QString& conversationId, qint64 viewerUserId)
        = 0;
    /// Entries with seq below `beforeSeq` (0: the newest), newest `limit` of them, for a member.
    virtual Result<HistoryPage> history(
        const QString& conversationId, qint64 viewerUserId, quint64 beforeSeq, int limit)
        = 0;

    // Receipts.

    /// Moves the user's delivered or read mark forward and tells every member; a receipt that
    /// does not move the mark changes nothing (`changed` false).
    virtual Result<ChangeResult> recordReceipt(qint64 userId, quint64 deviceId,
        const QString& conversationId, ReceiptKind kind, quint64 upToSeq)
        = 0;

    /// Users who share at least one conversation with `userId`, for presence.
    virtual Result<QList<qint64>> contactsOf(qint64 userId) = 0;
};

} // namespace ferry::server
