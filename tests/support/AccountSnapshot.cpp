#include "tests/support/AccountSnapshot.h"

#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"
#include "tests/support/TestFiles.h"

#include <QDir>

namespace ferry::test {

Result<Done> AccountSnapshot::create(const QString& folder, const QStringList& users)
{
    m_folder = folder;
    m_users = users;
    ServerProcess server(QDir(folder).filePath(QStringLiteral("server")));
    if (!server.start()) {
        return Error { QStringLiteral("server"), server.errorString() };
    }
    for (const QString& user : users) {
        const Ctl ctl(QDir(folder).filePath(user), server.url());
        const CtlRun registration = ctl.registerUser(user, QStringLiteral("test"));
        if (!registration.ok()) {
            return Error { QStringLiteral("ferryctl"), registration.describe() };
        }
    }
    if (!server.stop()) {
        return Error { QStringLiteral("server"), server.errorString() };
    }
    return Done {};
}

Result<Done> AccountSnapshot::copyTo(const QString& folder) const
{
    for (const QString& name : QStringList { QStringLiteral("server") } + m_users) {
        const Result<Done> copied
            = copyFolderFiles(QDir(m_folder).filePath(name), QDir(folder).filePath(name));
        if (!copied) {
            return copied.error();
        }
    }
    return Done {};
}

} // namespace ferry::test
