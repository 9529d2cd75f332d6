#include "server-stub/LogTail.h"

namespace ferry::server {

void LogTail::append(qint64 userId, const Entry& entry)
{
    QList<Entry>& entries = m_byUser[userId];
    Q_ASSERT(entries.isEmpty() || (entries.last().offset < entry.offset
                                      && entries.last().tailId < entry.tailId));
    if (entries.isEmpty()) {
        m_line.emplace_back(entry.tailId, userId);
    }
    entries.append(entry);
    ++m_size;
}

const QList<LogTail::Entry>* LogTail::entriesOf(qint64 userId) const
{
    const auto found = m_byUser.constFind(userId);
    return found == m_byUser.cend() ? nullptr : &found.value();
}

std::optional<qint64> LogTail::newestOffset(qint64 userId) const
{
    const QList<Entry>* entries = entriesOf(userId);
    if (!entries) {
        return std::nullopt;
    }
    return entries->last().offset;
}

std::optional<qint64> LogTail::oldestTailId() const
{
    if (m_line.empty()) {
        return std::nullopt;
    }
    return m_line.front().first;
}

LogTail::UserEntries LogTail::takeOldest()
{
    Q_ASSERT(!m_line.empty());
    const qint64 userId = m_line.front().second;
    m_line.pop_front();
    UserEntries taken { userId, m_byUser.take(userId) };
    m_size -= taken.entries.size();
    return taken;
}

void LogTail::clear()
{
    m_byUser.clear();
    m_line.clear();
    m_size = 0;
}

} // namespace ferry::server
