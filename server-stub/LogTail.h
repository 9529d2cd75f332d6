#pragma once

#include <QHash>
#include <QList>

#include <deque>
#include <optional>

namespace ferry::server {

/// The newest entries of the users' event logs, in memory: the index of the store's `log_tail`
/// table, which holds them durably in the order they were written.
///
/// Each log entry used to go straight into the `events` table, whose key (user, offset) puts
/// every user's newest entries on a page of their own; a commit of a batch then rewrote about
/// one page per user it touched, the largest part of a message's cost. Appended to `log_tail`
/// instead, the entries of a whole batch share its last page. The store moves ("folds") each
/// user's entries into `events` once they have waited long enough for several to gather, so that
/// the user's page there is written once for many entries; the user whose entries have waited
/// longest goes first. This class knows which entries are not folded yet, per user in offset
/// order, and which user comes next. It holds no SQL: SqliteServerStore writes what it says.
class LogTail {
public:
    struct Entry {
        qint64 tailId = 0; ///< the entry's row in `log_tail`
        qint64 offset = 0; ///< its offset in the user's log
        int kind = 0;
        qint64 ref = 0;
    };

    /// Adds the user's next entry; its tailId and offset are above all the user's earlier ones.
    void append(qint64 userId, const Entry& entry);
    /// The user's entries not folded yet, oldest first, or nullptr when there are none.
    const QList<Entry>* entriesOf(qint64 userId) const;
    /// The newest offset among the user's entries not folded yet.
    std::optional<qint64> newestOffset(qint64 userId) const;
    /// Entries not folded yet, all users together.
    qsizetype size() const { return m_size; }
    /// The oldest row of `log_tail` that is not folded yet; every row before it may go.
    std::optional<qint64> oldestTailId() const;

    struct UserEntries {
        qint64 userId = 0;
        QList<Entry> entries;
    };
    /// Takes all the entries of the user whose oldest entry has waited longest. Not empty.
    UserEntries takeOldest();

    void clear();

private:
    QHash<qint64, QList<Entry>> m_byUser;
    /// (tailId of the user's oldest entry, user), one per user with entries, oldest first: a
    /// user gets in line with its first entry after a fold, behind everyone already there.
    std::deque<std::pair<qint64, qint64>> m_line;
    qsizetype m_size = 0;
};

} // namespace ferry::server
