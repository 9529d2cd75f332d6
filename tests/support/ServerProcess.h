#pragma once

#include "core/Result.h"

#include <QProcess>
#include <QString>
#include <QStringList>
#include <QUrl>

#include <memory>

namespace ferry::test {

/// What one run of the server binary to its end did, for options that make it exit.
struct ServerRun {
    int exitCode = -1; ///< -1 when it crashed or had to be killed
    bool timedOut = false;
    QString out;
    QString err;
};

/// Runs the real ferry-server with exactly `arguments` and waits, at most `timeoutMs`, for it
/// to exit; one that is still running then is killed and reported as timed out.
ServerRun runServerBinary(const QStringList& arguments, int timeoutMs = 10'000);

/// The real ferry-server binary, run as a child process on 127.0.0.1 for one test. Its data
/// folder belongs to the test and outlives restarts, so a test can stop, kill and start the
/// server again over the same database. Its log goes to server.log in the data folder, never to
/// a pipe: a pipe nobody drains while the test waits on ferryctl would fill up and stall it.
class ServerProcess {
public:
    /// `extraArguments` follow --listen and --data, for options such as --sync-batch.
    explicit ServerProcess(QString dataDir, QStringList extraArguments = {});
    ~ServerProcess();
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    /// QT_LOGGING_RULES for the server from the next start on, e.g. "ferry.server.debug=true"
    /// for a test that checks what the server did and not only what clients saw.
    void setLoggingRules(const QString& rules) { m_loggingRules = rules; }

    /// Starts the server on `port` (0: one the system picks) and waits, at most 10 s, for the
    /// line that promises it accepts connections. False, with errorString(), if it did not.
    bool start(quint16 port = 0);

    /// Starts again over the same data folder, on the previous port if it is still free and
    /// otherwise on a new one: url() always tells where the server is now.
    bool restart();

    /// Sends SIGTERM and waits for the process to end; true only for a clean exit with code 0.
    bool stop();

    /// Sends SIGTERM and returns at once, for a test whose clients keep talking while the
    /// server shuts down; waitForExit() then tells how it ended.
    void requestStop();

    /// Waits for the process to end; true only for a clean exit with code 0.
    bool waitForExit();

    /// Sends SIGKILL, the way a crash or a power cut ends the server, and waits until it is gone.
    void kill();

    /// Waits, processing this process's events, for the server to end after requestStop(); true
    /// only for a clean exit with code 0. stop() and waitForExit() block this process while the
    /// server shuts down, so a client running in the test's own event loop could not answer the
    /// server's close frames and the server would wait out its grace period; this keeps the
    /// loop turning.
    bool waitForStopped(int timeoutMs = 10'000);

    /// The current value of one counter or gauge on /metrics, or an error saying why not.
    Result<double> metric(const QString& name) const;

    bool isRunning() const;
    QUrl url() const { return m_url; }
    /// http://host:port/metrics as the server announced it; /healthz is beside it.
    QUrl metricsUrl() const { return m_metricsUrl; }
    /// The process id while running, for signals (SIGSTOP) and /proc readings.
    qint64 pid() const;
    quint16 port() const { return static_cast<quint16>(m_url.port(0)); }
    QString dataDir() const { return m_dataDir; }

    /// Why the last start or stop failed, with the end of the server's log.
    QString errorString() const { return m_error; }

    /// Everything the server logged since the data folder was created.
    QString log() const;

private:
    bool fail(const QString& what);

    QString m_dataDir;
    QStringList m_extraArguments;
    QString m_loggingRules;
    std::unique_ptr<QProcess> m_process;
    QUrl m_url;
    QUrl m_metricsUrl;
    QString m_error;
};

} // namespace ferry::test
