#include "app/ferryctl/CtlSupport.h"

#include "app/ferryctl/MessageFormat.h"
#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "core/UnixSignalWatcher.h"
#include "sync/SyncEngine.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QJsonDocument>
#include <QMetaEnum>
#include <QStorageInfo>
#include <QTimer>

#include <cstdio>
#include <termios.h>
#include <unistd.h>

namespace ferry::ctl {

void printOut(const QString& text)
{
    std::fputs(qPrintable(text + u'\n'), stdout);
    std::fflush(stdout);
}

void printError(const QString& text)
{
    std::fputs(qPrintable(u"ferryctl: " + text + u'\n'), stderr);
}

void printJson(const QJsonObject& object)
{
    printOut(QString::fromUtf8(QJsonDocument(object).toJson(QJsonDocument::Compact)));
}

void printMessage(const StoredMessage& message, bool json)
{
    if (json) {
        printJson(messageToJson(message));
    } else {
        printOut(messageToLine(message));
    }
}

namespace {
    /// Moves a damaged database aside (never deletes it), carries over what can be read, and
    /// says what happened. False if even that failed.
    bool recoverProfile(const CtlOptions& options)
    {
        Result<RecoveryReport> recovered = ClientStore::recover(options.profileDir);
        if (!recovered) {
            printError(u"could not recover it: " + recovered.error().message);
            return false;
        }
        printError(u"the damaged files were kept in " + recovered->damagedCopy);
        printError(u"recovered: " + QString::number(recovered->messagesRecovered)
            + u" queued message(s), "
            + (recovered->accountRecovered ? QStringLiteral("the account")
                                           : QStringLiteral("not the account (log in again)"))
            + u"; everything else is fetched from the server at the next sync");
        return true;
    }
}

std::unique_ptr<ClientStore> openStore(const CtlOptions& options, int* exitCode)
{
    Result<std::unique_ptr<ClientStore>> store = ClientStore::open(options.profileDir);
    if (store) {
        return std::move(store.value());
    }
    if (exitCode) {
        *exitCode = ExitError;
    }
    const Error& error = store.error();
    if (error.kind == u"busy") {
        printError(u"the profile is locked by another process; try again when it is done ("
            + error.message + u')');
        return nullptr;
    }
    if (error.kind == u"read-only") {
        printError(u"the profile cannot be written (read-only file or folder); nothing was "
                   u"changed (" + error.message + u')');
        return nullptr;
    }
    // SQLite reports a full disk as such on a write, but as an I/O error when it cannot even
    // set up its shared-memory file; the free space tells the two apart for the user.
    const bool diskFull = error.kind == u"disk-full"
        || ((error.kind == u"io-error" || error.kind == u"cannot-open")
            && QStorageInfo(options.profileDir).bytesAvailable() < 64 * 1024);
    if (diskFull) {
        printError(u"the disk holding the profile is full; nothing was lost, free some space and "
                   u"try again (" + error.message + u')');
        return nullptr;
    }
    if (error.kind != u"damaged") {
        printError(u"could not open the profile: " + error.message);
        return nullptr;
    }

    printError(u"the profile database is damaged: " + error.message);
    if (!recoverProfile(options)) {
        return nullptr;
    }
    Result<std::unique_ptr<ClientStore>> fresh = ClientStore::open(options.profileDir);
    if (!fresh) {
        printError(u"could not open the recovered profile: " + fresh.error().message);
        return nullptr;
    }
    return std::move(fresh.value());
}

int failOnStore(const CtlOptions& options, std::unique_ptr<ClientStore>& store, const Error& error,
    const QString& what)
{
    printError((what.isEmpty() ? QString() : what + u": ") + error.message);
    if (error.kind == u"damaged") {
        // The damage showed only now, on a page the open did not read. The store is closed
        // before its files are moved.
        store.reset();
        printError(QStringLiteral("the profile database is damaged; setting it aside"));
        if (recoverProfile(options)) {
            printError(QStringLiteral("run the command again"));
        }
    }
    return error.kind == u"not-found" ? int(ExitUsage) : int(ExitError);
}

QByteArray readPassword()
{
    const QByteArray fromEnvironment = qgetenv("FERRY_PASSWORD");
    if (!fromEnvironment.isEmpty()) {
        return fromEnvironment;
    }
    const bool terminal = ::isatty(STDIN_FILENO);
    termios saved {};
    if (terminal) {
        std::fputs("Password: ", stderr);
        ::tcgetattr(STDIN_FILENO, &saved);
        termios quiet = saved;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    QByteArray line;
    for (int c = std::getchar(); c != EOF && c != '\n'; c = std::getchar()) {
        line.append(static_cast<char>(c));
    }
    if (terminal) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        std::fputs("\n", stderr);
    }
    if (line.endsWith('\r')) {
        line.chop(1);
    }
    return line;
}

QString resolveConversation(const ClientStore& store, const QString& target)
{
    if (target.contains(u':')) {
        return target;
    }
    const std::optional<AccountInfo> self = store.account();
    if (!self || !isValidUserName(target) || target == self->userName) {
        return {};
    }
    return directConversationId(self->userName, target);
}

std::unique_ptr<SyncEngine> makeEngine(ClientStore* store, const CtlOptions& options)
{
    SyncEngine::Settings settings;
    settings.sendDeliveryReceipts = options.sendReceipts;
    auto engine = std::make_unique<SyncEngine>(store, settings);
    if (!options.serverUrls.isEmpty()) {
        engine->setServerUrls(options.serverUrls);
    }
    // Recorded so that `ferryctl status`, run beside a `listen`, can say what the engine does.
    QObject::connect(engine.get(), &SyncEngine::stateChanged, engine.get(),
        [store, raw = engine.get()](SyncEngine::State state) {
            EngineStatus status;
            status.state = QString::fromLatin1(
                QMetaEnum::fromType<SyncEngine::State>().valueToKey(static_cast<int>(state)));
            status.nextRetryMs = state == SyncEngine::State::WaitingToRetry
                ? raw->nextRetryAt().toMSecsSinceEpoch()
                : 0;
            status.lastError = raw->lastLinkError();
            status.pid = QCoreApplication::applicationPid();
            status.updatedMs = QDateTime::currentMSecsSinceEpoch();
            // Best effort: a status that could not be written is no reason to stop syncing.
            [[maybe_unused]] auto saved = store->saveEngineStatus(status);
        });
    return engine;
}

int runEngine(SyncEngine& engine, const CtlOptions& options, bool endWhenIdle,
    const std::function<void()>& start)
{
    int refusedMessages = 0;
    QTimer timeout;
    timeout.setSingleShot(true);

    QObject::connect(&engine, &SyncEngine::stoppedWithError,
        [&](const QString& kind, const QString& message) {
            const bool local = kind == u"storage" || kind == u"bad-url" || kind == u"no-account";
            printError(local ? message : u"the server refused: " + message);
            QCoreApplication::exit(local ? ExitError : ExitRefused);
        });
    QObject::connect(&engine, &SyncEngine::storageFailed, [&](const QString& message) {
        printError(u"could not write the local store: " + message);
        QCoreApplication::exit(ExitError);
    });
    QObject::connect(&engine, &SyncEngine::messageFailed,
        [&](const QByteArray& id, const QString& reason) {
            ++refusedMessages;
            printError(u"message " + MessageId::fromBytes(id)->toString() + u" was refused: "
                + reason);
        });
    if (endWhenIdle) {
        QObject::connect(&engine, &SyncEngine::idle, [&] {
            QCoreApplication::exit(refusedMessages > 0 ? ExitSomeFailed : ExitOk);
        });
    }
    if (options.timeoutSeconds > 0) {
        QObject::connect(&timeout, &QTimer::timeout, [&] {
            const char* state = QMetaEnum::fromType<SyncEngine::State>().valueToKey(
                static_cast<int>(engine.state()));
            const QString why = engine.lastLinkError().isEmpty()
                ? QString(u"the engine is " + QString::fromLatin1(state))
                : u"could not sync with " + engine.serverUrl().toString() + u" ("
                    + engine.lastLinkError() + u')';
            printError(u"gave up after " + QString::number(options.timeoutSeconds) + u" s: " + why
                + u"; " + QString::number(engine.pendingCount()) + u" message(s) still queued");
            QCoreApplication::exit(ExitTimedOut);
        });
        timeout.start(options.timeoutSeconds * 1000);
    }

    // SIGTERM and SIGINT end a command cleanly; everything it stored is already committed.
    UnixSignalWatcher signalWatcher;
    QObject::connect(&signalWatcher, &UnixSignalWatcher::terminationRequested,
        [] { QCoreApplication::exit(ExitOk); });

    // Started from the event loop, so that an engine failing at once still reaches the
    // handlers above and ends the loop.
    QTimer::singleShot(0, &engine, start);
    const int exitCode = QCoreApplication::exec();
    engine.stop();
    return exitCode;
}

int runRequest(SyncEngine& engine, const CtlOptions& options,
    const std::function<quint64()>& issue, const std::function<int(const QString&)>& done)
{
    quint64 requestId = 0;
    std::optional<QString> outcome;
    int exitCode = ExitOk;
    // The command ends when its request is answered and whatever that answer set going (the
    // events it produced) has been applied.
    QObject::connect(&engine, &SyncEngine::requestFinished,
        [&](quint64 finished, const QString& error) {
            if (finished != requestId) {
                return;
            }
            outcome = error;
            exitCode = done(error);
            if (exitCode != ExitOk || engine.isIdle()) {
                QCoreApplication::exit(exitCode);
            }
        });
    QObject::connect(&engine, &SyncEngine::idle, [&] {
        if (outcome) {
            QCoreApplication::exit(exitCode);
        }
    });
    return runEngine(engine, options, false, [&] {
        engine.start();
        requestId = issue();
    });
}

} // namespace ferry::ctl
