#pragma once

#include "core/Result.h"

#include <QByteArray>
#include <QList>
#include <QString>
#include <QStringList>

#include <memory>
#include <optional>

namespace ferry {

/// Where a message stands, from the point of view of this device. The first four are stored;
/// Delivered and Read are worked out for own messages from the other members' receipts.
enum class MessageState {
    Queued = 0,    ///< written here, not yet acknowledged by the server (the outbox)
    Sent = 1,      ///< written by this account and committed by the server
    Received = 2,  ///< written by someone else and received from the server (the inbox)
    Failed = 3,    ///< refused by the server for good; kept with the reason, never resent alone
    Delivered = 4, ///< own, and every other member's devices have received it
    Read = 5,      ///< own, and every other member has read it
};

QString messageStateName(MessageState state);

/// What an entry of a conversation is: something someone wrote, or a change of its members.
enum class EntryKind { Message = 0, Membership = 1 };

enum class ReceiptKind { Delivered = 1, Read = 2 };

/// One entry as this device stores it.
struct StoredMessage {
    qint64 localId = 0; ///< insertion order on this device; orders queued messages only
    QByteArray messageId;
    QString conversationId;
    QString sender;
    QByteArray body; ///< for a membership change, a small JSON document (see describeEntry)
    std::optional<quint64> seq; ///< the server's sequence number, unset while queued
    MessageState state = MessageState::Queued;
    std::optional<qint64> serverTimeMs;
    qint64 writtenMs = 0; ///< this device's clock when stored; shown, never used to order
    QString failureReason;
    EntryKind kind = EntryKind::Message;
};

/// A membership change as words ("alice added carol"), or the body of a message as text.
QString describeEntry(const StoredMessage& entry);

/// A message or membership event from the server's event log, ready to be applied.
struct IncomingMessage {
    quint64 offset = 0;
    QByteArray messageId;
    QString conversationId;
    quint64 seq = 0;
    QString sender;
    QByteArray body;
    qint64 serverTimeMs = 0;
    EntryKind kind = EntryKind::Message;
    QString title;        ///< membership changes: the group's title after the change
    QStringList members;  ///< membership changes: the members after the change
};

/// A receipt event from the server's event log.
struct IncomingReceipt {
    quint64 offset = 0;
    QString conversationId;
    QString userName;
    ReceiptKind kind = ReceiptKind::Delivered;
    quint64 upToSeq = 0;
};

/// What applying a batch of events changed.
struct AppliedEvents {
    QList<StoredMessage> added;     ///< entries this device had never stored
    QList<StoredMessage> confirmed; ///< own queued messages that the events showed as committed
    int duplicates = 0;             ///< events already applied, or whose entry was stored
    QStringList touchedConversations; ///< conversations that gained entries or receipts
    /// Conversations where an entry arrived without its predecessor while older ones are held:
    /// there may be a gap to fill from history. Checked per entry with an index lookup, so that
    /// nobody has to scan a whole conversation after every event.
    QStringList gapSuspected;
};

/// The device's identity on its server, kept in the profile.
struct AccountInfo {
    QString serverUrl;
    QString userName;
    quint64 deviceId = 0;
    QByteArray deviceToken;
};

/// A conversation as the conversation list shows it.
struct ConversationSummary {
    QString id;
    QString title;        ///< empty for a direct conversation
    QStringList members;
    bool left = false;    ///< this account is no longer a member
    quint64 lastSeq = 0;
    int unread = 0;       ///< others' messages after this account's read mark
    int queued = 0;
    int failed = 0;
    std::optional<StoredMessage> last; ///< the newest entry, queued ones included
    quint64 readSeq = 0;  ///< this account's read mark
};

/// An inclusive range of sequence numbers.
struct SeqRange {
    quint64 first = 0;
    quint64 last = 0;
    friend bool operator==(const SeqRange&, const SeqRange&) = default;
};

/// A receipt this device owes the server, coalesced per conversation and kind.
struct OutgoingReceipt {
    QString conversationId;
    ReceiptKind kind = ReceiptKind::Delivered;
    quint64 upToSeq = 0;
};

/// What the sync engine was doing when it last said so, for `ferryctl status`.
struct EngineStatus {
    QString state;
    qint64 nextRetryMs = 0;
    QString lastError;
    qint64 pid = 0;
    qint64 updatedMs = 0;
};

/// What recovering a damaged database did.
struct RecoveryReport {
    QString damagedCopy;      ///< where the damaged files were moved
    bool accountRecovered = false;
    int messagesRecovered = 0; ///< queued messages carried over, under their original ids
    QString cause;            ///< what was wrong with the file
};

/// The local database of one device: its account, every entry it knows of each conversation
/// (the outbox is the set of queued messages, the inbox everything received), receipts, and the
/// offset up to which it has applied its event log. One SQLite file in WAL mode with full
/// synchronous commits, so a write that has returned survives a killed process and a power cut.
///
/// Every method runs on the thread that opened the store. Several processes may open the same
/// profile at once; SQLite serialises their writes and each waits up to a few seconds for a lock.
class ClientStore {
public:
    /// The newest schema this build writes; older files are migrated on open.
    static constexpr int SchemaVersion = 2;

    /// Opens (creating if needed) the database in `profileDir`. A file that cannot be opened or
    /// is not a Ferry database is reported and left untouched. The error's kind is "damaged"
    /// when the file's content is unreadable (see recover()), "busy" when another process holds
    /// it locked, "read-only" when it cannot be written, "storage" otherwise.
    static Result<std::unique_ptr<ClientStore>> open(const QString& profileDir);

    /// For a profile whose database is damaged: moves the damaged files aside (never deletes
    /// them), creates a fresh database, and carries over what can still be read of the account
    /// and of the queued messages, under their original ids. The event offset starts at 0, so
    /// the next sync fetches everything else from the server.
    static Result<RecoveryReport> recover(const QString& profileDir);

    ~ClientStore();
    ClientStore(const ClientStore&) = delete;
    ClientStore& operator=(const ClientStore&) = delete;

    QString databasePath() const { return m_path; }

    std::optional<AccountInfo> account() const;
    Result<Done> saveAccount(const AccountInfo& account);

    // The outbox.

    /// Writes a new message from this account to the outbox and returns it once committed.
    Result<StoredMessage> enqueue(const QString& conversationId, const QByteArray& body);
    /// Queued messages, in the order they were written.
    Result<QList<StoredMessage>> outbox() const;
    /// Queued and failed messages, in the order they were written.
    Result<QList<StoredMessage>> unsentMessages() const;
    /// Records the server's acknowledgement of an own message. Acknowledging a message that is
    /// already settled changes nothing and succeeds: acks can arrive twice after a reconnect.
    Result<Done> markSent(const QByteArray& messageId, quint64 seq, qint64 serverTimeMs);
    /// Records that the server refused a queued message for good.
    Result<Done> markFailed(const QByteArray& messageId, const QString& reason);
    /// Puts a failed message back in the queue. NotFound unless it is failed.
    Result<Done> retry(const QByteArray& messageId);
    /// Deletes a queued or failed message. NotFound unless it is one of those. A message that
    /// was already on its way may still reach the server, which then sends it back as sent.
    Result<Done> cancel(const QByteArray& messageId);

    // The inbox.

    /// Applies events and moves the stored offset to `lastOffset` in one transaction. Events at
    /// or below the stored offset are skipped, and an entry already stored is never stored again.
    Result<AppliedEvents> applyEvents(const QList<IncomingMessage>& events, quint64 lastOffset,
        const QList<IncomingReceipt>& receipts = {});
    /// Stores entries fetched from the conversation's history (no offset involved).
    Result<AppliedEvents> applyHistory(const QList<IncomingMessage>& entries);
    /// The offset of the newest event applied; 0 before the first.
    Result<quint64> eventOffset() const;

    // Reading.

    /// Every entry of a conversation in display order: by server sequence number, then the
    /// queued ones in the order they were written. With `beforeSeq` set, only the newest `limit`
    /// entries below it (queued ones are newest of all and come with the first page).
    Result<QList<StoredMessage>> history(const QString& conversationId,
        std::optional<quint64> beforeSeq = std::nullopt, int limit = -1) const;
    /// Conversation ids this device holds, most recently active first.
    Result<QStringList> conversationIds() const;
    /// The conversation list, most recently active first.
    Result<QList<ConversationSummary>> conversations() const;
    Result<ConversationSummary> conversation(const QString& conversationId) const;
    /// Gaps between sequence numbers this device holds for a conversation, oldest first.
    Result<QList<SeqRange>> missingRanges(const QString& conversationId) const;
    std::optional<StoredMessage> message(const QByteArray& messageId) const;

    // Receipts.

    /// Marks the conversation read up to `upToSeq` (0: its newest entry) for this account, and
    /// owes the server a read receipt for it.
    Result<quint64> markRead(const QString& conversationId, quint64 upToSeq = 0);
    /// Owes the server a receipt; only the highest per conversation and kind is kept.
    Result<Done> queueReceipt(const QString& conversationId, ReceiptKind kind, quint64 upToSeq);
    /// Owes several receipts at once, in one transaction (one commit for a whole event batch).
    Result<Done> queueReceipts(const QList<OutgoingReceipt>& receipts);
    Result<QList<OutgoingReceipt>> outgoingReceipts() const;
    /// Forgets an owed receipt once the server accepted it (unless a higher one is owed now).
    Result<Done> receiptSent(const OutgoingReceipt& receipt);

    /// SQLite's quick check of every page: "ok", or what is wrong.
    Result<QString> integrityCheck() const;

    // The engine's state, for processes that look in from outside.
    Result<Done> saveEngineStatus(const EngineStatus& status);
    std::optional<EngineStatus> engineStatus() const;

private:
    ClientStore(QString connectionName, QString path);
    Result<Done> ensureConversation(const QString& conversationId);
    Result<Done> applyEntries(const QList<IncomingMessage>& entries, quint64 storedOffset,
        bool fromLog, AppliedEvents* applied);
    /// One conversation's summary for the list, as seen by `selfName`.
    Result<ConversationSummary> summarize(
        const QString& conversationId, const QString& selfName) const;
    void deriveOwnStates(const QString& conversationId, QList<StoredMessage>* entries) const;

    QString m_connectionName;
    QString m_path;
};

} // namespace ferry
