#pragma once

#include "core/Result.h"

#include <QByteArray>
#include <QString>

namespace ferry::test {

/// Copies every file directly inside `from` into `to`, which is created if needed. For a folder
/// holding a SQLite database (with its -wal and -shm files), copy only while no process has it
/// open: then the copy is exactly the database as it was.
Result<Done> copyFolderFiles(const QString& from, const QString& to);

/// The whole content of a file, or an error saying why it could not be read.
Result<QByteArray> readFileBytes(const QString& path);

} // namespace ferry::test
