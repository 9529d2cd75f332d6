// Scenario 4, catch-up: a device that was offline while many messages arrived reconnects; how
// long until every message is committed in its local store. The real ferry-server runs on
// 127.0.0.1 over a database seeded beforehand; the real SyncEngine runs in this process.
//
//   bench_client_catchup seed <seed-dir> <messages>
//       Writes <seed-dir>/server (a server data folder holding <messages> messages to "reader"
//       from ten senders, through the ServerStore API) and <seed-dir>/profile (reader's device,
//       never synced). Slow parts are done once; run.sh keeps the seed between runs.
//   bench_client_catchup run <seed-dir> <results-dir> <sync-batch>...
//       For each sync batch size: copies the seed, starts ferry-server --sync-batch <n>, and
//       times the engine from start() to caughtUp, then checks the store holds every message.

#include "core/ClientStore.h"
#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "server-stub/Credentials.h"
#include "server-stub/SqliteServerStore.h"
#include "sync/SyncEngine.h"
#include "tests/bench/client/BenchReport.h"
#include "tests/support/ServerProcess.h"

#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QJsonArray>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTimer>

#include <cstdio>
#include <sys/resource.h>
#include <unistd.h>

using namespace ferry;

namespace {

const QString Reader = QStringLiteral("reader");
constexpr int Senders = 10;

int fail(const QString& why)
{
    std::fprintf(stderr, "bench: %s\n", qPrintable(why));
    return 1;
}

int seed(const QString& seedDir, int total)
{
    QDir(seedDir).removeRecursively();
    if (!server::Credentials::initialise()) {
        return fail(QStringLiteral("libsodium could not be initialised"));
    }
    Result<std::unique_ptr<server::SqliteServerStore>> opened
        = server::SqliteServerStore::open(QDir(seedDir).filePath(u"server"_qs));
    if (!opened) {
        return fail(opened.error().message);
    }
    server::SqliteServerStore& store = *opened.value();
    // The seed is scaffolding, not what is measured: its commits need not reach the disk one by
    // one. The store keeps its connection to itself, so it is found by name; nothing else in
    // this process uses SQL.
    for (const QString& name : QSqlDatabase::connectionNames()) {
        QSqlQuery(QSqlDatabase::database(name)).exec(QStringLiteral("PRAGMA synchronous = OFF"));
    }

    const QByteArray passwordHash = server::Credentials::hashPassword("bench-password");
    Result<server::UserRecord> reader = store.createUser(Reader, passwordHash);
    if (!reader) {
        return fail(reader.error().message);
    }
    const QByteArray token = server::Credentials::newDeviceToken();
    Result<server::DeviceRecord> device = store.createDevice(
        reader->id, QStringLiteral("bench"), server::Credentials::tokenHash(token));
    if (!device) {
        return fail(device.error().message);
    }
    struct Sender {
        server::UserRecord user;
        quint64 deviceId = 0;
        QString conversationId;
    };
    QList<Sender> senders;
    for (int i = 0; i < Senders; ++i) {
        Result<server::UserRecord> user
            = store.createUser(u"sender" + QString::number(i), passwordHash);
        if (!user) {
            return fail(user.error().message);
        }
        Result<server::DeviceRecord> senderDevice
            = store.createDevice(user->id, QStringLiteral("bench"),
                server::Credentials::tokenHash(server::Credentials::newDeviceToken()));
        if (!senderDevice) {
            return fail(senderDevice.error().message);
        }
        senders.append(
            Sender { user.value(), senderDevice->id, directConversationId(Reader, user->name) });
    }

    QElapsedTimer timer;
    timer.start();
    for (int i = 0; i < total; ++i) {
        const Sender& sender = senders.at(i % Senders);
        server::NewMessage message;
        message.messageId = MessageId::generate().bytes();
        message.conversationId = sender.conversationId;
        message.senderUserId = sender.user.id;
        message.senderName = sender.user.name;
        message.senderDeviceId = sender.deviceId;
        message.body = "Message " + QByteArray::number(i)
            + " of the catch-up benchmark, about a hundred bytes long like a chat line.";
        if (auto stored = store.appendMessage(message); !stored) {
            return fail(stored.error().message);
        }
    }
    std::printf("seeded %d messages in %lld ms\n", total, static_cast<long long>(timer.elapsed()));
    opened.value().reset();

    Result<std::unique_ptr<ClientStore>> profile
        = ClientStore::open(QDir(seedDir).filePath(u"profile"_qs));
    if (!profile
        || !profile.value()->saveAccount(
            AccountInfo { QStringLiteral("ws://127.0.0.1:9"), Reader, device->id, token })) {
        return fail(QStringLiteral("could not write the reader's profile"));
    }
    QFile marker(QDir(seedDir).filePath(u"messages"_qs));
    if (!marker.open(QIODevice::WriteOnly) || marker.write(QByteArray::number(total)) < 0) {
        return fail(QStringLiteral("could not write the seed's size"));
    }
    return 0;
}

bool copyTree(const QString& from, const QString& to)
{
    QDir().mkpath(to);
    const QDir source(from);
    for (const QFileInfo& entry :
        source.entryInfoList(QDir::Files | QDir::Dirs | QDir::NoDotAndDotDot)) {
        const QString target = QDir(to).filePath(entry.fileName());
        if (entry.isDir() ? !copyTree(entry.filePath(), target)
                          : !QFile::copy(entry.filePath(), target)) {
            return false;
        }
    }
    return true;
}

double processCpuSeconds()
{
    rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

/// User and system time of another process, from /proc/<pid>/stat.
double childCpuSeconds(qint64 pid)
{
    QFile stat(u"/proc/" + QString::number(pid) + u"/stat");
    if (!stat.open(QIODevice::ReadOnly)) {
        return 0;
    }
    const QByteArray line = stat.readAll();
    // The command name may hold spaces; the fields counted here start after its ')'.
    const QList<QByteArray> fields = line.mid(line.lastIndexOf(')') + 2).split(' ');
    if (fields.size() < 13) {
        return 0;
    }
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    return (fields.at(11).toDouble() + fields.at(12).toDouble()) / ticks;
}

qint64 storedMessages(const QString& profileDir)
{
    const QString name = QStringLiteral("bench-count");
    qint64 count = -1;
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), name);
        db.setDatabaseName(QDir(profileDir).filePath(u"ferry.db"_qs));
        db.setConnectOptions(QStringLiteral("QSQLITE_OPEN_READONLY"));
        if (db.open()) {
            QSqlQuery query(db);
            if (query.exec(QStringLiteral("SELECT count(*) FROM messages")) && query.next()) {
                count = query.value(0).toLongLong();
            }
        }
        db.close();
    }
    QSqlDatabase::removeDatabase(name);
    return count;
}

struct CatchUp {
    int syncBatch = 0;
    double seconds = 0; ///< engine start to caughtUp
    double connectSeconds = 0; ///< engine start to the first sync request (connect + auth)
    double clientCpu = 0;
    double serverCpu = 0;
    qint64 stored = 0;
    int batches = 0;
};

std::optional<CatchUp> catchUp(const QString& seedDir, const QString& workDir, int syncBatch)
{
    const QString dataDir = QDir(workDir).filePath(u"server"_qs);
    const QString profileDir = QDir(workDir).filePath(u"profile"_qs);
    if (!copyTree(QDir(seedDir).filePath(u"server"_qs), dataDir)
        || !copyTree(QDir(seedDir).filePath(u"profile"_qs), profileDir)) {
        fail(u"could not copy the seed into "_qs + workDir);
        return std::nullopt;
    }
    test::ServerProcess server(
        dataDir, { QStringLiteral("--sync-batch"), QString::number(syncBatch) });
    if (!server.start()) {
        fail(server.errorString());
        return std::nullopt;
    }

    CatchUp result;
    result.syncBatch = syncBatch;
    {
        Result<std::unique_ptr<ClientStore>> store = ClientStore::open(profileDir);
        if (!store) {
            fail(store.error().message);
            return std::nullopt;
        }
        // The engine's default settings: it leaves the batch size to the server.
        SyncEngine engine(store.value().get());
        engine.setServerUrl(server.url());

        QEventLoop loop;
        QElapsedTimer timer;
        bool caughtUp = false;
        QObject::connect(&engine, &SyncEngine::stateChanged, &loop, [&](SyncEngine::State state) {
            if (state == SyncEngine::State::CatchingUp && result.connectSeconds == 0) {
                result.connectSeconds = static_cast<double>(timer.nsecsElapsed()) / 1e9;
            }
        });
        QObject::connect(&engine, &SyncEngine::messagesAdded, &loop,
            [&](const QList<StoredMessage>&) { ++result.batches; });
        QObject::connect(&engine, &SyncEngine::caughtUp, &loop, [&] {
            result.seconds = static_cast<double>(timer.nsecsElapsed()) / 1e9;
            caughtUp = true;
            loop.quit();
        });
        QObject::connect(&engine, &SyncEngine::stoppedWithError, &loop,
            [&](const QString&, const QString& message) {
                fail(message);
                loop.quit();
            });
        QTimer::singleShot(300'000, &loop, &QEventLoop::quit);

        const double cpuBefore = processCpuSeconds();
        const double serverCpuBefore = childCpuSeconds(server.pid());
        timer.start();
        engine.start();
        loop.exec();
        result.clientCpu = processCpuSeconds() - cpuBefore;
        result.serverCpu = childCpuSeconds(server.pid()) - serverCpuBefore;
        engine.stop();
        if (!caughtUp) {
            fail(QStringLiteral("the engine did not catch up within 300 s"));
            return std::nullopt;
        }
    }
    server.requestStop();
    server.waitForStopped();
    result.stored = storedMessages(profileDir);
    return result;
}

int run(const QString& seedDir, const QString& resultsDir, const QList<int>& batches,
    const QStringList& arguments)
{
    QFile marker(QDir(seedDir).filePath(u"messages"_qs));
    if (!marker.open(QIODevice::ReadOnly)) {
        return fail(u"no seed in "_qs + seedDir);
    }
    const qint64 total = marker.readAll().toLongLong();

    bench::BenchReport report;
    report.scenario = QStringLiteral("catch-up");
    report.command = bench::commandLine(arguments);
    report.figures[u"messages"] = total;
    report.figures[u"target_seconds"] = 3.0;
    QJsonArray runs;
    std::printf("catch-up: %lld messages waiting for one device, real ferry-server on 127.0.0.1\n",
        static_cast<long long>(total));
    bool allMet = true;
    for (const int batch : batches) {
        QDir().mkpath(resultsDir);
        QTemporaryDir work(QDir(resultsDir).filePath(u"catch-up-XXXXXX"_qs));
        if (!work.isValid()) {
            return fail(u"could not create a folder in "_qs + resultsDir);
        }
        const std::optional<CatchUp> result = catchUp(seedDir, work.path(), batch);
        if (!result) {
            return 1;
        }
        if (result->stored != total) {
            return fail(u"the store holds "_qs + QString::number(result->stored) + u" of "
                + QString::number(total) + u" messages after catching up");
        }
        const double rate = static_cast<double>(total) / result->seconds;
        const bool met = result->seconds < 3.0;
        allMet = allMet && met;
        std::printf("  --sync-batch %5d: %6.2f s to commit all (connect+auth %.3f s), "
                    "%7.0f messages/s, %d batches; CPU client %.2f s, server %.2f s; "
                    "target < 3 s: %s\n",
            batch, result->seconds, result->connectSeconds, rate, result->batches,
            result->clientCpu, result->serverCpu, met ? "met" : "missed");
        QJsonObject figures;
        figures[u"sync_batch"] = batch;
        figures[u"seconds"] = result->seconds;
        figures[u"connect_seconds"] = result->connectSeconds;
        figures[u"messages_per_second"] = rate;
        figures[u"batches"] = result->batches;
        figures[u"client_cpu_seconds"] = result->clientCpu;
        figures[u"server_cpu_seconds"] = result->serverCpu;
        figures[u"target_met"] = met;
        runs.append(figures);
    }
    report.figures[u"runs"] = runs;
    report.figures[u"target_met"] = allMet;
    return report.write(resultsDir) ? 0 : 1;
}

} // namespace

int main(int argc, char* argv[])
{
    QCoreApplication app(argc, argv);
    const QStringList arguments = app.arguments();
    if (arguments.size() >= 4 && arguments.at(1) == u"seed") {
        return seed(arguments.at(2), std::max(1, arguments.at(3).toInt()));
    }
    if (arguments.size() >= 5 && arguments.at(1) == u"run") {
        QList<int> batches;
        for (const QString& batch : arguments.mid(4)) {
            batches.append(std::max(1, batch.toInt()));
        }
        return run(arguments.at(2), arguments.at(3), batches, arguments);
    }
    std::fprintf(stderr,
        "usage: bench_client_catchup seed <seed-dir> <messages>\n"
        "       bench_client_catchup run <seed-dir> <results-dir> <sync-batch>...\n");
    return 2;
}
