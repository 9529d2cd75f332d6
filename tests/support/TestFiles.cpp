#include "tests/support/TestFiles.h"

#include <QDir>
#include <QFile>

namespace ferry::test {

Result<Done> copyFolderFiles(const QString& from, const QString& to)
{
    const QDir source(from);
    if (!source.exists()) {
        return Error { QStringLiteral("files"), u"there is no folder " + from };
    }
    if (!QDir().mkpath(to)) {
        return Error { QStringLiteral("files"), u"could not create " + to };
    }
    const QStringList names = source.entryList(QDir::Files | QDir::Hidden);
    for (const QString& name : names) {
        const QString target = QDir(to).absoluteFilePath(name);
        QFile::remove(target);
        if (!QFile::copy(source.absoluteFilePath(name), target)) {
            return Error { QStringLiteral("files"),
                u"could not copy " + source.absoluteFilePath(name) + u" to " + target };
        }
    }
    return Done {};
}

Result<QByteArray> readFileBytes(const QString& path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        return Error { QStringLiteral("files"),
            u"could not read " + path + u": " + file.errorString() };
    }
    return file.readAll();
}

} // namespace ferry::test
