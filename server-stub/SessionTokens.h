#pragma once

#include "core/Result.h"

#include <QByteArray>
#include <QString>

#include <optional>

namespace ferry::server {

/// What a session token says about its holder.
struct SessionClaims {
    qint64 userId = 0;
    QString userName;
    quint64 deviceId = 0;
    qint64 issuedMs = 0;
    qint64 expiresMs = 0;
};

/// Issues and checks session tokens: the claims, signed with the server's Ed25519 key
/// (libsodium crypto_sign). Checking a token needs the public key only, no database read, so any
/// server holding the same key file can check what another issued. The key is created in the
/// data folder on first start and never leaves it.
class SessionTokens {
public:
    /// Loads `dataDir`/session-signing.key, creating it (owner-only permissions) if missing. A key
    /// file of the wrong size is reported, never replaced: replacing it would sign everyone out.
    static Result<SessionTokens> load(const QString& dataDir);

    QByteArray issue(const SessionClaims& claims) const;

    /// The claims of a token whose signature is valid, expired or not; nullopt for anything
    /// forged, altered or malformed.
    std::optional<SessionClaims> verify(const QByteArray& token) const;

private:
    QByteArray m_secretKey; ///< crypto_sign_SECRETKEYBYTES, the public key is its second half
    QByteArray m_publicKey;
};

} // namespace ferry::server
