#pragma once

#include <QString>
#include <QStringList>
#include <QUrl>

namespace ferry::ctl {

/// ferryctl's exit codes, documented in `ferryctl --help` and docs/ferryctl.md.
enum ExitCode {
    ExitOk = 0,
    ExitError = 1,       ///< the local profile could not be read or written, or bad input
    ExitUsage = 2,       ///< unknown command or missing argument
    ExitTimedOut = 3,    ///< the server could not be reached or did not finish in time
    ExitRefused = 4,     ///< the server refused the credentials, name or client version
    ExitSomeFailed = 5,  ///< synced, but the server refused some messages for good
};

/// What every command gets from the command line.
struct CtlOptions {
    QString profileDir;
    QUrl serverUrl;          ///< empty: the one stored in the profile
    QString deviceName;
    bool json = false;
    int timeoutSeconds = 30;
    QStringList arguments;   ///< the command's own positional arguments
};

int runRegister(const CtlOptions& options);
int runLogin(const CtlOptions& options);
int runSend(const CtlOptions& options);
int runSync(const CtlOptions& options);
int runListen(const CtlOptions& options);
int runHistory(const CtlOptions& options);
int runConversations(const CtlOptions& options);
int runStatus(const CtlOptions& options);

} // namespace ferry::ctl
