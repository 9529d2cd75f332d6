#pragma once

#include "core/Result.h"

#include <QByteArray>
#include <QJsonObject>
#include <QList>
#include <QProcess>
#include <QString>
#include <QStringList>
#include <QUrl>

#include <memory>

namespace ferry::test {

/// What one ferryctl run did.
struct CtlRun {
    QString command; ///< the profile's folder name and the arguments, for describe()
    int exitCode = -1; ///< -1 when it crashed or had to be killed
    bool timedOut = false;
    QString out;
    QString err;

    bool ok() const { return exitCode == 0; }
    /// One line for a failed check: the command, its exit code and what it said on stderr.
    QString describe() const;
};

/// The real ferryctl binary working on one device profile. The password travels in
/// FERRY_PASSWORD in the child's environment, never on a command line where `ps` would show it.
/// Every run is bounded: a hung ferryctl is killed and reported as timed out.
class Ctl {
public:
    static QString defaultPassword() { return QStringLiteral("correct horse battery staple"); }

    explicit Ctl(QString profileDir, QUrl serverUrl = {});

    QString profileDir() const { return m_profileDir; }

    /// The server every run names with --server. Set after each server (re)start, so that a
    /// server that had to move to a new port is still found.
    void setServerUrl(const QUrl& url) { m_serverUrl = url; }
    void setPassword(const QString& password) { m_password = password; }
    /// Options given to every run, before the command's own (for example --no-receipts).
    void setExtraArguments(const QStringList& arguments) { m_extraArguments = arguments; }

    /// How a run waits for ferryctl to end: true once it has, false if `timeoutMs` passed first.
    using WaitForExit = bool (*)(QProcess& process, int timeoutMs);

    /// Runs `ferryctl --profile DIR [--server URL] ARGUMENTS` to its end, at most `timeoutMs`.
    /// The wait blocks this process unless `waitForExit` says otherwise: a test that serves
    /// ferryctl from its own event loop (a FaultProxy between it and the server) passes one that
    /// keeps the loop turning.
    CtlRun run(const QStringList& arguments, int timeoutMs = 60'000,
        WaitForExit waitForExit = nullptr) const;

    /// Starts ferryctl and returns at once, for tests that kill it part way.
    std::unique_ptr<QProcess> start(const QStringList& arguments) const;

    CtlRun registerUser(const QString& user, const QString& deviceName) const;
    CtlRun login(const QString& user, const QString& deviceName) const;
    CtlRun send(const QString& target, const QString& text) const;
    /// `sync --timeout S`, with the process itself allowed a little longer than S.
    CtlRun sync(int timeoutSeconds = 20) const;

    /// `history TARGET --json`, one object per message in display order.
    Result<QList<QJsonObject>> history(const QString& target) const;
    /// `status --json`.
    Result<QJsonObject> status() const;

private:
    QStringList fullArguments(const QStringList& arguments) const;

    QString m_profileDir;
    QUrl m_serverUrl;
    QString m_password = defaultPassword();
    QStringList m_extraArguments;
};

/// The values of one field across messages from Ctl::history(), as strings ("" for null).
QStringList fieldOf(const QList<QJsonObject>& messages, const QString& key);

/// Messages from Ctl::history() as compact JSON, one per line, for a failed check's message.
QString describeHistory(const QList<QJsonObject>& messages);

/// The seq field of each message, -1 where it is null (a queued message).
QList<qint64> seqsOf(const QList<QJsonObject>& messages);

} // namespace ferry::test
