// Scenario 5, client ingest: how many received messages per second ClientStore commits, each
// checked against the store so that none is stored twice, with the production durability (WAL,
// synchronous=FULL, one transaction per event batch). The ceiling is measured in the same run:
// the same rows, in batches of the same size, inserted with SQLite's C API into a table and
// indexes copied from the ClientStore file, under the same pragmas.
//   bench_client_ingest <results-dir> [messages] [batch]...

#include "core/ClientStore.h"
#include "core/MessageId.h"
#include "tests/bench/client/BenchReport.h"

#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QJsonArray>
#include <QJsonObject>
#include <QTemporaryDir>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sqlite3.h>

using namespace ferry;

namespace {

constexpr int Conversations = 50;
const QString Reader = QStringLiteral("reader");

/// Messages as a catch-up delivers them: interleaved over many direct conversations, each
/// conversation's seq rising by one, bodies of about 100 bytes.
QList<IncomingMessage> makeMessages(int total)
{
    QList<IncomingMessage> messages;
    messages.reserve(total);
    QList<quint64> lastSeq(Conversations, 0);
    for (int i = 0; i < total; ++i) {
        const int conversation = i % Conversations;
        const QString peer = u"peer" + QString::number(conversation);
        IncomingMessage message;
        message.offset = static_cast<quint64>(i) + 1;
        message.messageId = MessageId::generate().bytes();
        message.conversationId = u"direct:" + peer + u":" + Reader;
        message.seq = ++lastSeq[conversation];
        message.sender = peer;
        message.body = "Message " + QByteArray::number(i)
            + " of the ingest benchmark, about a hundred bytes long like a short chat line.";
        message.serverTimeMs = 1'700'000'000'000 + i;
        messages.append(message);
    }
    return messages;
}

/// CPU time of this process: on a machine shared with other work, wall time measures the
/// neighbours too; CPU time shows what the code itself costs.
double cpuSeconds()
{
    timespec now {};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

struct Timing {
    double seconds = 0;
    double cpu = 0;
    QList<double> batchMs; ///< sorted
};

double percentile(const QList<double>& sorted, double fraction)
{
    if (sorted.isEmpty()) {
        return 0;
    }
    const auto index = static_cast<qsizetype>(fraction * static_cast<double>(sorted.size() - 1));
    return sorted.at(index);
}

/// Applies `messages` in batches as the sync engine does; offsets start after `offsetBase`.
std::optional<Timing> ingest(ClientStore& store, const QList<IncomingMessage>& messages, int batch,
    quint64 offsetBase, int* added, int* duplicates)
{
    Timing timing;
    const double cpuStart = cpuSeconds();
    QElapsedTimer total;
    total.start();
    for (qsizetype first = 0; first < messages.size(); first += batch) {
        QList<IncomingMessage> events = messages.mid(first, batch);
        for (IncomingMessage& event : events) {
            event.offset += offsetBase;
        }
        QElapsedTimer one;
        one.start();
        Result<AppliedEvents> applied = store.applyEvents(events, events.last().offset);
        if (!applied) {
            std::fprintf(stderr, "bench: %s\n", qPrintable(applied.error().message));
            return std::nullopt;
        }
        timing.batchMs.append(static_cast<double>(one.nsecsElapsed()) / 1e6);
        *added += static_cast<int>(applied->added.size());
        *duplicates += applied->duplicates;
    }
    timing.seconds = static_cast<double>(total.nsecsElapsed()) / 1e9;
    timing.cpu = cpuSeconds() - cpuStart;
    std::sort(timing.batchMs.begin(), timing.batchMs.end());
    return timing;
}

bool exec(sqlite3* db, const char* sql)
{
    char* error = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
        std::fprintf(stderr, "bench: sqlite: %s (%s)\n", error ? error : "?", sql);
        sqlite3_free(error);
        return false;
    }
    return true;
}

/// The ceiling: the same rows into a copy of the messages table and its indexes, one
/// transaction per batch, a statement prepared once, nothing else.
std::optional<Timing> rawSqlite(const QString& schemaFrom, const QString& path,
    const QList<IncomingMessage>& messages, int batch)
{
    QStringList schema;
    {
        sqlite3* source = nullptr;
        sqlite3_open_v2(schemaFrom.toUtf8().constData(), &source, SQLITE_OPEN_READONLY, nullptr);
        sqlite3_stmt* read = nullptr;
        sqlite3_prepare_v2(source,
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'messages' AND sql IS NOT NULL"
            " ORDER BY type DESC",
            -1, &read, nullptr);
        while (read && sqlite3_step(read) == SQLITE_ROW) {
            schema.append(
                QString::fromUtf8(reinterpret_cast<const char*>(sqlite3_column_text(read, 0))));
        }
        sqlite3_finalize(read);
        sqlite3_close(source);
    }
    if (schema.isEmpty()) {
        std::fprintf(stderr, "bench: could not read the messages schema\n");
        return std::nullopt;
    }

    sqlite3* db = nullptr;
    if (sqlite3_open(path.toUtf8().constData(), &db) != SQLITE_OK) {
        return std::nullopt;
    }
    bool ok = exec(db, "PRAGMA journal_mode = WAL") && exec(db, "PRAGMA synchronous = FULL");
    for (const QString& statement : std::as_const(schema)) {
        ok = ok && exec(db, statement.toUtf8().constData());
    }
    sqlite3_stmt* insert = nullptr;
    ok = ok
        && sqlite3_prepare_v2(db,
               "INSERT OR IGNORE INTO messages (message_id, conversation_id, sender, body, seq,"
               " state, server_time_ms, written_ms, kind) VALUES (?, ?, ?, ?, ?, 2, ?, ?, 0)",
               -1, &insert, nullptr)
            == SQLITE_OK;
    if (!ok) {
        sqlite3_close(db);
        return std::nullopt;
    }

    // The rows are converted to UTF-8 before timing, as they would arrive from the wire.
    struct Row {
        QByteArray conversation, sender;
    };
    QList<Row> rows;
    rows.reserve(messages.size());
    for (const IncomingMessage& message : messages) {
        rows.append(Row { message.conversationId.toUtf8(), message.sender.toUtf8() });
    }

    Timing timing;
    const double cpuStart = cpuSeconds();
    QElapsedTimer total;
    total.start();
    for (qsizetype first = 0; first < messages.size() && ok; first += batch) {
        QElapsedTimer one;
        one.start();
        ok = exec(db, "BEGIN IMMEDIATE");
        const qsizetype end = std::min(messages.size(), first + batch);
        for (qsizetype i = first; i < end && ok; ++i) {
            const IncomingMessage& message = messages.at(i);
            sqlite3_bind_blob(insert, 1, message.messageId.constData(),
                static_cast<int>(message.messageId.size()), SQLITE_STATIC);
            sqlite3_bind_text(insert, 2, rows.at(i).conversation.constData(),
                static_cast<int>(rows.at(i).conversation.size()), SQLITE_STATIC);
            sqlite3_bind_text(insert, 3, rows.at(i).sender.constData(),
                static_cast<int>(rows.at(i).sender.size()), SQLITE_STATIC);
            sqlite3_bind_blob(insert, 4, message.body.constData(),
                static_cast<int>(message.body.size()), SQLITE_STATIC);
            sqlite3_bind_int64(insert, 5, static_cast<sqlite3_int64>(message.seq));
            sqlite3_bind_int64(insert, 6, message.serverTimeMs);
            sqlite3_bind_int64(insert, 7, message.serverTimeMs);
            ok = sqlite3_step(insert) == SQLITE_DONE;
            sqlite3_reset(insert);
        }
        ok = ok && exec(db, "COMMIT");
        timing.batchMs.append(static_cast<double>(one.nsecsElapsed()) / 1e6);
    }
    timing.seconds = static_cast<double>(total.nsecsElapsed()) / 1e9;
    timing.cpu = cpuSeconds() - cpuStart;
    sqlite3_finalize(insert);
    sqlite3_close(db);
    if (!ok) {
        return std::nullopt;
    }
    std::sort(timing.batchMs.begin(), timing.batchMs.end());
    return timing;
}

/// The figures of one batch size: ClientStore, duplicates, and the raw SQLite ceiling.
std::optional<QJsonObject> measureBatch(
    const QString& resultsDir, const QList<IncomingMessage>& messages, int batch)
{
    const int total = static_cast<int>(messages.size());
    // The temporary profiles go beside the results, on the disk whose fsync is being measured.
    QDir().mkpath(resultsDir);
    QTemporaryDir work(QDir(resultsDir).filePath(QStringLiteral("ingest-XXXXXX")));
    if (!work.isValid()) {
        std::fprintf(stderr, "bench: could not create a folder in %s\n", qPrintable(resultsDir));
        return std::nullopt;
    }
    Result<std::unique_ptr<ClientStore>> store = ClientStore::open(work.filePath(u"profile"_qs));
    if (!store
        || !store.value()->saveAccount(
            AccountInfo { QStringLiteral("ws://127.0.0.1:9"), Reader, 1, "token" })) {
        std::fprintf(stderr, "bench: could not create the profile\n");
        return std::nullopt;
    }
    int added = 0;
    int duplicates = 0;
    const std::optional<Timing> fresh
        = ingest(*store.value(), messages, batch, 0, &added, &duplicates);
    if (!fresh || added != total) {
        std::fprintf(stderr, "bench: %d of %d messages were stored\n", added, total);
        return std::nullopt;
    }
    // The same messages again under new offsets, as when a history page or a second path brings
    // what is already stored: every one must be recognised and none stored again.
    const QList<IncomingMessage> again = messages.mid(0, std::min(total, 50'000));
    int addedAgain = 0;
    int recognised = 0;
    const std::optional<Timing> replay = ingest(
        *store.value(), again, batch, static_cast<quint64>(total), &addedAgain, &recognised);
    if (!replay || addedAgain != 0 || recognised != again.size()) {
        std::fprintf(stderr, "bench: replay stored %d again, recognised %d of %lld\n", addedAgain,
            recognised, static_cast<long long>(again.size()));
        return std::nullopt;
    }
    const std::optional<Timing> ceiling
        = rawSqlite(store.value()->databasePath(), work.filePath(u"raw.db"_qs), messages, batch);
    if (!ceiling) {
        return std::nullopt;
    }

    const double rate = total / fresh->seconds;
    const double replayRate = static_cast<double>(again.size()) / replay->seconds;
    const double ceilingRate = total / ceiling->seconds;
    std::printf("client ingest: %d messages in batches of %d\n", total, batch);
    std::printf("  ClientStore::applyEvents  %9.0f messages/s  (batch commit p50 %.2f ms, "
                "p99 %.2f ms)\n",
        rate, percentile(fresh->batchMs, 0.5), percentile(fresh->batchMs, 0.99));
    std::printf("  duplicates recognised     %9.0f messages/s  (%lld already stored)\n", replayRate,
        static_cast<long long>(again.size()));
    std::printf("  raw SQLite C API ceiling  %9.0f messages/s  (batch commit p50 %.2f ms)\n",
        ceilingRate, percentile(ceiling->batchMs, 0.5));
    std::printf("  ClientStore / ceiling     %9.2f   target > 100000 messages/s: %s\n",
        rate / ceilingRate, rate > 100'000 ? "met" : "missed");
    std::printf("  per CPU second: ClientStore %.0f, raw SQLite %.0f messages (ratio %.2f)\n",
        total / fresh->cpu, total / ceiling->cpu, ceiling->cpu / fresh->cpu);

    QJsonObject figures;
    figures[u"batch"] = batch;
    figures[u"messages_per_second"] = rate;
    figures[u"batch_commit_p50_ms"] = percentile(fresh->batchMs, 0.5);
    figures[u"batch_commit_p99_ms"] = percentile(fresh->batchMs, 0.99);
    figures[u"duplicates_per_second"] = replayRate;
    figures[u"messages_per_cpu_second"] = total / fresh->cpu;
    figures[u"target_met"] = rate > 100'000;
    figures[u"raw_sqlite_messages_per_second"] = ceilingRate;
    figures[u"raw_sqlite_batch_commit_p50_ms"] = percentile(ceiling->batchMs, 0.5);
    figures[u"raw_sqlite_messages_per_cpu_second"] = total / ceiling->cpu;
    figures[u"ratio_to_raw_sqlite"] = rate / ceilingRate;
    figures[u"ratio_to_raw_sqlite_cpu"] = ceiling->cpu / fresh->cpu;
    return figures;
}

} // namespace

int main(int argc, char* argv[])
{
    QCoreApplication app(argc, argv);
    const QStringList arguments = app.arguments();
    if (arguments.size() < 2) {
        std::fprintf(stderr, "usage: bench_client_ingest <results-dir> [messages] [batch]...\n");
        return 2;
    }
    const QString resultsDir = arguments.at(1);
    const int total = arguments.size() > 2 ? std::max(1000, arguments.at(2).toInt()) : 200'000;
    QList<int> batches;
    for (const QString& batch : arguments.mid(3)) {
        batches.append(std::max(1, batch.toInt()));
    }
    if (batches.isEmpty()) {
        batches.append(500);
    }
    const QList<IncomingMessage> messages = makeMessages(total);

    // The first batch size is the headline (500: the server's default sync batch); the others
    // show how the rate moves with the batch, the ceiling measured alike for each.
    bench::BenchReport report;
    report.scenario = QStringLiteral("client-ingest");
    report.command = bench::commandLine(arguments);
    report.figures[u"messages"] = total;
    report.figures[u"target_messages_per_second"] = 100'000;
    QJsonArray runs;
    for (const int batch : std::as_const(batches)) {
        const std::optional<QJsonObject> figures = measureBatch(resultsDir, messages, batch);
        if (!figures) {
            return 1;
        }
        runs.append(*figures);
    }
    const QJsonObject first = runs.first().toObject();
    for (const char* key :
        { "batch", "messages_per_second", "batch_commit_p50_ms", "batch_commit_p99_ms",
            "duplicates_per_second", "messages_per_cpu_second", "target_met" }) {
        report.figures[QLatin1String(key)] = first[QLatin1String(key)];
    }
    report.figures[u"runs"] = runs;
    report.baseline[u"raw_sqlite_messages_per_second"] = first[u"raw_sqlite_messages_per_second"];
    report.baseline[u"raw_sqlite_messages_per_cpu_second"]
        = first[u"raw_sqlite_messages_per_cpu_second"];
    report.ratios[u"clientstore_to_raw_sqlite"] = first[u"ratio_to_raw_sqlite"];
    report.ratios[u"clientstore_to_raw_sqlite_cpu"] = first[u"ratio_to_raw_sqlite_cpu"];
    return report.write(resultsDir) ? 0 : 1;
}
