#include "server-stub/ServerConfig.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QFileInfo>
#include <QSettings>
#include <QStandardPaths>

#include <functional>

namespace ferry::server {

namespace {

    /// Parses "HOST:PORT", "[IPv6]:PORT" or ":PORT".
    bool parseAddress(const QString& text, QHostAddress* address, quint16* port)
    {
        const qsizetype colon = text.lastIndexOf(u':');
        if (colon < 0) {
            return false;
        }
        QString host = text.left(colon);
        if (host.startsWith(u'[') && host.endsWith(u']')) {
            host = host.mid(1, host.size() - 2);
        }
        bool portOk = false;
        const uint portNumber = text.mid(colon + 1).toUInt(&portOk);
        if (!portOk || portNumber > 65535) {
            return false;
        }
        *address = host.isEmpty() ? QHostAddress(QHostAddress::LocalHost) : QHostAddress(host);
        *port = static_cast<quint16>(portNumber);
        return !address->isNull();
    }

    /// One setting: its flag, help, and how to apply a value (false: the value is bad).
    struct Setting {
        QString name;
        QString help;
        QString valueName;
        std::function<bool(ServerConfig&, const QString&)> apply;
    };

    template <typename Number>
    std::function<bool(ServerConfig&, const QString&)> number(
        Number ServerConfig::*field, double min, double max)
    {
        return [field, min, max](ServerConfig& config, const QString& text) {
            bool ok = false;
            const double value = text.toDouble(&ok);
            if (!ok || value < min || value > max) {
                return false;
            }
            config.*field = static_cast<Number>(value);
            return true;
        };
    }

    /// A duration given in seconds, or in another unit of `unitSeconds` seconds each; `min` is
    /// in that unit.
    template <typename Duration>
    std::function<bool(ServerConfig&, const QString&)> duration(
        Duration ServerConfig::*field, double min, double unitSeconds = 1.0)
    {
        return [field, min, unitSeconds](ServerConfig& config, const QString& text) {
            bool ok = false;
            const double value = text.toDouble(&ok);
            const double seconds = value * unitSeconds;
            if (!ok || value < min || seconds > 365 * 24 * 3600) {
                return false;
            }
            config.*field = std::chrono::duration_cast<Duration>(
                std::chrono::duration<double>(seconds));
            return true;
        };
    }

    QList<Setting> settings()
    {
        return {
            { QStringLiteral("listen"),
                QStringLiteral("WebSocket address, host:port; port 0 picks one (127.0.0.1:8765)."),
                QStringLiteral("host:port"),
                [](ServerConfig& c, const QString& v) {
                    return parseAddress(v, &c.address, &c.port);
                } },
            { QStringLiteral("http-listen"),
                QStringLiteral("Address of /healthz and /metrics, or 'off' (127.0.0.1:0)."),
                QStringLiteral("host:port"),
                [](ServerConfig& c, const QString& v) {
                    c.httpEnabled = v != u"off";
                    return !c.httpEnabled || parseAddress(v, &c.httpAddress, &c.httpPort);
                } },
            { QStringLiteral("data"),
                QStringLiteral("Folder for the database and signing key (XDG data folder)."),
                QStringLiteral("dir"),
                [](ServerConfig& c, const QString& v) {
                    c.dataDir = v;
                    return !v.isEmpty();
                } },
            { QStringLiteral("sync-batch"), QStringLiteral("Most events in one sync batch (2000)."),
                QStringLiteral("n"), number(&ServerConfig::syncBatchLimit, 1, 10'000) },
            { QStringLiteral("wal-checkpoint-pages"),
                QStringLiteral("Pages of write-ahead log (4 KiB each) that start a checkpoint "
                               "(1024)."),
                QStringLiteral("pages"), number(&ServerConfig::walCheckpointPages, 64, 1'000'000) },
            { QStringLiteral("log-fold-lag"),
                QStringLiteral("New event-log entries that wait in log_tail, and new messages "
                               "that wait for conversation_index, each indexed in memory, "
                               "before the oldest are moved (16384)."),
                QStringLiteral("entries"), number(&ServerConfig::logFoldLag, 0, 10'000'000) },
            { QStringLiteral("commit-interval"),
                QStringLiteral("Milliseconds between the starts of two commits of messages under "
                               "load; 0 commits once per pass of the event loop (1)."),
                QStringLiteral("ms"), duration(&ServerConfig::commitInterval, 0, 0.001) },
            { QStringLiteral("max-frame-bytes"),
                QStringLiteral("Largest frame accepted from a client (65536)."),
                QStringLiteral("bytes"),
                number(&ServerConfig::maxFrameBytes, 1024, 16 * 1024 * 1024) },
            { QStringLiteral("max-queued-bytes"),
                QStringLiteral("Unsent output a connection may build up before it is closed "
                               "with 4002 (4194304)."),
                QStringLiteral("bytes"),
                number(&ServerConfig::maxQueuedBytes, 64 * 1024, 1024.0 * 1024 * 1024) },
            { QStringLiteral("auth-timeout"),
                QStringLiteral("Seconds a connection may stay unauthenticated (10)."),
                QStringLiteral("seconds"), duration(&ServerConfig::unauthenticatedTimeout, 0.1) },
            { QStringLiteral("heartbeat-interval"),
                QStringLiteral("Seconds of quiet before the server pings a connection (30)."),
                QStringLiteral("seconds"), duration(&ServerConfig::heartbeatInterval, 0.1) },
            { QStringLiteral("heartbeat-timeout"),
                QStringLiteral("Seconds of quiet before a connection is closed with 4001 (75)."),
                QStringLiteral("seconds"), duration(&ServerConfig::heartbeatTimeout, 0.2) },
            { QStringLiteral("session-lifetime"),
                QStringLiteral("Seconds a session token stays valid (86400)."),
                QStringLiteral("seconds"), duration(&ServerConfig::sessionLifetime, 1) },
            { QStringLiteral("request-rate"),
                QStringLiteral("Requests per second one connection may sustain (100)."),
                QStringLiteral("n"), number(&ServerConfig::requestRate, 0.1, 1e6) },
            { QStringLiteral("request-burst"),
                QStringLiteral("Requests one connection may make in a burst (1000)."),
                QStringLiteral("n"), number(&ServerConfig::requestBurst, 1, 1e7) },
            { QStringLiteral("event-dispatcher"),
                QStringLiteral("'epoll' or Qt's own 'qt'; on the command line or in "
                               "FERRY_EVENT_DISPATCHER only (epoll)."),
                QStringLiteral("name"),
                [](ServerConfig& c, const QString& v) {
                    c.eventDispatcher = v;
                    return v == u"epoll" || v == u"qt";
                } },
            { QStringLiteral("password-cost"),
                QStringLiteral("Argon2id cost of new password hashes: interactive, or minimal "
                               "for tests and benchmarks only (interactive)."),
                QStringLiteral("cost"),
                [](ServerConfig& c, const QString& v) {
                    if (v == u"interactive") {
                        c.passwordCost = Credentials::PasswordCost::Interactive;
                    } else if (v == u"minimal") {
                        c.passwordCost = Credentials::PasswordCost::Minimal;
                    } else {
                        return false;
                    }
                    return true;
                } },
        };
    }

} // namespace

QString eventDispatcherFromArguments(int argc, char* argv[])
{
    const QByteArray flag = QByteArrayLiteral("--event-dispatcher");
    for (int i = 1; i < argc; ++i) {
        const QByteArray argument(argv[i]);
        if (argument.startsWith(QByteArray(flag + '='))) {
            return QString::fromLocal8Bit(argument.mid(flag.size() + 1));
        }
        if (argument == flag && i + 1 < argc) {
            return QString::fromLocal8Bit(argv[i + 1]);
        }
    }
    const QByteArray fromEnvironment = qgetenv("FERRY_EVENT_DISPATCHER");
    return fromEnvironment.isEmpty() ? QStringLiteral("epoll")
                                     : QString::fromLocal8Bit(fromEnvironment);
}

Result<ServerConfig> parseServerConfig(const QCoreApplication& app)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "The Ferry reference server. Prints the http:// address of its metrics and then the "
        "ws:// address it listens on, once ready. SIGTERM or SIGINT stop it cleanly.\n"
        "Every option can also be set in the --config file, as 'name = value' lines."));
    parser.addHelpOption();
    parser.addVersionOption();
    const QCommandLineOption configOption(QStringLiteral("config"),
        QStringLiteral("An INI file of settings; flags given here win over it."),
        QStringLiteral("file"));
    parser.addOption(configOption);
    const QList<Setting> all = settings();
    for (const Setting& setting : all) {
        parser.addOption(QCommandLineOption(setting.name, setting.help, setting.valueName));
    }
    parser.process(app);

    ServerConfig config;
    config.dataDir = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);

    // The file first, then the flags, so that a flag overrides the file.
    if (parser.isSet(configOption)) {
        const QString path = parser.value(configOption);
        if (!QFileInfo(path).isReadable()) {
            return Error { QStringLiteral("config"), u"cannot read the config file " + path };
        }
        QSettings file(path, QSettings::IniFormat);
        for (const QString& key : file.allKeys()) {
            auto setting = std::find_if(all.begin(), all.end(),
                [&](const Setting& candidate) { return candidate.name == key; });
            if (key == u"event-dispatcher") {
                // Installed before this file is read; it cannot take effect from here.
                return Error { QStringLiteral("config"),
                    path + u": event-dispatcher is set on the command line or in "
                           u"FERRY_EVENT_DISPATCHER only" };
            }
            if (setting == all.end()) {
                return Error { QStringLiteral("config"),
                    path + u": unknown setting '" + key + u"'" };
            }
            if (!setting->apply(config, file.value(key).toString())) {
                return Error { QStringLiteral("config"),
                    path + u": bad value for " + key + u": " + file.value(key).toString() };
            }
        }
    }
    // main() installed the dispatcher this variable names before the configuration was read;
    // reading it here too makes a bad name stop the server and the log name the one in use.
    const QString dispatcherFromEnvironment = qEnvironmentVariable("FERRY_EVENT_DISPATCHER");
    if (!dispatcherFromEnvironment.isEmpty() && !parser.isSet(QStringLiteral("event-dispatcher"))) {
        config.eventDispatcher = dispatcherFromEnvironment;
        if (config.eventDispatcher != u"epoll" && config.eventDispatcher != u"qt") {
            return Error { QStringLiteral("config"),
                u"bad value for FERRY_EVENT_DISPATCHER: " + dispatcherFromEnvironment };
        }
    }
    for (const Setting& setting : all) {
        if (parser.isSet(setting.name) && !setting.apply(config, parser.value(setting.name))) {
            return Error { QStringLiteral("config"),
                u"bad value for --" + setting.name + u": " + parser.value(setting.name) };
        }
    }

    if (config.eventDispatcher != u"epoll" && config.eventDispatcher != u"qt") {
        return Error { QStringLiteral("config"),
            u"unknown event dispatcher '" + config.eventDispatcher + u"' (epoll or qt)" };
    }
    if (config.heartbeatTimeout <= config.heartbeatInterval) {
        return Error { QStringLiteral("config"),
            QStringLiteral("heartbeat-timeout must be longer than heartbeat-interval") };
    }
    config.maxBodyBytes = std::min<qsizetype>(config.maxBodyBytes, config.maxFrameBytes - 512);
    return config;
}

} // namespace ferry::server
