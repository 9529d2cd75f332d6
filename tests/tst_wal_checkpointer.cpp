// WalCheckpointer: the server's write-ahead log is copied back into the database on a thread of
// its own, so commits never wait for it; the log still stays bounded, by the thread or, when the
// thread falls far behind, by the committing connection itself; and nothing written is lost.
// Runs on plain SQLite files in a temporary folder, with SQLite's C API as the writer.

#include "server-stub/WalCheckpointer.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <memory>
#include <sqlite3.h>

using ferry::server::WalCheckpointer;
using namespace Qt::StringLiterals;

namespace {

constexpr int WaitMs = 10'000;

/// A writer connection on a WAL database with one table, closed when it goes.
class Writer {
public:
    explicit Writer(const QString& path)
    {
        if (sqlite3_open(QFile::encodeName(path).constData(), &m_db) != SQLITE_OK) {
            return;
        }
        // No automatic checkpoint of SQLite's own: what keeps the log short here is the class
        // under test (it replaces SQLite's hook anyway; this makes a failure to do so visible).
        m_ok = exec("PRAGMA journal_mode = WAL") && exec("PRAGMA wal_autocheckpoint = 0")
            && exec("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body BLOB)");
    }
    ~Writer() { sqlite3_close_v2(m_db); }

    bool isOk() const { return m_ok; }
    sqlite3* handle() const { return m_db; }

    bool exec(const char* sql)
    {
        return sqlite3_exec(m_db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
    }

    /// `count` transactions of one row with a body of about a page each.
    bool writeRows(int count)
    {
        for (int i = 0; i < count; ++i) {
            if (!exec("INSERT INTO rows (body) VALUES (randomblob(3000))")) {
                return false;
            }
        }
        return true;
    }

    qint64 rowCount()
    {
        sqlite3_stmt* statement = nullptr;
        qint64 count = -1;
        if (sqlite3_prepare_v2(m_db, "SELECT count(*) FROM rows", -1, &statement, nullptr)
                == SQLITE_OK
            && sqlite3_step(statement) == SQLITE_ROW) {
            count = sqlite3_column_int64(statement, 0);
        }
        sqlite3_finalize(statement);
        return count;
    }

private:
    sqlite3* m_db = nullptr;
    bool m_ok = false;
};

} // namespace

class TestWalCheckpointer : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void theThreadCheckpointsAndTheLogStartsOver();
    void theLogStartsOverUnderASteadyStreamOfCommits();
    void aWriterFarAheadOfTheThreadCheckpointsItself();
    void aThreadThatCannotOpenTheFileCostsTheWriterNothing();
    void everyRowIsThereAfterTheStoreIsReopened();

private:
    QString newDatabase() { return m_root.filePath(u"db%1.sqlite"_s.arg(++m_databases)); }

    QTemporaryDir m_root;
    int m_databases = 0;
};

void TestWalCheckpointer::theThreadCheckpointsAndTheLogStartsOver()
{
    const QString path = newDatabase();
    Writer writer(path);
    QVERIFY(writer.isOk());
    WalCheckpointer checkpointer(writer.handle(), path, 64, 1'000'000);

    QVERIFY(writer.writeRows(200)); // each about one page: past the trigger of 64 pages
    QTRY_VERIFY_WITH_TIMEOUT(checkpointer.checkpointsDone() >= 1, WaitMs);
    QCOMPARE(checkpointer.inlineCheckpoints(), quint64(0));

    // With the log copied, a later transaction writes the log from its start again: the log
    // holds the frames since, not the 200 before. SQLite's own checkpoint is off, so this is
    // the class's work. A pause after each row gives the thread its turn on a busy machine.
    bool startedOver = false;
    for (int i = 0; i < 1'000 && !startedOver; ++i) {
        checkpointer.finishBeforeWrite();
        QVERIFY(writer.writeRows(1));
        startedOver = checkpointer.logPagesAtLastCommit() < 64;
        QTest::qSleep(5);
    }
    QVERIFY2(startedOver, "the log never started over");
}

void TestWalCheckpointer::theLogStartsOverUnderASteadyStreamOfCommits()
{
    const QString path = newDatabase();
    Writer writer(path);
    QVERIFY(writer.isOk());
    WalCheckpointer checkpointer(writer.handle(), path, 64, 1'000'000);

    // Commits back to back, never a pause for the thread to copy the last frames in: the log
    // must start over all the same, many times, and never grow far past the trigger.
    int startsOver = 0;
    int longest = 0;
    int previous = 0;
    for (int i = 0; i < 5'000 && startsOver < 3; ++i) {
        checkpointer.finishBeforeWrite();
        QVERIFY(writer.writeRows(1));
        const int pages = checkpointer.logPagesAtLastCommit();
        longest = std::max(longest, pages);
        if (pages < previous) {
            ++startsOver;
        }
        previous = pages;
    }
    QVERIFY2(startsOver >= 3, qPrintable(u"the log started over %1 times"_s.arg(startsOver)));
    QVERIFY(checkpointer.finishingCheckpoints() >= 1);
    QCOMPARE(checkpointer.inlineCheckpoints(), quint64(0));
    qInfo("longest log %d pages; thread checkpoints %llu, finished by the writer %llu", longest,
        checkpointer.checkpointsDone(), checkpointer.finishingCheckpoints());
}

void TestWalCheckpointer::aWriterFarAheadOfTheThreadCheckpointsItself()
{
    const QString path = newDatabase();
    Writer writer(path);
    QVERIFY(writer.isOk());
    // The thread is never asked (its trigger is out of reach); the limit is what bounds the log.
    WalCheckpointer checkpointer(writer.handle(), path, 1'000'000, 32);

    QVERIFY(writer.writeRows(200));
    QVERIFY(checkpointer.inlineCheckpoints() >= 1);
    QCOMPARE(checkpointer.checkpointsDone(), quint64(0));
    QVERIFY2(checkpointer.logPagesAtLastCommit() < 64, "the log grew past its limit");
}

void TestWalCheckpointer::aThreadThatCannotOpenTheFileCostsTheWriterNothing()
{
    const QString path = newDatabase();
    Writer writer(path);
    QVERIFY(writer.isOk());
    // The thread opens the file by its path; here the path leads nowhere.
    WalCheckpointer checkpointer(
        writer.handle(), m_root.filePath(u"missing/db.sqlite"_s), 16, 1'000'000);

    QVERIFY(writer.writeRows(100));
    QTest::qWait(200); // time for the thread to try, fail, and wait before trying again
    QCOMPARE(checkpointer.checkpointsDone(), quint64(0));
    QCOMPARE(writer.rowCount(), qint64(100));
    QVERIFY(!QFile::exists(m_root.filePath(u"missing/db.sqlite"_s)));
}

void TestWalCheckpointer::everyRowIsThereAfterTheStoreIsReopened()
{
    const QString path = newDatabase();
    {
        Writer writer(path);
        QVERIFY(writer.isOk());
        WalCheckpointer checkpointer(writer.handle(), path, 8, 64);
        QVERIFY(writer.writeRows(500));
        QTRY_VERIFY_WITH_TIMEOUT(checkpointer.checkpointsDone() >= 1, WaitMs);
        // The checkpointer goes first, then the writer closes with the log checkpointed in full.
    }
    QVERIFY2(!QFile::exists(path + u"-wal"_s), "the last connection did not remove the log");
    Writer reopened(path);
    QVERIFY(reopened.isOk());
    QCOMPARE(reopened.rowCount(), qint64(500));
}

QTEST_GUILESS_MAIN(TestWalCheckpointer)
#include "tst_wal_checkpointer.moc"
