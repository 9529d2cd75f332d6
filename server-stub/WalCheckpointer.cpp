#include "server-stub/WalCheckpointer.h"

#include "core/Logging.h"

#include <QFile>

#include <algorithm>
#include <chrono>
#include <sqlite3.h>
#include <utility>

namespace ferry::server {

namespace {
    /// After a failed checkpoint (a full disk, say), the thread waits this long before the next
    /// try, instead of trying again at every commit.
    constexpr auto RetryAfterFailure = std::chrono::seconds(1);
    /// The most pages the writer copies itself to let the log start over: 1 MiB of 4 KiB pages,
    /// a millisecond or two with the database file's sync.
    constexpr int MaxFinishPages = 256;
}

WalCheckpointer::WalCheckpointer(sqlite3* writer, QString path, int triggerPages, int limitPages)
    : m_writer(writer)
    , m_path(std::move(path))
    , m_triggerPages(triggerPages)
    , m_limitPages(limitPages)
    , m_finishPages(std::clamp(triggerPages / 8, 1, MaxFinishPages))
    , m_thread([this] { run(); })
{
    // This hook takes the place of SQLite's automatic checkpoint, which is a hook of the same
    // kind: a connection has one.
    sqlite3_wal_hook(m_writer, &WalCheckpointer::afterCommit, this);
}

WalCheckpointer::~WalCheckpointer()
{
    sqlite3_wal_hook(m_writer, nullptr, nullptr);
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_wake.notify_one();
    m_thread.join();
    // The thread's connection closes first, so that the writer's is the last one and checkpoints
    // the log in full when it closes.
    if (m_connection) {
        sqlite3_close_v2(m_connection);
    }
}

quint64 WalCheckpointer::checkpointsDone() const
{
    std::lock_guard lock(m_mutex);
    return m_checkpointsDone;
}

quint64 WalCheckpointer::finishingCheckpoints() const
{
    std::lock_guard lock(m_mutex);
    return m_finishingCheckpoints;
}

quint64 WalCheckpointer::inlineCheckpoints() const
{
    std::lock_guard lock(m_mutex);
    return m_inlineCheckpoints;
}

int WalCheckpointer::afterCommit(void* self, sqlite3* db, const char* schema, int logPages)
{
    auto* checkpointer = static_cast<WalCheckpointer*>(self);
    const int previousLogPages
        = checkpointer->m_logPagesAtLastCommit.exchange(logPages, std::memory_order_relaxed);
    if (logPages < previousLogPages) {
        checkpointer->m_logGeneration.fetch_add(1, std::memory_order_relaxed);
    }
    if (logPages >= checkpointer->m_limitPages) {
        // The thread is far behind: bound the log here, as SQLite's own checkpoint would.
        if (!std::exchange(checkpointer->m_overLimit, true)) {
            qCWarning(lcServerDb) << "The write-ahead log reached" << logPages
                                  << "pages; checkpointing in the commit until it is shorter";
        }
        sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        std::lock_guard lock(checkpointer->m_mutex);
        ++checkpointer->m_inlineCheckpoints;
        return SQLITE_OK;
    }
    checkpointer->m_overLimit = false;
    if (logPages < checkpointer->m_triggerPages) {
        return SQLITE_OK;
    }
    // The log starts over only when a write transaction begins with all of it copied; with
    // commits back to back, the thread's checkpoint never copies the frames the writer added
    // while it ran, and the log would only grow. Once the thread has copied all but a few, the
    // writer copies the rest itself, between two of its transactions: a short copy.
    // A checkpoint the thread ran just before the log started over reports the old log's length
    // as copied; only a report from the log as it is now counts.
    const quint64 report = checkpointer->m_backfilled.load(std::memory_order_relaxed);
    const bool currentLog
        = quint32(report >> 32) == checkpointer->m_logGeneration.load(std::memory_order_relaxed);
    const int backfilled = int(report & 0xffffffffU);
    if (currentLog && backfilled > 0 && backfilled <= logPages
        && logPages - backfilled <= checkpointer->m_finishPages) {
        // Not here, inside the commit: the copy ends with a sync of the database file, and
        // under a steady stream of writes to the log that sync took up to 15 ms now and then,
        // held the answers of this commit's messages all that time, and the next batch grew.
        checkpointer->m_backfilled.store(0, std::memory_order_relaxed);
        checkpointer->m_finishWanted = true;
        return SQLITE_OK;
    }
    if (checkpointer->m_finishWanted) {
        return SQLITE_OK; // the writer copies the rest before its next transaction
    }
    {
        std::lock_guard lock(checkpointer->m_mutex);
        checkpointer->m_requested = true;
    }
    checkpointer->m_wake.notify_one();
    return SQLITE_OK;
}

void WalCheckpointer::finishBeforeWrite()
{
    if (!std::exchange(m_finishWanted, false)) {
        return;
    }
    sqlite3_wal_checkpoint_v2(m_writer, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    std::lock_guard lock(m_mutex);
    ++m_finishingCheckpoints;
}

void WalCheckpointer::run()
{
    // Opened now rather than at the first checkpoint: what a connection costs (SQLite's
    // lookaside, about 120 KiB) then belongs to the server's start, not to a moment in the middle
    // of its traffic, where it would look like growth. Should this fail, each checkpoint tries
    // again.
    openConnection();
    std::unique_lock lock(m_mutex);
    while (true) {
        m_wake.wait(lock, [this] { return m_requested || m_stopping; });
        if (m_stopping) {
            return;
        }
        m_requested = false;
        lock.unlock();
        const Outcome outcome = checkpoint();
        lock.lock();
        if (outcome == Outcome::Done) {
            ++m_checkpointsDone;
        } else if (outcome == Outcome::Failed
            && m_wake.wait_for(lock, RetryAfterFailure, [this] { return m_stopping; })) {
            return;
        }
    }
}

bool WalCheckpointer::openConnection()
{
    // Read-write, never create: the writer made the file and keeps it.
    const int opened = sqlite3_open_v2(
        QFile::encodeName(m_path).constData(), &m_connection, SQLITE_OPEN_READWRITE, nullptr);
    if (opened != SQLITE_OK) {
        qCWarning(lcServerDb) << "The checkpoint thread could not open" << m_path << ":"
                              << sqlite3_errstr(opened);
        sqlite3_close_v2(m_connection);
        m_connection = nullptr;
        return false;
    }
    // The writer holds a lock for a moment while it starts the log over.
    sqlite3_busy_timeout(m_connection, 1000);
    // A connection learns that the file is in WAL mode, and opens the log, only when it first
    // reads the database; until then a checkpoint on it succeeds and does nothing.
    if (sqlite3_exec(m_connection, "PRAGMA schema_version", nullptr, nullptr, nullptr)
        != SQLITE_OK) {
        qCWarning(lcServerDb) << "The checkpoint thread could not read" << m_path << ":"
                              << sqlite3_errmsg(m_connection);
        sqlite3_close_v2(m_connection);
        m_connection = nullptr;
        return false;
    }
    return true;
}

WalCheckpointer::Outcome WalCheckpointer::checkpoint()
{
    if (!m_connection && !openConnection()) {
        return Outcome::Failed;
    }
    int logPages = 0;
    int copiedPages = 0;
    const quint32 generation = m_logGeneration.load(std::memory_order_relaxed);
    const int result = sqlite3_wal_checkpoint_v2(
        m_connection, nullptr, SQLITE_CHECKPOINT_PASSIVE, &logPages, &copiedPages);
    if (result == SQLITE_BUSY) {
        // The writer is finishing a checkpoint of its own (afterCommit): nothing is wrong, and
        // the next commit past the trigger asks again.
        qCDebug(lcServerDb) << "Checkpoint skipped: another one is running";
        return Outcome::Busy;
    }
    if (result != SQLITE_OK) {
        qCWarning(lcServerDb) << "Checkpoint of the write-ahead log failed:"
                              << sqlite3_errmsg(m_connection);
        return Outcome::Failed;
    }
    if (logPages < 0) {
        // SQLite's answer for a connection that has no log open: nothing was copied.
        qCWarning(lcServerDb) << "Checkpoint of the write-ahead log found no log in" << m_path;
        return Outcome::Failed;
    }
    qCDebug(lcServerDb) << "Checkpoint copied" << copiedPages << "of" << logPages
                        << "pages of the write-ahead log";
    m_backfilled.store(
        (quint64(generation) << 32) | quint32(copiedPages), std::memory_order_relaxed);
    return Outcome::Done;
}

} // namespace ferry::server
