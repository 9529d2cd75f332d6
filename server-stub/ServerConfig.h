#pragma once

#include "core/Result.h"
#include "server-stub/Credentials.h"

#include <QHostAddress>
#include <QString>

#include <chrono>

class QCoreApplication;

namespace ferry::server {

/// Everything an operator can set, with defaults that suit a laptop. Each field has a
/// command-line flag and a key of the same name in the --config file; docs/server.md lists them.
struct ServerConfig {
    QHostAddress address = QHostAddress::LocalHost;
    quint16 port = 8765;            ///< 0 lets the system pick a free port
    QHostAddress httpAddress = QHostAddress::LocalHost;
    quint16 httpPort = 0;           ///< /healthz and /metrics; 0 picks a free port
    bool httpEnabled = true;
    QString dataDir;

    int syncBatchLimit = 2000;      ///< most events in one sync batch
    int walCheckpointPages = 1024; ///< write-ahead log pages that start a checkpoint
    /// Event-log entries waiting in log_tail, and messages waiting for conversation_index,
    /// before the oldest move.
    int logFoldLag = 16384;
    /// Group commits of messages start at most this often (0: one per pass of the event loop).
    std::chrono::microseconds commitInterval { 1000 };
    qsizetype maxFrameBytes = 64 * 1024;
    qsizetype maxBodyBytes = 60 * 1024;
    qsizetype maxQueuedBytes = 4 * 1024 * 1024; ///< a connection's unsent output before 4002

    std::chrono::milliseconds unauthenticatedTimeout { 10'000 };
    std::chrono::milliseconds heartbeatInterval { 30'000 }; ///< ping a connection quiet this long
    std::chrono::milliseconds heartbeatTimeout { 75'000 };  ///< close one quiet this long
    std::chrono::seconds sessionLifetime { 24 * 3600 };

    double requestRate = 100.0;     ///< requests per second a connection may sustain
    double requestBurst = 1000.0;   ///< and in a burst (an offline backlog drains in one)

    /// "epoll" (ours, the default) or "qt" (Qt's own, for comparison). Chosen before the
    /// application object exists, so only the flag or FERRY_EVENT_DISPATCHER can set it.
    QString eventDispatcher = QStringLiteral("epoll");

    /// Argon2id cost of new password hashes; Minimal only for tests and benchmarks.
    Credentials::PasswordCost passwordCost = Credentials::PasswordCost::Interactive;
};

/// The event dispatcher named on the command line (--event-dispatcher=NAME or
/// --event-dispatcher NAME) or else in FERRY_EVENT_DISPATCHER, "epoll" when neither is given.
/// Read from argv because it must be installed before QCoreApplication is constructed.
QString eventDispatcherFromArguments(int argc, char* argv[]);

/// Reads the command line (and the --config file it may name) into a ServerConfig. Prints help
/// or the version and exits for --help and --version, as QCommandLineParser does.
Result<ServerConfig> parseServerConfig(const QCoreApplication& app);

} // namespace ferry::server
