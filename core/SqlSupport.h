#pragma once

#include "core/Result.h"

#include <QSqlDatabase>
#include <QSqlError>

class QSqlQuery;

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

} // namespace ferry
