#include "server-stub/WalCheckpointer.h"

#include "core/Logging.h"

#include <QFile>

#include <chrono>
#include <sqlite3.h>
#include <utility>

namespace ferry::server {

namespace {
    /// After a failed checkpoint (a full disk, say), the thread waits this long before the next
    /// try, instead of trying again at every commit.
    constexpr auto RetryAfterFailure = std::chrono::seconds(1);
}

WalCheckpointer::WalCheckpointer(sqlite3* writer, QString path, int triggerPages, int limitPages)
    : m_writer(writer)
    , m_path(std::move(path))
    , m_triggerPages(triggerPages)
    , m_limitPages(limitPages)
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

quint64 WalCheckpointer::inlineCheckpoints() const
{
    std::lock_guard lock(m_mutex);
    return m_inlineCheckpoints;
}

int WalCheckpointer::afterCommit(void* self, sqlite3* db, const char* schema, int logPages)
{
    auto* checkpointer = static_cast<WalCheckpointer*>(self);
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
    if (logPages >= checkpointer->m_triggerPages) {
        {
            std::lock_guard lock(checkpointer->m_mutex);
            checkpointer->m_requested = true;
        }
        checkpointer->m_wake.notify_one();
    }
    return SQLITE_OK;
}

void WalCheckpointer::run()
{
    std::unique_lock lock(m_mutex);
    while (true) {
        m_wake.wait(lock, [this] { return m_requested || m_stopping; });
        if (m_stopping) {
            return;
        }
        m_requested = false;
        lock.unlock();
        const bool done = checkpoint();
        lock.lock();
        if (done) {
            ++m_checkpointsDone;
        } else if (m_wake.wait_for(lock, RetryAfterFailure, [this] { return m_stopping; })) {
            return;
        }
    }
}

bool WalCheckpointer::checkpoint()
{
    if (!m_connection) {
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
    }
    int logPages = 0;
    int copiedPages = 0;
    const int result = sqlite3_wal_checkpoint_v2(
        m_connection, nullptr, SQLITE_CHECKPOINT_PASSIVE, &logPages, &copiedPages);
    if (result != SQLITE_OK) {
        qCWarning(lcServerDb) << "Checkpoint of the write-ahead log failed:"
                              << sqlite3_errmsg(m_connection);
        return false;
    }
    qCDebug(lcServerDb) << "Checkpoint copied" << copiedPages << "of" << logPages
                        << "pages of the write-ahead log";
    return true;
}

} // namespace ferry::server
