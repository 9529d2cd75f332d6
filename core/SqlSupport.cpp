#include "core/SqlSupport.h"

#include "core/Logging.h"

#include <QFile>
#include <QFileInfo>
#include <QSqlDriver>
#include <QSqlQuery>
#include <QVariant>

#include <sqlite3.h>

#include <algorithm>

namespace ferry {

namespace {
    /// Whether the file is missing, empty, or starts with the 16 bytes of SQLite's header.
    bool hasSqliteHeaderOrIsEmpty(const QString& path)
    {
        QFile file(path);
        if (!file.exists() || file.size() == 0) {
            return true;
        }
        // A file that cannot be read here is left for SQLite to report as what it is.
        if (!file.open(QIODevice::ReadOnly)) {
            return true;
        }
        return file.read(16) == QByteArrayView("SQLite format 3\0", 16);
    }
}

QString storageErrorKind(const QSqlError& error)
{
    // SQLite's primary result code is the low byte of the (possibly extended) native code.
    bool ok = false;
    const int code = error.nativeErrorCode().toInt(&ok) & 0xff;
    if (!ok) {
        return QStringLiteral("storage");
    }
    switch (code) {
    case 11: // SQLITE_CORRUPT
    case 26: // SQLITE_NOTADB
        return QStringLiteral("damaged");
    case 5: // SQLITE_BUSY
    case 6: // SQLITE_LOCKED
        return QStringLiteral("busy");
    case 8: // SQLITE_READONLY
        return QStringLiteral("read-only");
    case 13: // SQLITE_FULL
        return QStringLiteral("disk-full");
    case 14: // SQLITE_CANTOPEN
        return QStringLiteral("cannot-open");
    case 10: // SQLITE_IOERR
        return QStringLiteral("io-error");
    default:
        return QStringLiteral("storage");
    }
}

Error storageError(const QString& what, const QSqlError& error)
{
    return Error { storageErrorKind(error), what + u": " + error.text() };
}

Error storageError(const QString& what, const QSqlQuery& query)
{
    return storageError(what, query.lastError());
}

Result<QSqlDatabase> openSqliteDatabase(
    const QString& path, const QString& connectionName, qint64 applicationId)
{
    // SQLite takes a file of a single byte for a new, empty database, and would write a fresh
    // one over it. A file with content must start with SQLite's header; one that does not is
    // damaged, reported and left as it was, like every other file SQLite itself refuses.
    if (!hasSqliteHeaderOrIsEmpty(path)) {
        return Error { QStringLiteral("damaged"),
            u"could not read " + path + u" (damaged or not a database): no SQLite header" };
    }

    QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), connectionName);
    db.setDatabaseName(path);
    db.setConnectOptions(QStringLiteral("QSQLITE_BUSY_TIMEOUT=5000"));
    if (!db.open()) {
        return storageError(u"could not open " + path, db.lastError());
    }

    // Reading the header is the first thing that fails on a file that is not a database; it is
    // reported as such and the file is left exactly as it was.
    QSqlQuery query(db);
    if (!query.exec(QStringLiteral("PRAGMA application_id")) || !query.next()) {
        // Only a file whose content is unreadable is called damaged; a locked or read-only
        // one fails here too, and its owner must not be sent looking for damage.
        const Error error = storageError(u"could not read " + path, query);
        return error.kind == u"damaged"
            ? storageError(u"could not read " + path + u" (damaged or not a database)", query)
            : error;
    }
    const qint64 storedApplicationId = query.value(0).toLongLong();
    const int version = sqliteSchemaVersion(db);

    // Without our id, a file is taken only when it is blank. Many programs never set an
    // application id, and their tables are no less theirs; a file Ferry began and never
    // finished has no tables either, as the first migration stamps the id in its transaction.
    if (!query.exec(QStringLiteral("SELECT count(*) FROM sqlite_master")) || !query.next()) {
        return storageError(u"could not read the schema of " + path, query);
    }
    const bool blank = storedApplicationId == 0 && version == 0 && query.value(0).toInt() == 0;
    if (storedApplicationId != applicationId && !blank) {
        return Error { QStringLiteral("foreign"),
            path + u" belongs to another program or another part of Ferry; it was left untouched" };
    }

    // Switching a file to write-ahead logging rewrites its header, so a damaged file must be
    // found before that, or what recovery keeps aside is no longer the file as it was. Files
    // Ferry made are in WAL mode from their first open and skip this; a file of ours in another
    // mode (copied back by some tool, or damaged) is checked whole first.
    if (!blank) {
        if (!query.exec(QStringLiteral("PRAGMA journal_mode")) || !query.next()) {
            return storageError(u"could not read " + path, query);
        }
        if (query.value(0).toString() != u"wal") {
            if (!query.exec(QStringLiteral("PRAGMA quick_check")) || !query.next()) {
                return storageError(u"could not check " + path, query);
            }
            if (const QString verdict = query.value(0).toString(); verdict != u"ok") {
                return Error { QStringLiteral("damaged"),
                    u"could not read " + path + u" (damaged): " + verdict };
            }
        }
    }
    if (!query.exec(QStringLiteral("PRAGMA journal_mode = WAL")) || !query.next()
        || query.value(0).toString() != u"wal") {
        return storageError(u"could not switch " + path + u" to write-ahead logging", query);
    }
    query.exec(QStringLiteral("PRAGMA synchronous = FULL"));
    query.exec(QStringLiteral("PRAGMA foreign_keys = ON"));
    return db;
}

int sqliteSchemaVersion(const QSqlDatabase& db)
{
    QSqlQuery query(db);
    if (!query.exec(QStringLiteral("PRAGMA user_version")) || !query.next()) {
        return -1;
    }
    return query.value(0).toInt();
}

Result<Done> migrateSqliteSchema(
    QSqlDatabase db, const QList<QStringList>& steps, qint64 applicationId)
{
    const int from = sqliteSchemaVersion(db);
    if (from < 0) {
        return storageError(QStringLiteral("could not read the schema version"), db.lastError());
    }
    if (from > steps.size()) {
        return Error { QStringLiteral("too-new"),
            db.databaseName() + u" was written by a newer Ferry (schema " + QString::number(from)
                + u"); it was left untouched" };
    }

    QSqlQuery query(db);
    for (int version = from; version < steps.size(); ++version) {
        WriteTransaction transaction(db);
        if (!transaction.isOpen()) {
            return storageError(
                QStringLiteral("could not start a schema migration"), transaction.error());
        }
        for (const QString& statement : steps[version]) {
            if (!query.exec(statement)) {
                return storageError(
                    u"could not migrate to schema " + QString::number(version + 1), query);
            }
        }
        query.exec(u"PRAGMA application_id = " + QString::number(applicationId));
        query.exec(u"PRAGMA user_version = " + QString::number(version + 1));
        if (!transaction.commit()) {
            return storageError(
                QStringLiteral("could not commit a schema migration"), transaction.error());
        }
        qCInfo(lcStore) << "Migrated" << QFileInfo(db.databaseName()).fileName() << "to schema"
                        << version + 1;
    }
    return Done {};
}

WriteTransaction::WriteTransaction(QSqlDatabase db)
    : m_db(std::move(db))
{
    QSqlQuery begin(m_db);
    m_open = begin.exec(QStringLiteral("BEGIN IMMEDIATE"));
    if (!m_open) {
        m_error = begin.lastError();
    }
}

WriteTransaction::~WriteTransaction()
{
    if (m_open) {
        QSqlQuery(m_db).exec(QStringLiteral("ROLLBACK"));
    }
}

bool WriteTransaction::commit()
{
    QSqlQuery commit(m_db);
    if (!commit.exec(QStringLiteral("COMMIT"))) {
        m_error = commit.lastError();
        return false;
    }
    m_open = false;
    return true;
}

sqlite3* sqliteHandle(const QSqlDatabase& db)
{
    // Qt's SQLite driver hands out its connection as a QVariant holding a sqlite3*.
    const QVariant handle = db.driver() ? db.driver()->handle() : QVariant();
    if (!handle.isValid() || qstrcmp(handle.typeName(), "sqlite3*") != 0) {
        return nullptr;
    }
    return *static_cast<sqlite3* const*>(handle.constData());
}

qint64 sqliteCacheBytes(const QSqlDatabase& db)
{
    sqlite3* connection = sqliteHandle(db);
    int current = 0;
    int highest = 0;
    if (!connection
        || sqlite3_db_status(connection, SQLITE_DBSTATUS_CACHE_USED, &current, &highest, 0)
            != SQLITE_OK) {
        return -1;
    }
    return current;
}

PreparedStatement::PreparedStatement(const QSqlDatabase& db, const char* sql)
{
    m_db = sqliteHandle(db);
    if (!m_db) {
        m_error = QSqlError(
            QStringLiteral("not a SQLite connection"), QString(), QSqlError::ConnectionError);
        return;
    }
    if (sqlite3_prepare_v2(m_db, sql, -1, &m_statement, nullptr) != SQLITE_OK) {
        fail();
        m_statement = nullptr;
    }
}

PreparedStatement::~PreparedStatement()
{
    sqlite3_finalize(m_statement);
}

void PreparedStatement::bindBlob(int index, const QByteArray& bytes)
{
    // An empty blob is still a blob: a null pointer would bind NULL.
    sqlite3_bind_blob(m_statement, index, bytes.isNull() ? "" : bytes.constData(),
        static_cast<int>(bytes.size()), SQLITE_STATIC);
}

void PreparedStatement::bindText(int index, const QByteArray& utf8)
{
    sqlite3_bind_text(m_statement, index, utf8.isNull() ? "" : utf8.constData(),
        static_cast<int>(utf8.size()), SQLITE_STATIC);
}

void PreparedStatement::bindInt64(int index, qint64 value)
{
    sqlite3_bind_int64(m_statement, index, value);
}

bool PreparedStatement::run()
{
    int result = SQLITE_ROW;
    while (result == SQLITE_ROW) {
        result = sqlite3_step(m_statement);
    }
    return finishRun(result);
}

bool PreparedStatement::finishRun(int lastStep)
{
    const bool ok = lastStep == SQLITE_DONE;
    if (!ok) {
        fail();
    }
    sqlite3_reset(m_statement);
    sqlite3_clear_bindings(m_statement);
    return ok;
}

bool PreparedStatement::runQuery()
{
    const int result = sqlite3_step(m_statement);
    m_hasRow = result == SQLITE_ROW;
    if (m_hasRow) {
        const int columns = std::min(MaxColumns, sqlite3_column_count(m_statement));
        for (int column = 0; column < columns; ++column) {
            m_rowNull[column] = sqlite3_column_type(m_statement, column) == SQLITE_NULL;
            m_row[column] = sqlite3_column_int64(m_statement, column);
        }
    } else if (result != SQLITE_DONE) {
        fail();
    }
    sqlite3_reset(m_statement);
    sqlite3_clear_bindings(m_statement);
    return m_hasRow || result == SQLITE_DONE;
}

bool PreparedStatement::runQueryColumn(QList<qint64>* values)
{
    int result = sqlite3_step(m_statement);
    while (result == SQLITE_ROW) {
        values->append(sqlite3_column_int64(m_statement, 0));
        result = sqlite3_step(m_statement);
    }
    return finishRun(result);
}

int PreparedStatement::changes() const
{
    return m_db ? sqlite3_changes(m_db) : 0;
}

qint64 PreparedStatement::lastInsertRowId() const
{
    return m_db ? sqlite3_last_insert_rowid(m_db) : 0;
}

void PreparedStatement::fail()
{
    const int code = m_db ? sqlite3_extended_errcode(m_db) : SQLITE_ERROR;
    m_error = QSqlError(QStringLiteral("SQLite error"),
        m_db ? QString::fromUtf8(sqlite3_errmsg(m_db)) : QString(), QSqlError::StatementError,
        QString::number(code));
}

} // namespace ferry
