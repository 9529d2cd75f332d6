#pragma once

#include "core/Result.h"

#include <QByteArray>
#include <QList>
#include <QString>

#include <memory>
#include <optional>

namespace ferry {

/// Where a message stands, from the point of view of this device.
enum class MessageState {
    Queued = 0,   ///< written here, not yet acknowledged by the server (the outbox)
    Sent = 1,     ///< written by this account and committed by the server
    Received = 2, ///< written by someone else and received from the server (the inbox)
    Failed = 3,   ///< refused by the server for good; kept with the reason, never resent alone
};

QString messageStateName(MessageState state);

/// One message as this device stores it.
struct StoredMessage {
    qint64 localId = 0; ///< insertion order on this device; orders queued messages only
    QByteArray messageId;
    QString conversationId;
    QString sender;
    QByteArray body;
    std::optional<quint64> seq; ///< the server's sequence number, unset while queued
    MessageState state = MessageState::Queued;
    std::optional<qint64> serverTimeMs;
    qint64 writtenMs = 0; ///< this device's clock when stored; shown, never used to order
    QString failureReason;
};

/// A message event from the server's event log, ready to be applied.
struct IncomingMessage {
    quint64 offset = 0;
    QByteArray messageId;
    QString conversationId;
    quint64 seq = 0;
    QString sender;
    QByteArray body;
    qint64 serverTimeMs = 0;
};

/// What applying a batch of events changed.
struct AppliedEvents {
    QList<StoredMessage> added;     ///< messages this device had never stored
    QList<StoredMessage> confirmed; ///< own queued messages that the events showed as committed
    int duplicates = 0;             ///< events whose message was already stored and settled
};

/// The device's identity on its server, kept in the profile.
struct AccountInfo {
    QString serverUrl;
    QString userName;
    quint64 deviceId = 0;
    QByteArray deviceToken;
};

/// The local database of one device: its account, every message it knows (the outbox is the set
/// of queued messages, the inbox everything received) and the offset up to which it has applied
/// its event log. One SQLite file in WAL mode with full synchronous commits, so a write that has
/// returned survives a killed process and a power cut.
///
/// Every method runs on the thread that opened the store. Several processes may open the same
/// profile at once; SQLite serialises their writes and each waits up to a few seconds for a lock.
class ClientStore {
public:
    /// The newest schema this build writes; older files are migrated on open.
    static constexpr int SchemaVersion = 1;

    /// Opens (creating if needed) the database in `profileDir`. A file that cannot be opened or
    /// is not a Ferry database is reported and left untouched.
    static Result<std::unique_ptr<ClientStore>> open(const QString& profileDir);

    ~ClientStore();
    ClientStore(const ClientStore&) = delete;
    ClientStore& operator=(const ClientStore&) = delete;

    QString databasePath() const { return m_path; }

    std::optional<AccountInfo> account() const;
    Result<Done> saveAccount(const AccountInfo& account);

    /// Writes a new message from this account to the outbox and returns it once committed.
    Result<StoredMessage> enqueue(const QString& conversationId, const QByteArray& body);

    /// Queued messages, in the order they were written.
    Result<QList<StoredMessage>> outbox() const;

    /// Records the server's acknowledgement of an own message. Acknowledging a message that is
    /// already settled changes nothing and succeeds: acks can arrive twice after a reconnect.
    Result<Done> markSent(const QByteArray& messageId, quint64 seq, qint64 serverTimeMs);

    /// Records that the server refused a queued message for good.
    Result<Done> markFailed(const QByteArray& messageId, const QString& reason);

    /// Applies events and moves the stored offset to `lastOffset` in one transaction. Events at
    /// or below the stored offset are skipped, and a message already stored is never stored again.
    Result<AppliedEvents> applyEvents(const QList<IncomingMessage>& events, quint64 lastOffset);

    /// The offset of the newest event applied; 0 before the first.
    Result<quint64> eventOffset() const;

    /// Every message of a conversation in display order: by server sequence number, then the
    /// queued ones in the order they were written.
    Result<QList<StoredMessage>> history(const QString& conversationId) const;

    /// Conversation ids this device holds messages for, most recently active first.
    Result<QStringList> conversationIds() const;

    std::optional<StoredMessage> message(const QByteArray& messageId) const;

private:
    ClientStore(QString connectionName, QString path);

    QString m_connectionName;
    QString m_path;
};

} // namespace ferry
