// ferryctl: Ferry's scriptable client. Each invocation opens one device profile (a folder with
// the device's SQLite store), does one thing and exits with a documented code, so that scripts
// and tests can drive a whole conversation from the shell.

#include "app/ferryctl/CtlCommands.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QLoggingCategory>

#include <cstdio>
#include <functional>

using namespace ferry::ctl;

namespace {

struct Command {
    const char* name;
    const char* synopsis;
    const char* description;
    std::function<int(const CtlOptions&)> run;
};

const Command Commands[] = {
    { "register", "register USER [--device-name NAME]",
        "Create an account and this profile's device. Password from FERRY_PASSWORD or stdin.",
        runRegister },
    { "login", "login USER [--device-name NAME]",
        "Sign in to an account as a new device. Password from FERRY_PASSWORD or stdin.",
        runLogin },
    { "send", "send TARGET TEXT",
        "Write a message to the outbox and print its id. Needs no server. TARGET is a user name "
        "or a conversation id; TEXT '-' reads standard input.",
        runSend },
    { "sync", "sync [--timeout SECONDS]",
        "Connect, send the outbox and owed receipts, catch up, and exit 0 when done.", runSync },
    { "listen", "listen [--json]",
        "Stay connected and print each message as it arrives, until SIGINT or SIGTERM.",
        runListen },
    { "history", "history TARGET [--before SEQ] [--limit N] [--fetch-older] [--json]",
        "Print a conversation from the local store, in the order every device shows it; "
        "--fetch-older first fetches the page before the oldest entry held.",
        runHistory },
    { "conversations", "conversations [--json]",
        "List conversations with unread counts and queued messages.", runConversations },
    { "outbox", "outbox [list | retry ID | cancel ID] [--json]",
        "List queued and failed messages; queue a failed one again, or cancel one.", runOutbox },
    { "read", "read TARGET [--up-to SEQ]",
        "Mark a conversation read (works offline; the receipt goes with the next sync).",
        runRead },
    { "group", "group create TITLE [--members a,b] | add ID USER... | remove ID USER | "
               "leave ID | info ID",
        "Create and change groups (needs the server, except info).", runGroup },
    { "devices", "devices [list | rename ID NAME | remove ID] [--json]",
        "List this account's devices, rename one, or remove one (signs it out).", runDevices },
    { "status", "status [--json]",
        "Show the account, engine state, event offset, outbox length and next retry.",
        runStatus },
    { "repair", "repair",
        "Check the profile database page by page; if damaged, set it aside and recover.",
        runRepair },
};

const Command* findCommand(const QString& name)
{
    for (const Command& command : Commands) {
        if (name == QLatin1String(command.name)) {
            return &command;
        }
    }
    return nullptr;
}

QString commandList()
{
    QString text = QStringLiteral("\nCommands:\n");
    for (const Command& command : Commands) {
        text += u"  " + QString::fromLatin1(command.synopsis).leftJustified(38) + u' '
            + QString::fromLatin1(command.description) + u'\n';
    }
    text += QStringLiteral(
        "\nExit codes: 0 done, 1 local error, 2 usage, 3 timed out or server unreachable,\n"
        "4 refused by the server (credentials, name taken, version, device removed),\n"
        "5 the server refused some messages or the request.\n");
    return text;
}

} // namespace

int main(int argc, char* argv[])
{
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("ferryctl"));
    QCoreApplication::setApplicationVersion(QStringLiteral(FERRY_VERSION));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Ferry's scriptable chat client."));
    const QCommandLineOption helpOption({ QStringLiteral("h"), QStringLiteral("help") },
        QStringLiteral("Show help, for ferryctl or for one command."));
    parser.addOption(helpOption);
    parser.addVersionOption();
    const QCommandLineOption profileOption(QStringLiteral("profile"),
        QStringLiteral("The device's profile folder (or FERRY_PROFILE)."), QStringLiteral("dir"));
    const QCommandLineOption serverOption(QStringLiteral("server"),
        QStringLiteral("Server URL, ws://host:port; repeat it (or separate with commas) for "
                       "servers to try in turn (default: the profile's, else "
                       "ws://127.0.0.1:8765)."),
        QStringLiteral("url"));
    const QCommandLineOption deviceOption(QStringLiteral("device-name"),
        QStringLiteral("Name of the new device (register, login; default: host name)."),
        QStringLiteral("name"));
    const QCommandLineOption jsonOption(QStringLiteral("json"),
        QStringLiteral("One JSON object per line instead of text."));
    const QCommandLineOption timeoutOption(QStringLiteral("timeout"),
        QStringLiteral("Give up after this many seconds (register, login, sync; default 30)."),
        QStringLiteral("seconds"), QStringLiteral("30"));
    const QCommandLineOption verboseOption(QStringLiteral("verbose"),
        QStringLiteral("Log connection and sync state changes to stderr."));
    const QCommandLineOption noReceiptsOption(QStringLiteral("no-receipts"),
        QStringLiteral("Do not tell senders their messages were delivered to this device."));
    const QCommandLineOption membersOption(QStringLiteral("members"),
        QStringLiteral("Members of a new group, comma-separated (group create)."),
        QStringLiteral("names"));
    const QCommandLineOption beforeOption(QStringLiteral("before"),
        QStringLiteral("Only entries before this sequence number (history)."),
        QStringLiteral("seq"));
    const QCommandLineOption limitOption(QStringLiteral("limit"),
        QStringLiteral("At most this many entries, the newest (history)."), QStringLiteral("n"));
    const QCommandLineOption upToOption(QStringLiteral("up-to"),
        QStringLiteral("Mark read up to this sequence number (read; default: all)."),
        QStringLiteral("seq"));
    const QCommandLineOption fetchOlderOption(QStringLiteral("fetch-older"),
        QStringLiteral("Fetch the page before the oldest entry held first (history)."));
    parser.addOptions({ profileOption, serverOption, deviceOption, jsonOption, timeoutOption,
        verboseOption, noReceiptsOption, membersOption, beforeOption, limitOption, upToOption,
        fetchOlderOption });
    parser.addPositionalArgument(
        QStringLiteral("command"), QStringLiteral("What to do; see below."));

    if (!parser.parse(QCoreApplication::arguments())) {
        std::fprintf(stderr, "ferryctl: %s\n", qPrintable(parser.errorText()));
        return ExitUsage;
    }
    if (parser.isSet(QStringLiteral("version"))) {
        parser.showVersion();
    }

    const QStringList positional = parser.positionalArguments();
    const Command* command = positional.isEmpty() ? nullptr : findCommand(positional.first());
    if (parser.isSet(helpOption)) {
        if (command) {
            std::printf("Usage: ferryctl --profile DIR %s\n\n%s\n", command->synopsis,
                command->description);
        } else {
            std::printf("%s%s", qPrintable(parser.helpText()), qPrintable(commandList()));
        }
        return ExitOk;
    }
    if (!command) {
        std::fprintf(stderr, "ferryctl: %s\n%s",
            positional.isEmpty() ? "no command given"
                                 : qPrintable(u"unknown command " + positional.first()),
            qPrintable(commandList()));
        return ExitUsage;
    }

    // Quiet by default: a script reads stdout, and people read the errors on stderr.
    if (!parser.isSet(verboseOption)) {
        QLoggingCategory::setFilterRules(QStringLiteral("ferry.*.info=false"));
    }

    CtlOptions options;
    options.profileDir = parser.isSet(profileOption)
        ? parser.value(profileOption)
        : qEnvironmentVariable("FERRY_PROFILE");
    if (options.profileDir.isEmpty()) {
        std::fprintf(stderr, "ferryctl: --profile DIR (or FERRY_PROFILE) is required\n");
        return ExitUsage;
    }
    for (const QString& value : parser.values(serverOption)) {
        for (const QString& text : value.split(u',', Qt::SkipEmptyParts)) {
            const QUrl url(text.trimmed());
            if (!url.isValid() || url.host().isEmpty()
                || (url.scheme() != u"ws" && url.scheme() != u"wss")) {
                std::fprintf(stderr, "ferryctl: --server wants ws://host:port, not %s\n",
                    qPrintable(text));
                return ExitUsage;
            }
            options.serverUrls.append(url);
        }
    }
    options.deviceName = parser.value(deviceOption);
    options.json = parser.isSet(jsonOption);
    bool timeoutOk = false;
    options.timeoutSeconds = parser.value(timeoutOption).toInt(&timeoutOk);
    if (!timeoutOk || options.timeoutSeconds < 0) {
        std::fprintf(stderr, "ferryctl: --timeout wants a number of seconds\n");
        return ExitUsage;
    }
    options.sendReceipts = !parser.isSet(noReceiptsOption);
    options.verbose = parser.isSet(verboseOption);
    options.members = parser.value(membersOption).split(u',', Qt::SkipEmptyParts);
    options.fetchOlder = parser.isSet(fetchOlderOption);
    bool numberOk = true;
    if (parser.isSet(beforeOption)) {
        options.before = parser.value(beforeOption).toLongLong(&numberOk);
    }
    if (numberOk && parser.isSet(limitOption)) {
        options.limit = parser.value(limitOption).toInt(&numberOk);
    }
    if (numberOk && parser.isSet(upToOption)) {
        options.upTo = parser.value(upToOption).toLongLong(&numberOk);
    }
    if (!numberOk || options.before < -1 || options.limit < -1 || options.upTo < 0) {
        std::fprintf(stderr, "ferryctl: --before, --limit and --up-to want whole numbers\n");
        return ExitUsage;
    }
    options.arguments = positional.mid(1);
    return command->run(options);
}
