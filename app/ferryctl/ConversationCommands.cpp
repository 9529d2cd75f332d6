// ferryctl history, conversations, group, status and repair.

#include "app/ferryctl/CtlCommands.h"
#include "app/ferryctl/CtlSupport.h"
#include "app/ferryctl/MessageFormat.h"
#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "sync/SyncEngine.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QJsonArray>

#include <csignal>

namespace ferry::ctl {

namespace {

    /// Prints a page of history, with a placeholder line wherever sequence numbers are missing:
    /// entries the server has and this device has not fetched yet.
    void printHistory(const QList<StoredMessage>& entries, bool json)
    {
        std::optional<quint64> previous;
        for (const StoredMessage& entry : entries) {
            if (entry.seq && previous && *entry.seq > *previous + 1) {
                const quint64 first = *previous + 1;
                const quint64 last = *entry.seq - 1;
                if (json) {
                    QJsonObject gap;
                    gap[u"gap"] = true;
                    gap[u"first_seq"] = static_cast<qint64>(first);
                    gap[u"last_seq"] = static_cast<qint64>(last);
                    printJson(gap);
                } else {
                    printOut(u"      … " + QString::number(last - first + 1)
                        + u" entries not fetched yet (#" + QString::number(first) + u"–#"
                        + QString::number(last) + u")");
                }
            }
            if (entry.seq) {
                previous = entry.seq;
            }
            printMessage(entry, json);
        }
    }

    QString displayName(const ConversationSummary& summary, const QString& self)
    {
        if (!summary.title.isEmpty()) {
            return summary.title;
        }
        const QString peer = directConversationPeer(summary.id, self);
        return peer.isEmpty() ? summary.id : peer;
    }

} // namespace

int runHistory(const CtlOptions& options)
{
    if (options.arguments.size() != 1) {
        printError(QStringLiteral(
            "usage: ferryctl history TARGET [--before SEQ] [--limit N] [--fetch-older]"));
        return ExitUsage;
    }
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }
    const QString conversationId = resolveConversation(*store, options.arguments[0]);
    if (conversationId.isEmpty()) {
        printError(u"'" + options.arguments[0]
            + u"' is neither another user's name nor a conversation id");
        return ExitUsage;
    }

    if (options.fetchOlder) {
        // One page older than what this device holds, from the server, then printed as usual.
        std::unique_ptr<SyncEngine> engine = makeEngine(store.get(), options);
        exitCode = runRequest(
            *engine, options,
            [&] { return engine->fetchOlderHistory(conversationId, std::max(options.limit, 50)); },
            [&](const QString& error) {
                if (!error.isEmpty()) {
                    printError(u"the server refused: " + error);
                    return int(ExitSomeFailed);
                }
                return int(ExitOk);
            });
        if (exitCode != ExitOk) {
            return exitCode;
        }
    }

    const std::optional<quint64> before = options.before >= 0
        ? std::optional<quint64>(static_cast<quint64>(options.before))
        : (options.limit > 0 ? std::optional<quint64>(std::numeric_limits<qint64>::max())
                             : std::nullopt);
    Result<QList<StoredMessage>> entries = store->history(conversationId, before, options.limit);
    if (!entries) {
        return failOnStore(options, store, entries.error());
    }
    printHistory(entries.value(), options.json);
    return ExitOk;
}

int runConversations(const CtlOptions& options)
{
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }
    Result<QList<ConversationSummary>> all = store->conversations();
    if (!all) {
        return failOnStore(options, store, all.error());
    }
    const QString self = store->account() ? store->account()->userName : QString();
    for (const ConversationSummary& summary : std::as_const(all.value())) {
        if (options.json) {
            QJsonObject object;
            object[u"conversation"] = summary.id;
            object[u"name"] = displayName(summary, self);
            object[u"members"] = QJsonArray::fromStringList(summary.members);
            object[u"unread"] = summary.unread;
            object[u"queued"] = summary.queued;
            object[u"failed"] = summary.failed;
            object[u"left"] = summary.left;
            object[u"last_seq"] = static_cast<qint64>(summary.lastSeq);
            object[u"last"]
                = summary.last ? QJsonValue(messageToJson(*summary.last)) : QJsonValue();
            printJson(object);
            continue;
        }
        QString line = displayName(summary, self).leftJustified(24);
        if (summary.unread > 0) {
            line += u" (" + QString::number(summary.unread) + u" unread)";
        }
        if (summary.queued > 0) {
            line += u" [" + QString::number(summary.queued) + u" queued]";
        }
        if (summary.failed > 0) {
            line += u" [" + QString::number(summary.failed) + u" failed]";
        }
        if (summary.left) {
            line += QStringLiteral(" [left]");
        }
        if (summary.last) {
            line += u"  " + summary.last->sender + u": " + describeEntry(*summary.last).left(60);
        }
        printOut(line + u"  {" + summary.id + u'}');
    }
    return ExitOk;
}

int runGroup(const CtlOptions& options)
{
    const QStringList& args = options.arguments;
    const QString action = args.value(0);
    const bool valid = (action == u"create" && args.size() == 2)
        || (action == u"add" && args.size() >= 3) || (action == u"remove" && args.size() == 3)
        || (action == u"leave" && args.size() == 2) || (action == u"info" && args.size() == 2);
    if (!valid) {
        printError(QStringLiteral("usage: ferryctl group create TITLE [--members a,b] | group add "
                                  "ID USER... | group remove ID USER | group leave ID | group "
                                  "info ID"));
        return ExitUsage;
    }
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }

    if (action == u"info") {
        Result<ConversationSummary> summary = store->conversation(args[1]);
        if (!summary) {
            return failOnStore(options, store, summary.error());
        }
        if (options.json) {
            QJsonObject object;
            object[u"conversation"] = summary->id;
            object[u"title"] = summary->title;
            object[u"members"] = QJsonArray::fromStringList(summary->members);
            object[u"left"] = summary->left;
            printJson(object);
        } else {
            printOut(summary->title + u"  {" + summary->id + u'}');
            printOut(u"members: " + summary->members.join(QStringLiteral(", "))
                + (summary->left ? QStringLiteral("  (you left or were removed)") : QString()));
        }
        return ExitOk;
    }

    std::unique_ptr<SyncEngine> engine = makeEngine(store.get(), options);
    QString createdId;
    QObject::connect(engine.get(), &SyncEngine::groupCreated,
        [&](quint64, const QString& id) { createdId = id; });
    return runRequest(
        *engine, options,
        [&] {
            if (action == u"create") {
                return engine->createGroup(args[1], options.members);
            }
            if (action == u"add") {
                return engine->addMembers(args[1], args.mid(2));
            }
            if (action == u"remove") {
                return engine->removeMember(args[1], args[2]);
            }
            return engine->leaveGroup(args[1]);
        },
        [&](const QString& error) {
            if (!error.isEmpty()) {
                printError(u"the server refused: " + error);
                return int(ExitSomeFailed);
            }
            printOut(action == u"create" ? createdId : QStringLiteral("done"));
            return int(ExitOk);
        });
}

int runStatus(const CtlOptions& options)
{
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }
    const std::optional<AccountInfo> account = store->account();
    Result<quint64> offset = store->eventOffset();
    Result<QList<StoredMessage>> unsent = store->unsentMessages();
    if (!offset || !unsent) {
        return failOnStore(options, store, offset ? unsent.error() : offset.error());
    }
    int queued = 0;
    for (const StoredMessage& message : std::as_const(unsent.value())) {
        queued += message.state == MessageState::Queued ? 1 : 0;
    }

    // What the engine does is known only while some ferryctl runs one on this profile (listen,
    // sync); it records its state as it goes.
    QString state = QStringLiteral("not running");
    QJsonValue nextRetry;
    QString lastError;
    if (const std::optional<EngineStatus> engine = store->engineStatus()) {
        const bool alive = engine->pid > 0 && ::kill(static_cast<pid_t>(engine->pid), 0) == 0
            && engine->state != u"Offline";
        lastError = engine->lastError;
        if (alive) {
            state = engine->state + u" (pid " + QString::number(engine->pid) + u')';
            if (engine->nextRetryMs > 0) {
                nextRetry = QDateTime::fromMSecsSinceEpoch(engine->nextRetryMs, Qt::UTC)
                                .toString(Qt::ISODateWithMs);
            }
        }
    }

    QJsonObject object;
    object[u"profile"] = store->databasePath();
    object[u"user"] = account ? QJsonValue(account->userName) : QJsonValue();
    object[u"device"] = account ? QJsonValue(static_cast<qint64>(account->deviceId)) : QJsonValue();
    object[u"server"] = account ? QJsonValue(account->serverUrl) : QJsonValue();
    object[u"offset"] = static_cast<qint64>(offset.value());
    object[u"outbox"] = queued;
    object[u"failed"] = static_cast<int>(unsent->size()) - queued;
    object[u"state"] = state;
    object[u"next_retry"] = nextRetry;
    object[u"last_error"] = lastError.isEmpty() ? QJsonValue() : QJsonValue(lastError);
    if (options.json) {
        printJson(object);
    } else {
        for (auto it = object.constBegin(); it != object.constEnd(); ++it) {
            printOut(it.key() + u": "
                + (it.value().isNull() ? QStringLiteral("-") : it.value().toVariant().toString()));
        }
    }
    return ExitOk;
}

int runRepair(const CtlOptions& options)
{
    // openStore recovers a database too damaged to open; this also checks every page of one
    // that opens, which is too slow to do on every command.
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }
    Result<QString> check = store->integrityCheck();
    if (!check) {
        printError(check.error().message);
        return ExitError;
    }
    if (check.value() == u"ok") {
        printOut(QStringLiteral("the profile database is sound"));
        return ExitOk;
    }
    printError(u"the profile database is damaged: " + check.value());
    store.reset();
    Result<RecoveryReport> recovered = ClientStore::recover(options.profileDir);
    if (!recovered) {
        printError(u"could not recover it: " + recovered.error().message);
        return ExitError;
    }
    printOut(u"recovered " + QString::number(recovered->messagesRecovered)
        + u" queued message(s)" + (recovered->accountRecovered ? u" and the account" : u"")
        + u"; the damaged files are in " + recovered->damagedCopy
        + u"; run sync to fetch the rest");
    return ExitOk;
}

} // namespace ferry::ctl
