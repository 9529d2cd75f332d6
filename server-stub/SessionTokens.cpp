#include "server-stub/SessionTokens.h"

#include "core/Logging.h"

#include <QDataStream>
#include <QDir>
#include <QFile>
#include <QSaveFile>

#include <sodium.h>

namespace ferry::server {

namespace {
    constexpr quint8 ClaimsVersion = 1;
    const QString KeyFileName = QStringLiteral("session-signing.key");
}

Result<SessionTokens> SessionTokens::load(const QString& dataDir)
{
    if (sodium_init() < 0) {
        return Error { QStringLiteral("crypto"), QStringLiteral("libsodium failed to start") };
    }
    const QString path = QDir(dataDir).absoluteFilePath(KeyFileName);
    SessionTokens tokens;
    tokens.m_secretKey.resize(crypto_sign_SECRETKEYBYTES);
    tokens.m_publicKey.resize(crypto_sign_PUBLICKEYBYTES);

    QFile existing(path);
    if (existing.exists()) {
        if (!existing.open(QIODevice::ReadOnly)) {
            return Error { QStringLiteral("key"),
                u"could not read " + path + u": " + existing.errorString() };
        }
        const QByteArray key = existing.readAll();
        if (key.size() != crypto_sign_SECRETKEYBYTES) {
            return Error { QStringLiteral("key"),
                path + u" is not a session signing key (wrong size); it was left untouched" };
        }
        tokens.m_secretKey = key;
        crypto_sign_ed25519_sk_to_pk(reinterpret_cast<unsigned char*>(tokens.m_publicKey.data()),
            reinterpret_cast<const unsigned char*>(key.constData()));
        return tokens;
    }

    crypto_sign_keypair(reinterpret_cast<unsigned char*>(tokens.m_publicKey.data()),
        reinterpret_cast<unsigned char*>(tokens.m_secretKey.data()));
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)
        || !file.setPermissions(QFileDevice::ReadOwner | QFileDevice::WriteOwner)
        || file.write(tokens.m_secretKey) != tokens.m_secretKey.size() || !file.commit()) {
        return Error { QStringLiteral("key"),
            u"could not write " + path + u": " + file.errorString() };
    }
    qCInfo(lcServerAuth) << "Created a new session signing key in" << path;
    return tokens;
}

QByteArray SessionTokens::issue(const SessionClaims& claims) const
{
    QByteArray payload;
    QDataStream out(&payload, QIODevice::WriteOnly);
    out.setVersion(QDataStream::Qt_6_0);
    out << ClaimsVersion << claims.userId << claims.deviceId << claims.issuedMs
        << claims.expiresMs << claims.userName.toUtf8();

    QByteArray token(crypto_sign_BYTES + payload.size(), Qt::Uninitialized);
    unsigned long long length = 0;
    crypto_sign(reinterpret_cast<unsigned char*>(token.data()), &length,
        reinterpret_cast<const unsigned char*>(payload.constData()),
        static_cast<unsigned long long>(payload.size()),
        reinterpret_cast<const unsigned char*>(m_secretKey.constData()));
    token.resize(static_cast<qsizetype>(length));
    return token;
}

std::optional<SessionClaims> SessionTokens::verify(const QByteArray& token) const
{
    if (token.size() <= crypto_sign_BYTES || token.size() > 1024) {
        return std::nullopt;
    }
    QByteArray payload(token.size() - crypto_sign_BYTES, Qt::Uninitialized);
    unsigned long long length = 0;
    if (crypto_sign_open(reinterpret_cast<unsigned char*>(payload.data()), &length,
            reinterpret_cast<const unsigned char*>(token.constData()),
            static_cast<unsigned long long>(token.size()),
            reinterpret_cast<const unsigned char*>(m_publicKey.constData()))
        != 0) {
        return std::nullopt;
    }
    payload.resize(static_cast<qsizetype>(length));

    QDataStream in(payload);
    in.setVersion(QDataStream::Qt_6_0);
    quint8 version = 0;
    SessionClaims claims;
    QByteArray name;
    in >> version >> claims.userId >> claims.deviceId >> claims.issuedMs >> claims.expiresMs
        >> name;
    if (in.status() != QDataStream::Ok || version != ClaimsVersion || !in.atEnd()) {
        return std::nullopt;
    }
    claims.userName = QString::fromUtf8(name);
    return claims;
}

} // namespace ferry::server
