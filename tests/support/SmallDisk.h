#pragma once

#include <QString>

namespace ferry::test {

/// A tmpfs of a few MiB mounted for one test, so that a database on it runs out of space (or can
/// be made read-only) without touching the machine's real disks. Mounting needs root; a test that
/// cannot mount says so and skips, as nothing else here can fill a disk safely.
class SmallDisk {
public:
    /// `mountPoint` is created if missing; nothing is mounted until mount().
    explicit SmallDisk(QString mountPoint);
    /// Unmounts (lazily, so a file a crashed child still holds open cannot keep it mounted).
    ~SmallDisk();
    SmallDisk(const SmallDisk&) = delete;
    SmallDisk& operator=(const SmallDisk&) = delete;

    /// Mounts a tmpfs of `mebibytes` on the mount point; false if that is not allowed here.
    bool mount(int mebibytes);
    /// Remounts read-only (true) or writable again (false).
    bool setReadOnly(bool readOnly);

    /// Writes a filler file until the disk has no room left; false if it could not be created.
    bool fill();
    /// Removes the filler file, giving back the room fill() took; false if there was none.
    bool free();

    QString path() const { return m_mountPoint; }
    /// A path on the disk, e.g. filePath("server"); "filler" is fill()'s.
    QString filePath(const QString& name) const;

private:
    QString fillerPath() const { return filePath(QStringLiteral("filler")); }

    QString m_mountPoint;
    int m_mebibytes = 0;
    bool m_mounted = false;
};

} // namespace ferry::test
