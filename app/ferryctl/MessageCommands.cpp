// ferryctl send, sync, listen, outbox and read.

#include "app/ferryctl/CtlCommands.h"
#include "app/ferryctl/CtlSupport.h"
#include "app/ferryctl/MessageFormat.h"
#include "core/MessageId.h"
#include "sync/SyncEngine.h"

#include <QTimer>

#include <cstdio>

namespace ferry::ctl {

namespace {
    constexpr qsizetype MaxBodyBytes = 60 * 1024;

    /// A message id from the command line, whole or as its unique start (as git takes hashes).
    std::optional<StoredMessage> findUnsent(const ClientStore& store, const QString& text)
    {
        Result<QList<StoredMessage>> unsent = store.unsentMessages();
        if (!unsent || text.size() < 4) {
            return std::nullopt;
        }
        std::optional<StoredMessage> found;
        for (const StoredMessage& message : std::as_const(unsent.value())) {
            if (MessageId::fromBytes(message.messageId)->toString().startsWith(text.toLower())) {
                if (found) {
                    return std::nullopt; // ambiguous
                }
                found = message;
            }
        }
        return found;
    }
}

int runSend(const CtlOptions& options)
{
    if (options.arguments.size() != 2) {
        printError(QStringLiteral("usage: ferryctl send TARGET TEXT  (TEXT '-' reads stdin)"));
        return ExitUsage;
    }
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
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
        return failOnStore(
            options, store, queued.error(), QStringLiteral("could not write the message"));
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
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }
    std::unique_ptr<SyncEngine> engine = makeEngine(store.get(), options);
    int received = 0;
    int sent = 0;
    QObject::connect(engine.get(), &SyncEngine::messagesAdded,
        [&](const QList<StoredMessage>& messages) { received += messages.size(); });
    QObject::connect(engine.get(), &SyncEngine::messageSent, [&] { ++sent; });

    exitCode = runEngine(*engine, options, true, [&] { engine->start(); });
    if (exitCode == ExitOk || exitCode == ExitSomeFailed) {
        std::fprintf(stderr, "ferryctl: synced: %d sent, %d received\n", sent, received);
    }
    return exitCode;
}

int runListen(const CtlOptions& options)
{
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }
    std::unique_ptr<SyncEngine> engine = makeEngine(store.get(), options);
    QObject::connect(engine.get(), &SyncEngine::messagesAdded,
        [&](const QList<StoredMessage>& list) {
            for (const StoredMessage& message : list) {
                printMessage(message, options.json);
            }
        });
    // Another ferryctl may write to this profile's outbox (or mark a conversation read) while
    // this one listens; a cheap indexed look once a second picks that up.
    QTimer outboxPoll;
    QObject::connect(&outboxPoll, &QTimer::timeout, engine.get(), &SyncEngine::flushOutbox);
    outboxPoll.start(1000);

    CtlOptions forever = options;
    forever.timeoutSeconds = 0;
    return runEngine(*engine, forever, false, [&] { engine->start(); });
}

int runOutbox(const CtlOptions& options)
{
    const QStringList& args = options.arguments;
    const QString action = args.value(0, QStringLiteral("list"));
    if (!((action == u"list" && args.size() <= 1)
            || ((action == u"retry" || action == u"cancel") && args.size() == 2))) {
        printError(QStringLiteral(
            "usage: ferryctl outbox [list] | outbox retry ID | outbox cancel ID"));
        return ExitUsage;
    }
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }

    if (action == u"list") {
        Result<QList<StoredMessage>> unsent = store->unsentMessages();
        if (!unsent) {
            return failOnStore(options, store, unsent.error());
        }
        for (const StoredMessage& message : std::as_const(unsent.value())) {
            if (options.json) {
                printMessage(message, true);
            } else {
                printOut(MessageId::fromBytes(message.messageId)->toString() + u"  "
                    + messageToLine(message));
            }
        }
        return ExitOk;
    }

    const std::optional<StoredMessage> message = findUnsent(*store, args[1]);
    if (!message) {
        printError(u"no queued or failed message has an id starting with " + args[1]
            + u" (or several do)");
        return ExitUsage;
    }
    const Result<Done> changed
        = action == u"retry" ? store->retry(message->messageId) : store->cancel(message->messageId);
    if (!changed) {
        printError(changed.error().message);
        return changed.error().kind == u"not-found" ? ExitUsage : ExitError;
    }
    printOut((action == u"retry" ? u"queued again: " : u"cancelled: ")
        + MessageId::fromBytes(message->messageId)->toString());
    return ExitOk;
}

int runRead(const CtlOptions& options)
{
    if (options.arguments.size() != 1) {
        printError(QStringLiteral("usage: ferryctl read TARGET [--up-to SEQ]"));
        return ExitUsage;
    }
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }
    const QString conversationId = resolveConversation(*store, options.arguments[0]);
    if (conversationId.isEmpty()) {
        printError(u"'" + options.arguments[0] + u"' is not a conversation");
        return ExitUsage;
    }
    // Marked here at once, offline or not; the receipt goes out with the next sync or listen.
    Result<quint64> marked = store->markRead(conversationId, static_cast<quint64>(options.upTo));
    if (!marked) {
        return failOnStore(options, store, marked.error());
    }
    printOut(u"read up to #" + QString::number(marked.value()) + u" in " + conversationId);
    return ExitOk;
}

} // namespace ferry::ctl
