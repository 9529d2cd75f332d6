#pragma once

#include <QByteArray>
#include <QHash>
#include <QList>

#include <deque>
#include <optional>

namespace ferry::server {

/// The newest entries of a keyed index, in memory, while they wait to be moved ("folded") into
/// that index in bulk.
///
/// SQLite keeps an index keyed by (user, offset) or (conversation, seq) as a B-tree, so every
/// key's newest entries sit on a leaf page of their own, and a commit that adds entries for a
/// few hundred keys rewrites a few hundred pages: the largest part of a message's cost. The
/// store therefore first writes new entries where one commit's entries share a page (the rows
/// of an append-only table, in the order written), and moves a key's entries into the index only
/// once several have gathered, so that its page there is written once for many entries; the key
/// whose entries have waited longest goes first. This class knows which entries are not folded
/// yet, per key in the order written, and which key comes next. It holds no SQL: the store
/// writes what it says.
///
/// `Entry::row` is the entry's row in the append-only table; it grows with every entry.
template <typename Key, typename Entry>
class FoldQueue {
public:
    /// Adds the key's next entry; its row is above those of all entries added before.
    void append(const Key& key, const Entry& entry)
    {
        QList<Entry>& entries = m_byKey[key];
        Q_ASSERT(entries.isEmpty() || entries.last().row < entry.row);
        if (entries.isEmpty()) {
            m_line.emplace_back(entry.row, key);
        }
        entries.append(entry);
        ++m_size;
    }

    /// The key's entries not folded yet, oldest first, or nullptr when there are none.
    const QList<Entry>* entriesOf(const Key& key) const
    {
        const auto found = m_byKey.constFind(key);
        return found == m_byKey.cend() ? nullptr : &found.value();
    }

    /// Entries not folded yet, all keys together.
    qsizetype size() const { return m_size; }

    /// The oldest row not folded yet; every entry in a row before it has been folded.
    std::optional<qint64> oldestRow() const
    {
        if (m_line.empty()) {
            return std::nullopt;
        }
        return m_line.front().first;
    }

    struct KeyEntries {
        Key key;
        QList<Entry> entries;
    };

    /// Takes all the entries of the key whose oldest entry has waited longest. Not empty.
    KeyEntries takeOldest()
    {
        Q_ASSERT(!m_line.empty());
        const Key key = m_line.front().second;
        m_line.pop_front();
        KeyEntries taken { key, m_byKey.take(key) };
        m_size -= taken.entries.size();
        return taken;
    }

    void clear()
    {
        m_byKey.clear();
        m_line.clear();
        m_size = 0;
    }

private:
    QHash<Key, QList<Entry>> m_byKey;
    /// (row of the key's oldest entry, key), one per key with entries, oldest first: a key gets
    /// in line with its first entry after a fold, behind every key already there.
    std::deque<std::pair<qint64, Key>> m_line;
    qsizetype m_size = 0;
};

/// An entry of a user's event log waiting in `log_tail` to be folded into `events`.
struct LogTailEntry {
    qint64 row = 0; ///< its row in `log_tail`
    qint64 offset = 0; ///< its offset in the user's log
    int kind = 0;
    qint64 ref = 0;
};
/// Per user id.
using LogTail = FoldQueue<qint64, LogTailEntry>;

/// A message not yet in `conversation_index`: the `messages` table itself holds the waiting
/// entries, one row per message in the order stored.
struct SeqTailEntry {
    qint64 row = 0; ///< the message's row in `messages`
    qint64 seq = 0; ///< its seq in the conversation
};
/// Per conversation id (UTF-8).
using SeqTail = FoldQueue<QByteArray, SeqTailEntry>;

} // namespace ferry::server
