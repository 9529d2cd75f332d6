#pragma once

#include <QByteArray>
#include <QMap>
#include <QString>

#include <array>

namespace ferry::server {

/// A Prometheus-style histogram with fixed bucket bounds, in seconds.
class LatencyHistogram {
public:
    static constexpr std::array<double, 12> Bounds
        = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5 };

    void observe(double seconds);
    /// The histogram in Prometheus text format under `name`.
    QByteArray render(const char* name, const char* help) const;

private:
    std::array<quint64, Bounds.size()> m_buckets {}; ///< not cumulative; summed when rendered
    quint64 m_count = 0;
    double m_sum = 0;
};

/// The server's counters. Plain numbers, updated on the protocol thread, read by the HTTP
/// endpoint on the same thread; gauges that describe the present (open connections, queue
/// depths) are filled in by the server when a scrape asks for them.
struct ServerMetrics {
    quint64 connectionsAccepted = 0;
    quint64 framesIn = 0;
    quint64 framesOut = 0;
    quint64 bytesIn = 0;
    quint64 bytesOut = 0;
    quint64 messagesStored = 0;
    quint64 messagesResent = 0; ///< resends answered from what was stored
    quint64 sendCommits = 0;    ///< group commits of SendMessages; messages / commits = batch size
    quint64 eventsSent = 0;
    QMap<QString, quint64> errors; ///< by protocol error code name
    QMap<int, quint64> closes;     ///< by close code the server sent
    LatencyHistogram sendToAck;    ///< from a SendMessage frame's arrival to its SendAck

    void countError(const QString& kind) { ++errors[kind]; }
    void countClose(int code) { ++closes[code]; }
};

/// What is true right now, gathered by the server for one scrape.
struct MetricsSnapshot {
    qint64 connectionsOpen = 0;
    qint64 connectionsAuthenticated = 0;
    qint64 queuedBytesTotal = 0;
    qint64 queuedBytesMax = 0;
    qint64 heapBytesInUse = 0; ///< see heapBytesInUse()
    qint64 storeCacheBytes = 0;
    qint64 storeCacheLimitBytes = 0;
    qint64 storeLogPages = -1;
    qint64 checkpointsOnThread = -1;
    qint64 checkpointsFinishedInCommit = -1;
    qint64 checkpointsAtLimit = -1;
    qint64 waitingLogEntries = -1;
    qint64 waitingIndexEntries = -1;
};

/// Bytes the allocator has handed out and not yet been given back, -1 where it cannot say.
/// Unlike the resident size, this does not move when the kernel maps in pages of buffers that
/// were reserved long ago, nor when freed memory stays with the allocator: it is what grows when
/// something is kept that should not be.
qint64 heapBytesInUse();

/// Renders counters and a snapshot in the Prometheus text exposition format.
QByteArray renderPrometheus(const ServerMetrics& metrics, const MetricsSnapshot& now);

} // namespace ferry::server
