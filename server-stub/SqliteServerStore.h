#pragma once

#include "server-stub/FoldQueue.h"
#include "server-stub/ServerStore.h"

#include <QHash>
#include <QSqlQuery>

#include <map>
#include <memory>

class QSqlDatabase;

namespace ferry {
class PreparedStatement;
class WriteTransaction;
}

namespace ferry::server {

class WalCheckpointer;

/// ServerStore on one SQLite file in WAL mode with full synchronous commits: an acknowledged
/// message has reached the disk. Used from the server's main thread only.
class SqliteServerStore final : public ServerStore {
public:
    static constexpr int SchemaVersion = 5; ///< the number of steps in Migrations

    /// The write-ahead log's length, in pages, at which a checkpoint starts on its own thread.
    static constexpr int DefaultCheckpointPages = 1024;

    /// Entries waiting in each tail (FoldQueue.h: the users' log entries in `log_tail`, the
    /// messages not yet in `conversation_index`) before the oldest are folded: per user or
    /// conversation, about this many over the number of active ones at each fold.
    static constexpr int DefaultLogFoldLag = 16384;

    /// Opens or creates `dataDir`/server.db and brings its schema up to date.
    static Result<std::unique_ptr<SqliteServerStore>> open(const QString& dataDir,
        int checkpointPages = DefaultCheckpointPages, int logFoldLag = DefaultLogFoldLag);
    ~SqliteServerStore() override;

    Result<Done> ping() override;
    qint64 cacheBytes() override;
    qint64 cacheLimitBytes() const override;
    StoreLogStats logStats() const override;

    Result<UserRecord> createUser(const QString& name, const QByteArray& passwordHash) override;
    std::optional<UserRecord> findUser(const QString& name) override;
    Result<DeviceRecord> createDevice(
        qint64 userId, const QString& name, const QByteArray& tokenHash) override;
    std::optional<DeviceRecord> findDevice(quint64 deviceId) override;
    Result<QList<DeviceRecord>> listDevices(qint64 userId) override;
    Result<Done> renameDevice(qint64 userId, quint64 deviceId, const QString& name) override;
    Result<Done> removeDevice(qint64 userId, quint64 deviceId) override;
    Result<QList<quint64>> removedDeviceIds() override;

    Result<StoredMessageAck> appendMessage(const NewMessage& message) override;
    QList<Result<StoredMessageAck>> appendMessages(const QList<NewMessage>& messages) override;
    Result<EventPage> eventsAfter(qint64 userId, quint64 afterOffset, int limit) override;
    Result<quint64> lastOffset(qint64 userId) override;

    Result<ChangeResult> createGroup(const QString& conversationId, const QString& title,
        qint64 creatorUserId, const QStringList& memberNames) override;
    Result<ChangeResult> addMembers(
        const QString& conversationId, qint64 actorUserId, const QStringList& names) override;
    Result<ChangeResult> removeMember(
        const QString& conversationId, qint64 actorUserId, const QString& name) override;
    Result<ConversationRecord> conversation(
        const QString& conversationId, qint64 viewerUserId) override;
    Result<HistoryPage> history(
        const QString& conversationId, qint64 viewerUserId, quint64 beforeSeq, int limit) override;

    Result<ChangeResult> recordReceipt(qint64 userId, quint64 deviceId,
        const QString& conversationId, ReceiptKind kind, quint64 upToSeq) override;
    Result<QList<qint64>> contactsOf(qint64 userId) override;

private:
    SqliteServerStore(QString connectionName, QString path);
    QSqlDatabase database() const;
    /// A statement prepared once and kept: the send path runs the same few statements for every
    /// message, and preparing them again each time was a large part of its cost. A SELECT taken
    /// from here is finished by its user, so that it holds no read open.
    QSqlQuery& preparedQuery(const QString& sql);

    /// The event-log entries of a batch of messages, held back until the batch is complete.
    /// One group message appends to the log of every member; each log's newest offset is read
    /// once per batch, and the entries go to the tail together at the end (writeLogs).
    struct BatchLogs {
        struct Entry {
            qint64 userId = 0;
            qint64 offset = 0;
            qint64 ref = 0;
        };
        QHash<qint64, qint64> lastOffsets; ///< per user: the newest offset handed out so far
        QList<Entry> entries;              ///< in the order handed out
    };

    /// Stores one message inside the caller's transaction; its log entries go to `logs`. Sets
    /// `wrote` once it has written anything: a message refused before that left no trace.
    Result<StoredMessageAck> storeMessage(const NewMessage& message, BatchLogs& logs, bool& wrote);
    /// The next offset of each member's log, handed out in `logs`, for the message row `ref`.
    Result<QList<quint64>> reserveOffsets(
        BatchLogs& logs, const QList<qint64>& memberIds, qint64 ref);
    /// The newest offset in the user's event log (0 when it is empty), and the newest seq in a
    /// conversation (0 when it has none): each the last entry waiting in its tail, else the
    /// end of its range in `events` or `conversation_index`.
    Result<qint64> newestLogOffset(qint64 userId);
    Result<qint64> newestSeq(const QByteArray& conversationId);
    /// Writes a batch's log entries, inside the caller's transaction.
    Result<Done> writeLogs(BatchLogs& logs);
    /// Appends one entry to `log_tail` and to m_logTail, inside the caller's transaction.
    Result<Done> appendLogEntry(qint64 userId, qint64 offset, int kind, qint64 ref);
    /// Once more than m_logFoldLag entries wait, moves the entries of the users who have waited
    /// longest into `events`, about twice as many as `appended` (the entries the transaction
    /// added), and drops the rows of `log_tail` before the oldest entry left. Inside the
    /// caller's transaction.
    Result<Done> foldLogTail(qsizetype appended);
    /// Rebuilds m_logTail from the rows of `log_tail` that are not in `events`: when opening,
    /// and after a transaction that changed the tail rolled back.
    Result<Done> reloadLogTail();
    /// Once more than m_logFoldLag messages wait, moves the (conversation, seq) entries of the
    /// conversations that have waited longest into `conversation_index`, about twice as many as
    /// `appended`, and moves `conversation_index_state.waiting_from` up to the oldest message
    /// left waiting. Inside the caller's transaction.
    Result<Done> foldSeqTail(qsizetype appended);
    /// Rebuilds m_seqTail from the rows of `messages` from `waiting_from` on that are not in
    /// `conversation_index`.
    Result<Done> reloadSeqTail();
    /// Both tails and m_newestSeqs read again from the file.
    Result<Done> reloadTails();
    /// The conversation's entries, newest first, with a seq below `beforeSeq`: up to `limit`
    /// waiting in m_seqTail, then from `conversation_index`.
    Result<QList<ConversationEntry>> newestEntries(
        const QString& conversationId, quint64 beforeSeq, int limit);
    /// Reads m_logTail, m_seqTail and m_newestSeqs from the file again if a rollback left them
    /// ahead of it.
    Result<Done> ensureMemory();
    /// Notes the newest seq of a conversation, read or just handed out.
    void rememberNewestSeq(const QByteArray& conversationId, qint64 seq);
    /// Before each write transaction of the store's own: the checkpointer's finishing copy,
    /// and a fresh start for m_memoryChanged.
    void beforeWriteTransaction();
    static void afterRollback(void* store);
    /// The answer to a message whose id is stored already: the first result, or IdConflict when
    /// the id belongs to another sender or conversation.
    Result<StoredMessageAck> storedAck(const NewMessage& message);
    /// Creates the direct conversation a first message is sent to, with both its members.
    /// Returns their user ids; refuses a sender who is not one of the two before it writes.
    Result<QList<qint64>> createDirectConversation(
        const NewMessage& message, qint64 now, bool& wrote);
    /// Reads a conversation and its members inside the caller's transaction.
    Result<ConversationRecord> readConversation(const QString& conversationId);
    QString userName(qint64 userId);
    /// Resolves user names to ids; UnknownRecipient names the first that does not exist.
    Result<QList<qint64>> userIds(const QStringList& names);
    /// Appends a membership change with the conversation's next seq and logs it for `userIds`.
    Result<Done> recordMembershipChange(const QString& conversationId, qint64 actorUserId,
        const MembershipRecord& change, const QList<qint64>& userIds);
    /// Records the change, reads the conversation as it now is, and commits.
    Result<ChangeResult> commitMembershipChange(WriteTransaction& transaction,
        const QString& conversationId, qint64 actorUserId, const MembershipRecord& change,
        const QList<qint64>& notifiedUserIds);
    /// A statement on SQLite's C API, prepared once and kept, for the send path's statements
    /// that run once per message or once per member of a group: there, Qt's conversion of every
    /// bound value and column through QVariant cost more than SQLite's work.
    PreparedStatement& statement(const char* sql);
    /// Appends one event of `kind` referring to `ref` to the log of each user; returns the new
    /// event's offset in each log, in the order of `userIds`.
    Result<QList<quint64>> appendEvents(const QList<qint64>& userIds, int kind, qint64 ref);

    QString m_connectionName;
    QString m_path;
    /// A node-based map: references handed out stay valid while later statements are added.
    std::map<QString, QSqlQuery> m_preparedQueries;
    /// Keyed by the statement's text (string literals, compared by address).
    std::map<const char*, std::unique_ptr<PreparedStatement>> m_statements;
    /// The entries of `log_tail` not yet folded into `events`.
    LogTail m_logTail;
    /// The messages whose (conversation, seq) is not yet in `conversation_index`.
    SeqTail m_seqTail;
    int m_logFoldLag = DefaultLogFoldLag;
    /// Each conversation's newest seq, for the conversations sent to lately (at most
    /// MaxRememberedSeqs): reading it from the end of the conversation's range of the
    /// conversation's index cost about 5 % of the protocol thread at 30,000 messages/s.
    QHash<QByteArray, qint64> m_newestSeqs;
    static constexpr qsizetype MaxRememberedSeqs = 65536;
    /// Set when the open transaction changed what is kept in memory (the tails, m_newestSeqs);
    /// cleared as the next one begins (beforeWriteTransaction).
    bool m_memoryChanged = false;
    /// Set when such a transaction rolled back: the memory is ahead of the file.
    bool m_memoryStale = false;
    /// Runs the log's checkpoints off the protocol thread; gone before the connection closes.
    std::unique_ptr<WalCheckpointer> m_checkpointer;
};

} // namespace ferry::server
