#pragma once

#include <QByteArray>

namespace ferry::server {

/// Password hashing and device tokens, on libsodium. Hashing is deliberately slow (Argon2id at
/// libsodium's "interactive" cost, about 64 MiB and tens of milliseconds), so callers run
/// hashPassword and verifyPassword off the event-loop thread.
namespace Credentials {

    /// The Argon2id cost of new password hashes. Minimal exists only so that load tests can
    /// register tens of thousands of accounts; it protects no password (docs/server.md).
    enum class PasswordCost { Interactive, Minimal };

    /// Sets the cost of hashes made from now on; call it before initialise(). Verification
    /// always uses the parameters stored in the hash, so hashes of either cost keep working.
    void setPasswordCost(PasswordCost cost);

    /// Must succeed once before anything else here is used.
    bool initialise();

    /// The crypto_pwhash_str string for `password`, or empty if memory ran out.
    QByteArray hashPassword(const QByteArray& password);

    /// Checks `password` against a stored hash. With an empty `storedHash` it checks against a
    /// fixed dummy hash and returns false, taking the same time as a real check, so an unknown
    /// user cannot be told from a wrong password by timing.
    bool verifyPassword(const QByteArray& password, const QByteArray& storedHash);

    /// A fresh random device token (32 bytes).
    QByteArray newDeviceToken();

    /// What the server stores in place of a token: its BLAKE2b-256 hash.
    QByteArray tokenHash(const QByteArray& token);

    /// Compares two token hashes in constant time.
    bool tokenHashesEqual(const QByteArray& a, const QByteArray& b);

} // namespace Credentials

} // namespace ferry::server
