#include "server-stub/ServerMetrics.h"

#include <utility>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FERRY_HEAP_FROM_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FERRY_HEAP_FROM_SANITIZER 1
#endif

#if defined(FERRY_HEAP_FROM_SANITIZER)
#include <cstddef>
// The sanitizer's runtime provides this; its header ships with clang but not with g++.
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#elif defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ferry::server {

namespace {
    void counter(QByteArray& out, const char* name, const char* help, quint64 value)
    {
        out += QByteArray("# HELP ") + name + ' ' + help + "\n# TYPE " + name + " counter\n"
            + name + ' ' + QByteArray::number(value) + '\n';
    }

    void gauge(QByteArray& out, const char* name, const char* help, qint64 value)
    {
        out += QByteArray("# HELP ") + name + ' ' + help + "\n# TYPE " + name + " gauge\n" + name
            + ' ' + QByteArray::number(value) + '\n';
    }

    /// A counter with one label, one series per (label value, count).
    void labelledCounter(QByteArray& out, const char* name, const char* help, const char* label,
        const QList<std::pair<QByteArray, qint64>>& series)
    {
        out += QByteArray("# HELP ") + name + ' ' + help + "\n# TYPE " + name + " counter\n";
        for (const auto& [value, count] : series) {
            out += QByteArray(name) + '{' + label + "=\"" + value + "\"} "
                + QByteArray::number(count) + '\n';
        }
    }
}

void LatencyHistogram::observe(double seconds)
{
    for (size_t i = 0; i < Bounds.size(); ++i) {
        if (seconds <= Bounds[i]) {
            ++m_buckets[i];
            break;
        }
    }
    ++m_count;
    m_sum += seconds;
}

QByteArray LatencyHistogram::render(const char* name, const char* help) const
{
    QByteArray out = QByteArray("# HELP ") + name + ' ' + help + "\n# TYPE " + name
        + " histogram\n";
    quint64 cumulative = 0;
    for (size_t i = 0; i < Bounds.size(); ++i) {
        cumulative += m_buckets[i];
        out += QByteArray(name) + "_bucket{le=\"" + QByteArray::number(Bounds[i]) + "\"} "
            + QByteArray::number(cumulative) + '\n';
    }
    out += QByteArray(name) + "_bucket{le=\"+Inf\"} " + QByteArray::number(m_count) + '\n';
    out += QByteArray(name) + "_sum " + QByteArray::number(m_sum, 'g', 9) + '\n';
    out += QByteArray(name) + "_count " + QByteArray::number(m_count) + '\n';
    return out;
}

qint64 heapBytesInUse()
{
#if defined(FERRY_HEAP_FROM_SANITIZER)
    // The sanitizer replaces malloc; glibc's arenas would report only its own few allocations.
    return qint64(__sanitizer_get_current_allocated_bytes());
#elif defined(__GLIBC__)
    // Chunks handed out from the arenas plus blocks that got a mapping of their own.
    const struct mallinfo2 info = mallinfo2();
    return qint64(info.uordblks + info.hblkhd);
#else
    return -1;
#endif
}

QByteArray renderPrometheus(const ServerMetrics& metrics, const MetricsSnapshot& now)
{
    QByteArray out;
    gauge(out, "ferry_heap_bytes_in_use",
        "Bytes allocated and not freed (not the resident size; -1 when unknown).",
        now.heapBytesInUse);
    gauge(out, "ferry_store_cache_bytes",
        "Bytes in the store's page cache (part of the heap; -1 when it has none).",
        now.storeCacheBytes);
    gauge(out, "ferry_store_cache_limit_bytes", "The most the store's page cache may hold.",
        now.storeCacheLimitBytes);
    gauge(out, "ferry_store_wal_pages",
        "Pages in the store's write-ahead log after the latest commit (-1 when it has none).",
        now.storeLogPages);
    gauge(out, "ferry_store_log_entries_waiting",
        "Event-log entries in log_tail, indexed in memory, not yet moved into events (-1 when "
        "the store keeps none); about --log-fold-lag at most, plus one commit's.",
        now.waitingLogEntries);
    gauge(out, "ferry_store_index_entries_waiting",
        "Messages not yet in conversation_index, indexed in memory (-1 when the store keeps "
        "none); about --log-fold-lag at most, plus one commit's.",
        now.waitingIndexEntries);
    QList<std::pair<QByteArray, qint64>> checkpoints;
    for (const auto& [by, count] : { std::pair { "thread", now.checkpointsOnThread },
             std::pair { "commit_finish", now.checkpointsFinishedInCommit },
             std::pair { "commit_limit", now.checkpointsAtLimit } }) {
        if (count >= 0) {
            checkpoints.append({ QByteArray(by), count });
        }
    }
    labelledCounter(out, "ferry_store_checkpoints_total",
        "Checkpoints of the write-ahead log: by the checkpoint thread, by a commit finishing one "
        "so the log can start over, by a commit because the log reached its bound.",
        "by", checkpoints);
    gauge(out, "ferry_connections_open", "WebSocket connections open now.", now.connectionsOpen);
    gauge(out, "ferry_connections_authenticated", "Connections with a device session now.",
        now.connectionsAuthenticated);
    counter(out, "ferry_connections_accepted_total", "WebSocket connections accepted.",
        metrics.connectionsAccepted);
    counter(out, "ferry_frames_in_total", "Frames received from clients.", metrics.framesIn);
    counter(out, "ferry_frames_out_total", "Frames sent to clients.", metrics.framesOut);
    counter(out, "ferry_bytes_in_total", "Frame bytes received.", metrics.bytesIn);
    counter(out, "ferry_bytes_out_total", "Frame bytes sent.", metrics.bytesOut);
    counter(out, "ferry_messages_stored_total", "Messages committed.", metrics.messagesStored);
    counter(out, "ferry_messages_resent_total",
        "Resends of committed messages, answered with the first acknowledgement.",
        metrics.messagesResent);
    counter(out, "ferry_send_commits_total",
        "Transactions that stored SendMessages, each holding every one that arrived meanwhile.",
        metrics.sendCommits);
    counter(out, "ferry_events_sent_total", "Event-log entries sent to devices.",
        metrics.eventsSent);
    gauge(out, "ferry_outgoing_queue_bytes", "Bytes written by the server and not yet sent, "
                                             "summed over connections.",
        now.queuedBytesTotal);
    gauge(out, "ferry_outgoing_queue_bytes_max", "The largest such backlog of one connection.",
        now.queuedBytesMax);

    QList<std::pair<QByteArray, qint64>> errors;
    for (auto it = metrics.errors.constBegin(); it != metrics.errors.constEnd(); ++it) {
        errors.append({ it.key().toUtf8(), qint64(it.value()) });
    }
    labelledCounter(out, "ferry_errors_total", "Error replies sent, by code.", "code", errors);
    QList<std::pair<QByteArray, qint64>> closes;
    for (auto it = metrics.closes.constBegin(); it != metrics.closes.constEnd(); ++it) {
        closes.append({ QByteArray::number(it.key()), qint64(it.value()) });
    }
    labelledCounter(out, "ferry_closes_total", "Connections the server closed, by close code.",
        "code", closes);
    out += metrics.sendToAck.render("ferry_send_to_ack_seconds",
        "Time from a message's arrival to its acknowledgement, the commit included.");
    return out;
}

} // namespace ferry::server
