#include "tests/support/SmallDisk.h"

#include <QDir>
#include <QFile>
#include <QProcess>

namespace ferry::test {

namespace {

    bool runQuietly(const QString& program, const QStringList& arguments)
    {
        QProcess process;
        process.start(program, arguments);
        return process.waitForFinished(10'000) && process.exitStatus() == QProcess::NormalExit
            && process.exitCode() == 0;
    }

} // namespace

SmallDisk::SmallDisk(QString mountPoint)
    : m_mountPoint(std::move(mountPoint))
{
    QDir().mkpath(m_mountPoint);
}

SmallDisk::~SmallDisk()
{
    if (m_mounted) {
        runQuietly(QStringLiteral("umount"), { QStringLiteral("-l"), m_mountPoint });
    }
}

bool SmallDisk::mount(int mebibytes)
{
    m_mebibytes = mebibytes;
    m_mounted = runQuietly(QStringLiteral("mount"),
        { QStringLiteral("-t"), QStringLiteral("tmpfs"), QStringLiteral("-o"),
            QStringLiteral("size=%1m").arg(mebibytes), QStringLiteral("tmpfs"), m_mountPoint });
    return m_mounted;
}

bool SmallDisk::setReadOnly(bool readOnly)
{
    return runQuietly(QStringLiteral("mount"),
        { QStringLiteral("-o"),
            readOnly ? QStringLiteral("remount,ro") : QStringLiteral("remount,rw"),
            m_mountPoint });
}

bool SmallDisk::fill()
{
    QFile filler(fillerPath());
    if (!filler.open(QIODevice::WriteOnly | QIODevice::Append)) {
        return false;
    }
    const QByteArray chunk(16 * 1024, 'f');
    // Bounded at twice the disk's size: a write fails long before.
    const int chunks = 2 * m_mebibytes * 1024 * 1024 / static_cast<int>(chunk.size());
    for (int i = 0; i < chunks && filler.write(chunk) == chunk.size(); ++i) {
        filler.flush();
    }
    filler.close();
    return true;
}

bool SmallDisk::free() { return QFile::remove(fillerPath()); }

QString SmallDisk::filePath(const QString& name) const { return QDir(m_mountPoint).filePath(name); }

} // namespace ferry::test
