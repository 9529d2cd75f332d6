#pragma once

#include "core/Result.h"

#include <QString>
#include <QStringList>

namespace ferry::test {

/// Accounts registered once and copied fresh for every test row. Registering costs a password
/// hash that is slow by design, while a data-driven test wants each row to start from empty
/// conversations: so a test class registers its users once, in initTestCase(), and each row
/// works on its own copy of the server's data and the users' profiles.
class AccountSnapshot {
public:
    /// Starts a server over `folder`/server, registers each of `users` with one device (named
    /// "test") in the profile `folder`/<user>, and stops the server again, so that everything is
    /// on disk and no process holds a database open.
    Result<Done> create(const QString& folder, const QStringList& users);

    /// Copies the server's data folder and every profile into `folder`, with the same names.
    /// The profiles still name the server's old address: point them at the new one.
    Result<Done> copyTo(const QString& folder) const;

private:
    QString m_folder;
    QStringList m_users;
};

} // namespace ferry::test
