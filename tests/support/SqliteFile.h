#pragma once

#include <QSqlDatabase>
#include <QString>

namespace ferry::test {

/// The test's own connection to a SQLite file, opened as another program would open it: to
/// prepare a database in an old schema, break one on purpose, hold its lock, or read what a
/// program left in it. Qt keeps connections in a registry by name; this one has a name of its
/// own and leaves the registry when it goes out of scope.
///
/// Queries on it must be gone by then (Qt warns of a connection removed while in use): declare
/// them after this object, in the same scope or an inner one.
class SqliteFile {
public:
    enum class Access { ReadWrite, ReadOnly };

    explicit SqliteFile(const QString& path, Access access = Access::ReadWrite);
    ~SqliteFile();
    SqliteFile(const SqliteFile&) = delete;
    SqliteFile& operator=(const SqliteFile&) = delete;

    bool isOpen() const { return m_database.isOpen(); }
    /// Why it did not open; empty when it did.
    QString openError() const { return m_openError; }
    QSqlDatabase database() const { return m_database; }

private:
    QString m_connectionName;
    QSqlDatabase m_database;
    QString m_openError;
};

} // namespace ferry::test
