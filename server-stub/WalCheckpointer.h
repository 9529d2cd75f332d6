#pragma once

#include <QString>

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
/// writer or reader waits for). Should the thread fall far behind (the log past `limitPages`,
/// say a disk far slower than the writer), the writing connection checkpoints inline as SQLite
/// would have, so the log stays bounded.
class WalCheckpointer {
public:
    /// Attaches to `writer`, the connection that commits, which must outlive this object. The
    /// thread opens `path` itself when it first checkpoints.
    WalCheckpointer(sqlite3* writer, QString path, int triggerPages, int limitPages);
    /// Stops the thread, after the checkpoint it may be running, and detaches from `writer`.
    ~WalCheckpointer();
    WalCheckpointer(const WalCheckpointer&) = delete;
    WalCheckpointer& operator=(const WalCheckpointer&) = delete;

    /// Checkpoints the thread completed, and those the writer had to run itself.
    quint64 checkpointsDone() const;
    quint64 inlineCheckpoints() const;

private:
    static int afterCommit(void* self, sqlite3* db, const char* schema, int logPages);
    void run();
    /// One passive checkpoint on the thread's connection; false (and logged) when it failed.
    bool checkpoint();

    sqlite3* m_writer;
    const QString m_path;
    const int m_triggerPages;
    const int m_limitPages;
    sqlite3* m_connection = nullptr; ///< the thread's own, opened on first use
    bool m_overLimit = false; ///< the writer's: it has warned of this crossing already

    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    bool m_requested = false;
    bool m_stopping = false;
    quint64 m_checkpointsDone = 0;
    quint64 m_inlineCheckpoints = 0;
    std::thread m_thread; ///< last: started once everything above exists
};

} // namespace ferry::server
