#include "tests/support/SqliteFile.h"

#include <QSqlError>

#include <atomic>

namespace ferry::test {

SqliteFile::SqliteFile(const QString& path, Access access)
{
    static std::atomic<int> opened { 0 };
    m_connectionName = u"test-sqlite-file-" + QString::number(++opened);
    m_database = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), m_connectionName);
    m_database.setDatabaseName(path);
    if (access == Access::ReadOnly) {
        m_database.setConnectOptions(QStringLiteral("QSQLITE_OPEN_READONLY"));
    }
    if (!m_database.open()) {
        m_openError = m_database.lastError().text();
    }
}

SqliteFile::~SqliteFile()
{
    m_database.close();
    // The registry removes a connection only once no handle to it is left.
    m_database = QSqlDatabase();
    QSqlDatabase::removeDatabase(m_connectionName);
}

} // namespace ferry::test
