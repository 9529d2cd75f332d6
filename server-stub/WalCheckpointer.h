#pragma once

#include <QString>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

struct sqlite3;

namespace ferry::server {

/// Copies a SQLite database's write-ahead log back into the database file on a thread and a
/// connection of its own, so that the connection that commits never waits for a checkpoint.
///
/// SQLite's own automatic checkpoint runs inside the commit that crosses its threshold: on the
/// server that is the protocol thread, and every few thousand messages one commit took 20-35 ms
/// instead of under 1 ms, holding every message behind it. Attached to the writing connection,
/// this class replaces that: the commit only notes how long the log has grown and, past
/// `triggerPages`, wakes the thread, which runs a passive checkpoint (it takes no lock that a
/// writer or reader waits for).
///
/// SQLite starts the log over only at a write transaction that begins with every frame of it
/// copied. Under a steady stream of commits that never happens by itself: each of the thread's
/// checkpoints misses the frames committed while it ran. So once the thread has copied all but
/// a few pages (an eighth of the trigger, at most 256), the writer copies those itself before
/// its next transaction (finishBeforeWrite()), a short passive checkpoint between two
/// transactions, and the log starts over at that transaction. Not inside the commit that found
/// the log ready: the answers to that commit's messages need not wait for the copy.
/// Should the thread fall far behind (the log past `limitPages`, say a disk far slower than the
/// writer), the writing connection checkpoints inline as SQLite would have, so the log stays
/// bounded.
class WalCheckpointer {
public:
    /// Attaches to `writer`, the connection that commits, which must outlive this object. The
    /// thread opens `path` itself as it starts.
    WalCheckpointer(sqlite3* writer, QString path, int triggerPages, int limitPages);
    /// Stops the thread, after the checkpoint it may be running, and detaches from `writer`.
    ~WalCheckpointer();
    WalCheckpointer(const WalCheckpointer&) = delete;
    WalCheckpointer& operator=(const WalCheckpointer&) = delete;

    /// Copies the last pages of the log if a commit found the thread's checkpoint nearly done,
    /// so that the next transaction starts the log over. The writer calls it before it begins
    /// a write transaction, on its own thread; between two others it is a cheap no-op. Should a
    /// writer never call it, the log grows to `limitPages`, where commits checkpoint themselves.
    void finishBeforeWrite();

    /// Checkpoints the thread completed; short ones the writer ran to let the log start over;
    /// and those the writer had to run because the log reached `limitPages`.
    quint64 checkpointsDone() const;
    quint64 finishingCheckpoints() const;
    quint64 inlineCheckpoints() const;
    /// How long the log was after the writer's latest commit, in pages (0 before any): it
    /// starts over after a checkpoint has copied all of it.
    int logPagesAtLastCommit() const
    {
        return m_logPagesAtLastCommit.load(std::memory_order_relaxed);
    }

private:
    static int afterCommit(void* self, sqlite3* db, const char* schema, int logPages);
    void run();
    /// Opens the thread's connection to `m_path`; false (and logged) when it cannot.
    bool openConnection();
    enum class Outcome { Done, Busy, Failed };
    /// One passive checkpoint on the thread's connection: Done, Busy when another checkpoint was
    /// running, or Failed (and logged).
    Outcome checkpoint();

    sqlite3* m_writer;
    const QString m_path;
    const int m_triggerPages;
    const int m_limitPages;
    /// The writer finishes the thread's checkpoint when at most this many pages are left.
    const int m_finishPages;
    sqlite3* m_connection = nullptr; ///< the thread's own
    bool m_overLimit = false; ///< the writer's: it has warned of this crossing already
    bool m_finishWanted = false; ///< the writer's: finishBeforeWrite() has a copy to make
    std::atomic<int> m_logPagesAtLastCommit { 0 };
    /// How many times the log has started over, as the writer saw it (a commit that left the
    /// log shorter than the one before). Written by the writer only.
    std::atomic<quint32> m_logGeneration { 0 };
    /// What the thread's latest checkpoint left copied: the generation it began in (high 32
    /// bits) and the pages of the log copied (low 32); 0 once the writer has finished it. A
    /// count from an earlier generation says nothing about the log as it is now: taken for the
    /// current one, it once had the writer copy a whole fresh log inside a commit (20-30 ms).
    std::atomic<quint64> m_backfilled { 0 };

    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    bool m_requested = false;
    bool m_stopping = false;
    quint64 m_checkpointsDone = 0;
    quint64 m_finishingCheckpoints = 0;
    quint64 m_inlineCheckpoints = 0;
    std::thread m_thread; ///< last: started once everything above exists
};

} // namespace ferry::server
