// ferry-server: the reference server bundled with Ferry. It listens for WebSocket clients,
// stores accounts, devices and messages in SQLite under its data folder, serves /healthz and
// /metrics over HTTP, and runs until SIGTERM or SIGINT, after which it closes every connection
// cleanly and exits 0.

#include "core/EpollEventDispatcher.h"
#include "core/Logging.h"
#include "core/UnixSignalWatcher.h"
#include "server-stub/ChatServer.h"
#include "server-stub/Credentials.h"
#include "server-stub/ServerConfig.h"
#include "server-stub/SessionTokens.h"
#include "server-stub/SqliteServerStore.h"

#include <QCoreApplication>

#include <cstdio>

using namespace ferry;
using namespace ferry::server;

namespace {

int fail(const QString& message)
{
    std::fprintf(stderr, "ferry-server: %s\n", qPrintable(message));
    return 1;
}

} // namespace

int main(int argc, char* argv[])
{
    // The dispatcher is chosen before the application object exists, which installs Qt's own
    // otherwise. Password hashing runs on QThreadPool threads, which run no event loop and keep
    // Qt's dispatcher; the server has no other threads.
    const QString dispatcher = eventDispatcherFromArguments(argc, argv);
    if (dispatcher == u"epoll") {
        QCoreApplication::setEventDispatcher(new EpollEventDispatcher);
    }
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("ferry-server"));
    QCoreApplication::setApplicationVersion(QStringLiteral(FERRY_VERSION));
    // Installed first: a SIGTERM that arrives while the server starts waits in the watcher's
    // pipe until the event loop runs, and then stops the server cleanly. Installed after the
    // ready line, as it once was, a supervisor's SIGTERM right after that line could still meet
    // the default action and kill the server mid-start (found by tst_chaos;
    // tst_server_stop_at_once).
    UnixSignalWatcher signalWatcher;

    Result<ServerConfig> config = parseServerConfig(app);
    if (!config) {
        return fail(config.error().message);
    }
    qCInfo(lcServer) << "Event dispatcher:" << config->eventDispatcher;

    if (config->passwordCost == Credentials::PasswordCost::Minimal) {
        qCWarning(lcServer) << "Passwords are hashed at minimal cost (--password-cost=minimal):"
                            << "for tests and benchmarks only, never for real accounts";
    }
    Credentials::setPasswordCost(config->passwordCost);
    if (!Credentials::initialise()) {
        return fail(QStringLiteral("libsodium could not be initialised"));
    }
    auto store = SqliteServerStore::open(
        config->dataDir, config->walCheckpointPages, config->logFoldLag);
    if (!store) {
        return fail(store.error().message);
    }
    Result<SessionTokens> tokens = SessionTokens::load(config->dataDir);
    if (!tokens) {
        return fail(tokens.error().message);
    }

    ChatServer server(config.value(), std::move(store.value()), std::move(tokens.value()));
    if (auto started = server.start(); !started) {
        return fail(started.error().message);
    }
    // Scripts and tests wait for the ws:// line; it is the promise that connections are
    // accepted, so it comes last.
    if (!server.httpUrl().isEmpty()) {
        std::printf(
            "ferry-server metrics on %s/metrics\n", qPrintable(server.httpUrl().toString()));
    }
    std::printf("ferry-server listening on %s\n", qPrintable(server.url().toString()));
    std::fflush(stdout);

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
