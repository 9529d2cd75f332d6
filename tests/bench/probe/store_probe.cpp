// store_probe: the cost of the server store's group commit alone, without sockets or frames.
// 1,000 users in 500 pairs send 100-byte direct messages to their partner (the shape of
// `ferry-load direct --users 1000`), stored with SqliteServerStore::appendMessages in batches of
// each size given; prints, per message of each size, the thread's CPU time, the wall time and
// the pages written to the write-ahead log (4 KiB each; the log starts over now and then, and a
// commit after such a start counts the whole new log).
// The store's CPU per message is what bounds the server's direct-message rate, and it is far
// steadier than a latency measured over the network on a shared machine, so this is the figure
// to compare two builds by.
//
//   store_probe [--messages N] [--batches 10,50,200] [--dir DIR]

#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "server-stub/SqliteServerStore.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QElapsedTimer>
#include <QTemporaryDir>

#include <cstdio>
#include <ctime>
#include <random>

using namespace ferry;
using namespace ferry::server;

namespace {

constexpr int Users = 1000;

double threadCpuSeconds()
{
    timespec now {};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return double(now.tv_sec) + double(now.tv_nsec) / 1e9;
}

} // namespace

int main(int argc, char* argv[])
{
    QCoreApplication app(argc, argv);
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("CPU and wall time per message of the "
                                                    "server store's group commit."));
    parser.addHelpOption();
    const QCommandLineOption messagesOption(QStringLiteral("messages"),
        QStringLiteral("Messages stored per batch size (100000)."), QStringLiteral("n"),
        QStringLiteral("100000"));
    const QCommandLineOption batchesOption(QStringLiteral("batches"),
        QStringLiteral("Batch sizes, comma-separated (10,50,200)."), QStringLiteral("list"),
        QStringLiteral("10,50,200"));
    const QCommandLineOption dirOption(QStringLiteral("dir"),
        QStringLiteral("Folder for the database (a temporary one)."), QStringLiteral("dir"));
    parser.addOptions({ messagesOption, batchesOption, dirOption });
    parser.process(app);
    const int messagesPerSize = parser.value(messagesOption).toInt();

    QTemporaryDir temporary;
    const QString dir = parser.isSet(dirOption) ? parser.value(dirOption) : temporary.path();
    Result<std::unique_ptr<SqliteServerStore>> opened = SqliteServerStore::open(dir);
    if (!opened) {
        std::fprintf(stderr, "store_probe: %s\n", qPrintable(opened.error().message));
        return 1;
    }
    SqliteServerStore& store = *opened.value();

    QList<UserRecord> users;
    for (int i = 0; i < Users; ++i) {
        // A hash as long as a real Argon2id one, so that user rows are as wide as the server's.
        Result<UserRecord> user = store.createUser(
            QStringLiteral("user%1").arg(i, 4, 10, QLatin1Char('0')), QByteArray(97, 'h'));
        if (!user) {
            std::fprintf(stderr, "store_probe: %s\n", qPrintable(user.error().message));
            return 1;
        }
        users.append(user.value());
    }

    std::mt19937 random(7);
    std::uniform_int_distribution<int> anyUser(0, Users - 1);
    const QByteArray body(100, 'b');
    const auto nextMessage = [&] {
        const UserRecord& sender = users[anyUser(random)];
        const UserRecord& partner = users[(sender.id - users.first().id) ^ 1];
        NewMessage message;
        message.messageId = MessageId::generate().bytes();
        message.conversationId = directConversationId(sender.name, partner.name);
        message.senderUserId = sender.id;
        message.senderName = sender.name;
        message.senderDeviceId = 1;
        message.body = body;
        return message;
    };

    // Every conversation exists and every log has entries before anything is timed.
    for (int i = 0; i < 20; ++i) {
        QList<NewMessage> warmup;
        for (int j = 0; j < 500; ++j) {
            warmup.append(nextMessage());
        }
        store.appendMessages(warmup);
    }

    std::printf("batch  messages  cpu us/msg  wall us/msg  log pages/msg\n");
    for (const QString& sizeText : parser.value(batchesOption).split(QLatin1Char(','))) {
        const int batchSize = sizeText.toInt();
        if (batchSize <= 0) {
            continue;
        }
        // Only the store is timed, not the making of the messages.
        double cpuSeconds = 0;
        qint64 wallNs = 0;
        qint64 logPagesWritten = 0;
        qint64 logPages = store.logStats().logPages;
        int stored = 0;
        while (stored < messagesPerSize) {
            QList<NewMessage> batch;
            for (int j = 0; j < batchSize; ++j) {
                batch.append(nextMessage());
            }
            const double cpuBefore = threadCpuSeconds();
            QElapsedTimer wall;
            wall.start();
            const QList<Result<StoredMessageAck>> results = store.appendMessages(batch);
            wallNs += wall.nsecsElapsed();
            cpuSeconds += threadCpuSeconds() - cpuBefore;
            const qint64 logPagesNow = store.logStats().logPages;
            logPagesWritten += logPagesNow >= logPages ? logPagesNow - logPages : logPagesNow;
            logPages = logPagesNow;
            for (const Result<StoredMessageAck>& result : results) {
                if (!result) {
                    std::fprintf(stderr, "store_probe: %s\n", qPrintable(result.error().message));
                    return 1;
                }
            }
            stored += batchSize;
        }
        const double cpuUs = cpuSeconds * 1e6 / stored;
        const double wallUs = double(wallNs) / 1e3 / stored;
        std::printf("%5d  %8d  %10.1f  %11.1f  %13.2f\n", batchSize, stored, cpuUs, wallUs,
            double(logPagesWritten) / stored);
    }
    return 0;
}
