#include "app/ferryctl/CtlCommands.h"

#include "app/ferryctl/MessageFormat.h"
#include "core/ClientStore.h"
#include "core/ConversationId.h"
#include "core/Logging.h"
#include "core/MessageId.h"
#include "core/UnixSignalWatcher.h"
#include "sync/SyncEngine.h"

#include <QCoreApplication>
#include <QJsonDocument>
#include <QMetaEnum>
#include <QSysInfo>
#include <QTimer>

#include <cstdio>
#include <functional>
#include <termios.h>
#include <unistd.h>

namespace ferry::ctl {

namespace {

    const QUrl DefaultServerUrl(QStringLiteral("ws://127.0.0.1:8765"));
    constexpr qsizetype MaxBodyBytes = 60 * 1024;

    void printOut(const QString& text)
    {
        std::fputs(qPrintable(text + u'\n'), stdout);
        std::fflush(stdout);
    }

    void printError(const QString& text)
    {
        std::fputs(qPrintable(u"ferryctl: " + text + u'\n'), stderr);
    }

    void printMessage(const StoredMessage& message, bool json)
    {
        if (json) {
            printOut(QString::fromUtf8(
                QJsonDocument(messageToJson(message)).toJson(QJsonDocument::Compact)));
        } else {
            printOut(messageToLine(message));
        }
    }

    std::unique_ptr<ClientStore> openStore(const CtlOptions& options)
    {
        Result<std::unique_ptr<ClientStore>> store = ClientStore::open(options.profileDir);
        if (!store) {
            printError(u"could not open the profile: " + store.error().message);
            return nullptr;
        }
        return std::move(store.value());
    }

    /// Reads the password from FERRY_PASSWORD, or else one line of standard input (without
    /// echo when it is a terminal). Passwords never come from the command line, where other
    /// users of the machine could read them.
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

    /// TARGET is a user name (the direct conversation with them) or a conversation id.
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

    /// Starts the engine with `start` and runs the event loop until the command is finished
    /// (idle, when `endWhenIdle`), the timeout passes, a signal arrives, or the engine stops with
    /// an error. Returns the exit code.
    int runEngine(SyncEngine& engine, const CtlOptions& options, bool endWhenIdle,
        const std::function<void()>& start)
    {
        int exitCode = ExitOk;
        int refusedMessages = 0;
        QTimer timeout;
        timeout.setSingleShot(true);

        QObject::connect(&engine, &SyncEngine::stoppedWithError,
            [&](const QString& kind, const QString& message) {
                const bool local
                    = kind == u"storage" || kind == u"bad-url" || kind == u"no-account";
                printError(local ? message : u"the server refused: " + message);
                exitCode = local ? ExitError : ExitRefused;
                QCoreApplication::exit(exitCode);
            });
        QObject::connect(&engine, &SyncEngine::storageFailed, [&](const QString& message) {
            printError(u"could not write the local store: " + message);
            QCoreApplication::exit(ExitError);
        });
        QObject::connect(&engine, &SyncEngine::messageFailed,
            [&](const QByteArray& id, const QString& reason) {
                ++refusedMessages;
                printError(u"message " + MessageId::fromBytes(id)->toString()
                    + u" was refused: " + reason);
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
                    : u"could not reach " + engine.serverUrl().toString() + u" ("
                        + engine.lastLinkError() + u')';
                printError(u"gave up after " + QString::number(options.timeoutSeconds) + u" s: "
                    + why + u"; " + QString::number(engine.pendingCount())
                    + u" message(s) still queued");
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
        exitCode = QCoreApplication::exec();
        engine.stop();
        return exitCode;
    }

    int signIn(const CtlOptions& options, bool createAccount)
    {
        if (options.arguments.size() != 1) {
            printError(createAccount ? QStringLiteral("usage: ferryctl register USER")
                                     : QStringLiteral("usage: ferryctl login USER"));
            return ExitUsage;
        }
        const QString userName = options.arguments[0];
        if (!isValidUserName(userName)) {
            printError(QStringLiteral(
                "a user name is 1 to 32 characters from a-z, 0-9, '.', '_' and '-'"));
            return ExitUsage;
        }
        std::unique_ptr<ClientStore> store = openStore(options);
        if (!store) {
            return ExitError;
        }
        if (const auto account = store->account()) {
            printError(u"this profile already belongs to " + account->userName + u" (device "
                + QString::number(account->deviceId) + u"); use another --profile");
            return ExitError;
        }
        const QByteArray password = readPassword();
        if (password.isEmpty()) {
            printError(QStringLiteral("no password given (FERRY_PASSWORD or standard input)"));
            return ExitUsage;
        }

        const QString deviceName = options.deviceName.isEmpty()
            ? QSysInfo::machineHostName().left(64)
            : options.deviceName;
        SyncEngine engine(store.get());
        engine.setServerUrl(options.serverUrl.isEmpty() ? DefaultServerUrl : options.serverUrl);
        QObject::connect(&engine, &SyncEngine::authenticated,
            [&](const QString& user, quint64 deviceId) {
                printOut((createAccount ? u"registered " : u"logged in as ") + user
                    + u", device " + QString::number(deviceId) + u" (" + deviceName + u')');
                QCoreApplication::exit(ExitOk);
            });
        return runEngine(engine, options, false, [&] {
            engine.startWithPassword(userName, password, deviceName, createAccount);
        });
    }

} // namespace

int runRegister(const CtlOptions& options)
{
    return signIn(options, true);
}

int runLogin(const CtlOptions& options)
{
    return signIn(options, false);
}

int runSend(const CtlOptions& options)
{
    if (options.arguments.size() != 2) {
        printError(QStringLiteral("usage: ferryctl send TARGET TEXT  (TEXT '-' reads stdin)"));
        return ExitUsage;
    }
    std::unique_ptr<ClientStore> store = openStore(options);
    if (!store) {
        return ExitError;
    }
    if (!store->account()) {
        printError(QStringLiteral("this profile has no account yet; register or log in first"));
        return ExitError;
    }
    const QString conversationId = resolveConversation(*store, options.arguments[0]);
    if (conversationId.isEmpty()) {
        printError(u"'" + options.arguments[0]
            + u"' is neither another user's name nor a conversation id");
        return ExitUsage;
    }

    QByteArray body = options.arguments[1].toUtf8();
    if (options.arguments[1] == u"-") {
        body.clear();
        for (int c = std::getchar(); c != EOF; c = std::getchar()) {
            body.append(static_cast<char>(c));
        }
    }
    if (body.isEmpty()) {
        printError(QStringLiteral("a message needs some text"));
        return ExitUsage;
    }
    if (body.size() > MaxBodyBytes) {
        printError(u"a message is at most " + QString::number(MaxBodyBytes) + u" bytes, this one "
            + QString::number(body.size()));
        return ExitUsage;
    }

    Result<StoredMessage> queued = store->enqueue(conversationId, body);
    if (!queued) {
        printError(u"could not write the message: " + queued.error().message);
        return ExitError;
    }
    if (options.json) {
        printMessage(queued.value(), true);
    } else {
        printOut(MessageId::fromBytes(queued->messageId)->toString());
    }
    return ExitOk;
}

int runSync(const CtlOptions& options)
{
    std::unique_ptr<ClientStore> store = openStore(options);
    if (!store) {
        return ExitError;
    }
    SyncEngine engine(store.get());
    if (!options.serverUrl.isEmpty()) {
        engine.setServerUrl(options.serverUrl);
    }
    int received = 0;
    int sent = 0;
    QObject::connect(&engine, &SyncEngine::messagesAdded,
        [&](const QList<StoredMessage>& messages) { received += messages.size(); });
    QObject::connect(&engine, &SyncEngine::messageSent, [&] { ++sent; });

    const int exitCode = runEngine(engine, options, true, [&] { engine.start(); });
    if (exitCode == ExitOk || exitCode == ExitSomeFailed) {
        std::fprintf(stderr, "ferryctl: synced: %d sent, %d received\n", sent, received);
    }
    return exitCode;
}

int runListen(const CtlOptions& options)
{
    std::unique_ptr<ClientStore> store = openStore(options);
    if (!store) {
        return ExitError;
    }
    SyncEngine engine(store.get());
    if (!options.serverUrl.isEmpty()) {
        engine.setServerUrl(options.serverUrl);
    }
    QObject::connect(&engine, &SyncEngine::messagesAdded, [&](const QList<StoredMessage>& list) {
        for (const StoredMessage& message : list) {
            printMessage(message, options.json);
        }
    });
    // Another ferryctl may write to this profile's outbox while this one listens; a cheap
    // indexed look once a second picks those messages up.
    QTimer outboxPoll;
    QObject::connect(&outboxPoll, &QTimer::timeout, &engine, &SyncEngine::flushOutbox);
    outboxPoll.start(1000);

    CtlOptions forever = options;
    forever.timeoutSeconds = 0;
    return runEngine(engine, forever, false, [&] { engine.start(); });
}

int runHistory(const CtlOptions& options)
{
    if (options.arguments.size() != 1) {
        printError(QStringLiteral("usage: ferryctl history TARGET"));
        return ExitUsage;
    }
    std::unique_ptr<ClientStore> store = openStore(options);
    if (!store) {
        return ExitError;
    }
    const QString conversationId = resolveConversation(*store, options.arguments[0]);
    if (conversationId.isEmpty()) {
        printError(u"'" + options.arguments[0] + u"' is neither a user name nor a conversation");
        return ExitUsage;
    }
    Result<QList<StoredMessage>> messages = store->history(conversationId);
    if (!messages) {
        printError(messages.error().message);
        return ExitError;
    }
    for (const StoredMessage& message : std::as_const(messages.value())) {
        printMessage(message, options.json);
    }
    return ExitOk;
}

int runConversations(const CtlOptions& options)
{
    std::unique_ptr<ClientStore> store = openStore(options);
    if (!store) {
        return ExitError;
    }
    Result<QStringList> ids = store->conversationIds();
    if (!ids) {
        printError(ids.error().message);
        return ExitError;
    }
    const QString self = store->account() ? store->account()->userName : QString();
    for (const QString& id : std::as_const(ids.value())) {
        const QString peer = directConversationPeer(id, self);
        if (options.json) {
            QJsonObject object;
            object[u"conversation"] = id;
            object[u"peer"] = peer.isEmpty() ? QJsonValue() : QJsonValue(peer);
            printOut(QString::fromUtf8(QJsonDocument(object).toJson(QJsonDocument::Compact)));
        } else {
            printOut(peer.isEmpty() ? id : id + u"  (with " + peer + u')');
        }
    }
    return ExitOk;
}

int runStatus(const CtlOptions& options)
{
    std::unique_ptr<ClientStore> store = openStore(options);
    if (!store) {
        return ExitError;
    }
    const std::optional<AccountInfo> account = store->account();
    Result<quint64> offset = store->eventOffset();
    Result<QList<StoredMessage>> outbox = store->outbox();
    if (!offset || !outbox) {
        printError(offset ? outbox.error().message : offset.error().message);
        return ExitError;
    }
    QJsonObject object;
    object[u"profile"] = store->databasePath();
    object[u"user"] = account ? QJsonValue(account->userName) : QJsonValue();
    object[u"device"] = account ? QJsonValue(static_cast<qint64>(account->deviceId)) : QJsonValue();
    object[u"server"] = account ? QJsonValue(account->serverUrl) : QJsonValue();
    object[u"offset"] = static_cast<qint64>(offset.value());
    object[u"outbox"] = static_cast<qint64>(outbox->size());
    if (options.json) {
        printOut(QString::fromUtf8(QJsonDocument(object).toJson(QJsonDocument::Compact)));
    } else {
        for (auto it = object.constBegin(); it != object.constEnd(); ++it) {
            printOut(it.key() + u": " + it.value().toVariant().toString());
        }
    }
    return ExitOk;
}

} // namespace ferry::ctl
