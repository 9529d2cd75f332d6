#pragma once

#include <QList>
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
    ExitRefused = 4,     ///< the server refused: credentials, name, version, removed device
    ExitSomeFailed = 5,  ///< synced, but the server refused some messages or a request
};

/// What every command gets from the command line.
struct CtlOptions {
    QString profileDir;
    QList<QUrl> serverUrls;  ///< empty: the one stored in the profile
    QString deviceName;
    bool json = false;
    bool sendReceipts = true;
    bool verbose = false;
    int timeoutSeconds = 30;
    QStringList members;     ///< group create --members
    qint64 before = -1;      ///< history --before SEQ
    int limit = -1;          ///< history --limit N
    qint64 upTo = 0;         ///< read --up-to SEQ
    bool fetchOlder = false; ///< history --fetch-older
    QStringList arguments;   ///< the command's own positional arguments
};

// Accounts and devices (AccountCommands.cpp).
int runRegister(const CtlOptions& options);
int runLogin(const CtlOptions& options);
int runDevices(const CtlOptions& options);

// Messages (MessageCommands.cpp).
int runSend(const CtlOptions& options);
int runSync(const CtlOptions& options);
int runListen(const CtlOptions& options);
int runOutbox(const CtlOptions& options);
int runRead(const CtlOptions& options);

// Conversations and the profile (ConversationCommands.cpp).
int runHistory(const CtlOptions& options);
int runConversations(const CtlOptions& options);
int runGroup(const CtlOptions& options);
int runStatus(const CtlOptions& options);
int runRepair(const CtlOptions& options);

} // namespace ferry::ctl
