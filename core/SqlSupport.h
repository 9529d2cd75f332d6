#pragma once

#include "core/Result.h"

#include <QSqlDatabase>
#include <QSqlError>

#include <array>

class QSqlQuery;
struct sqlite3;
struct sqlite3_stmt;

namespace ferry {

/// The kind of a SQLite failure: "damaged" (corrupt or not a database), "busy" (locked by
/// another process), "read-only", "disk-full", "cannot-open", "io-error", else "storage".
QString storageErrorKind(const QSqlError& error);

/// An Error that says what could not be done and what SQLite answered, of the kind above.
Error storageError(const QString& what, const QSqlError& error);
Error storageError(const QString& what, const QSqlQuery& query);

/// Opens a SQLite database under its own connection name with the settings every Ferry database
/// uses: a busy timeout so that concurrent writers wait instead of failing, write-ahead logging,
/// and full synchronous commits so that a commit that returned has reached the disk. Refuses
/// (and leaves untouched) a file that is damaged or belongs to another program, recognised by
/// its application id or, in a file without one, by the tables already in it.
Result<QSqlDatabase> openSqliteDatabase(
    const QString& path, const QString& connectionName, qint64 applicationId);

/// The schema version stored in the file (PRAGMA user_version).
int sqliteSchemaVersion(const QSqlDatabase& db);

/// The SQLite connection under a QSqlDatabase of Qt's SQLite driver; null for any other.
sqlite3* sqliteHandle(const QSqlDatabase& db);

/// Bytes SQLite's page cache of this connection holds now; -1 if it is no SQLite connection.
qint64 sqliteCacheBytes(const QSqlDatabase& db);

/// Runs the migration steps from the file's version up to steps.size(), each version in its own
/// transaction, stamping the application id and the new version with it.
Result<Done> migrateSqliteSchema(
    QSqlDatabase db, const QList<QStringList>& steps, qint64 applicationId);

/// A write transaction that rolls back unless committed. BEGIN IMMEDIATE takes the write lock up
/// front, so two processes writing one file queue for it instead of deadlocking on an upgrade.
class WriteTransaction {
public:
    explicit WriteTransaction(QSqlDatabase db);
    ~WriteTransaction();
    WriteTransaction(const WriteTransaction&) = delete;
    WriteTransaction& operator=(const WriteTransaction&) = delete;

    bool isOpen() const { return m_open; }
    QSqlError error() const { return m_error; }
    bool commit();

private:
    QSqlDatabase m_db;
    QSqlError m_error;
    bool m_open = false;
};

/// A statement prepared on a QSqlDatabase's own SQLite connection through SQLite's C API, for
/// the few loops that run once per received message: Qt's binding converts every value through
/// QVariant and every string to UTF-16, which costs more than SQLite's insert itself. It runs in
/// whatever transaction the connection is in. Bound blobs and text are not copied: they must
/// stay alive until step() returns.
class PreparedStatement {
public:
    PreparedStatement(const QSqlDatabase& db, const char* sql);
    ~PreparedStatement();
    PreparedStatement(const PreparedStatement&) = delete;
    PreparedStatement& operator=(const PreparedStatement&) = delete;

    bool isValid() const { return m_statement != nullptr; }
    void bindBlob(int index, const QByteArray& bytes);
    void bindText(int index, const QByteArray& utf8);
    void bindInt64(int index, qint64 value);
    /// Runs the statement to its end and resets it for the next bindings; false on an error.
    bool run();
    /// Runs a query for its first row, keeps up to four of its columns as integers for
    /// hasRow() and int64At(), and resets the statement; false on an error.
    bool runQuery();
    /// Runs a query to its end, appends its first column of every row to `values` as integers,
    /// and resets the statement; false on an error.
    bool runQueryColumn(QList<qint64>* values);
    bool hasRow() const { return m_hasRow; }
    qint64 int64At(int column) const { return m_row.at(column); }
    bool isNullAt(int column) const { return m_rowNull.at(column); }
    /// Rows the last run() inserted, changed or deleted.
    int changes() const;
    qint64 lastInsertRowId() const;
    /// What SQLite said about the last failure, with its code, for storageError().
    QSqlError error() const { return m_error; }

private:
    void fail();
    /// Ends a run whose last step returned `lastStep`: an error unless it was SQLITE_DONE, then
    /// resets the statement and its bindings for the next run.
    bool finishRun(int lastStep);

    static constexpr int MaxColumns = 4;
    sqlite3* m_db = nullptr;
    sqlite3_stmt* m_statement = nullptr;
    QSqlError m_error;
    bool m_hasRow = false;
    std::array<qint64, MaxColumns> m_row {};
    std::array<bool, MaxColumns> m_rowNull {};
};

} // namespace ferry
