// ferry-server: the reference server bundled with Ferry. It listens for WebSocket clients,
// stores accounts, devices and messages in SQLite under its data folder, and runs until SIGTERM
// or SIGINT, after which it closes every connection cleanly and exits 0.

#include "core/Logging.h"
#include "core/UnixSignalWatcher.h"
#include "server-stub/ChatServer.h"
#include "server-stub/Credentials.h"
#include "server-stub/SqliteServerStore.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QStandardPaths>

#include <cstdio>

using namespace ferry;
using namespace ferry::server;

namespace {

/// Parses "HOST:PORT", "[IPv6]:PORT" or ":PORT".
bool parseListenAddress(const QString& text, QHostAddress* address, quint16* port)
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

int fail(const QString& message)
{
    std::fprintf(stderr, "ferry-server: %s\n", qPrintable(message));
    return 1;
}

} // namespace

int main(int argc, char* argv[])
{
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("ferry-server"));
    QCoreApplication::setApplicationVersion(QStringLiteral(FERRY_VERSION));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "The Ferry reference server. Prints the ws:// address it listens on once ready."));
    parser.addHelpOption();
    parser.addVersionOption();
    const QCommandLineOption listenOption(QStringLiteral("listen"),
        QStringLiteral("Address and port to listen on; port 0 picks a free one."),
        QStringLiteral("host:port"), QStringLiteral("127.0.0.1:8765"));
    const QCommandLineOption dataOption(QStringLiteral("data"),
        QStringLiteral("Folder for the server's database (default: the XDG data folder)."),
        QStringLiteral("dir"));
    const QCommandLineOption batchOption(QStringLiteral("sync-batch"),
        QStringLiteral("Most events sent in one sync batch (default 500)."), QStringLiteral("n"),
        QStringLiteral("500"));
    const QCommandLineOption frameOption(QStringLiteral("max-frame-bytes"),
        QStringLiteral("Largest frame accepted from a client (default 65536)."),
        QStringLiteral("bytes"), QStringLiteral("65536"));
    parser.addOptions({ listenOption, dataOption, batchOption, frameOption });
    parser.process(app);

    ServerConfig config;
    if (!parseListenAddress(parser.value(listenOption), &config.address, &config.port)) {
        return fail(u"--listen wants host:port, not " + parser.value(listenOption));
    }
    bool ok = false;
    config.syncBatchLimit = parser.value(batchOption).toInt(&ok);
    if (!ok || config.syncBatchLimit < 1 || config.syncBatchLimit > 10000) {
        return fail(QStringLiteral("--sync-batch wants a number from 1 to 10000"));
    }
    config.maxFrameBytes = parser.value(frameOption).toInt(&ok);
    if (!ok || config.maxFrameBytes < 1024) {
        return fail(QStringLiteral("--max-frame-bytes wants a number of at least 1024"));
    }
    config.maxBodyBytes = std::min(config.maxBodyBytes, config.maxFrameBytes - 512);

    const QString dataDir = parser.isSet(dataOption)
        ? parser.value(dataOption)
        : QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
    if (!Credentials::initialise()) {
        return fail(QStringLiteral("libsodium could not be initialised"));
    }
    auto store = SqliteServerStore::open(dataDir);
    if (!store) {
        return fail(store.error().message);
    }

    ChatServer server(config, std::move(store.value()));
    if (auto listening = server.listen(); !listening) {
        return fail(listening.error().message);
    }
    // Scripts and tests wait for this line; it is the promise that connections are accepted.
    std::printf("ferry-server listening on %s\n", qPrintable(server.url().toString()));
    std::fflush(stdout);

    UnixSignalWatcher signalWatcher;
    QObject::connect(&signalWatcher, &UnixSignalWatcher::terminationRequested, &server,
        [&server](int number) {
            qCInfo(lcServer) << "Signal" << number << "received, shutting down";
            server.stop();
        });
    QObject::connect(&server, &ChatServer::stopped, &app, &QCoreApplication::quit);
    const int exitCode = app.exec();
    qCInfo(lcServer) << "Stopped";
    return exitCode;
}
