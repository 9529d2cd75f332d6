#include "server-stub/Credentials.h"

#include <sodium.h>

namespace ferry::server::Credentials {

namespace {
    constexpr qsizetype TokenSize = 32;

    PasswordCost g_passwordCost = PasswordCost::Interactive;

    const QByteArray& dummyHash()
    {
        // Computed once, with the same parameters as real hashes, so verifying against it costs
        // what a real verification costs.
        static const QByteArray hash = hashPassword(QByteArrayLiteral("ferry-no-such-user"));
        return hash;
    }
}

void setPasswordCost(PasswordCost cost) { g_passwordCost = cost; }

bool initialise()
{
    if (sodium_init() < 0) {
        return false;
    }
    return !dummyHash().isEmpty();
}

QByteArray hashPassword(const QByteArray& password)
{
    const bool minimal = g_passwordCost == PasswordCost::Minimal;
    const unsigned long long opsLimit
        = minimal ? crypto_pwhash_OPSLIMIT_MIN : crypto_pwhash_OPSLIMIT_INTERACTIVE;
    const size_t memLimit
        = minimal ? crypto_pwhash_MEMLIMIT_MIN : crypto_pwhash_MEMLIMIT_INTERACTIVE;
    char hashed[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(hashed, password.constData(),
            static_cast<unsigned long long>(password.size()), opsLimit, memLimit)
        != 0) {
        return {};
    }
    return QByteArray(hashed);
}

bool verifyPassword(const QByteArray& password, const QByteArray& storedHash)
{
    const QByteArray& hash = storedHash.isEmpty() ? dummyHash() : storedHash;
    const bool matches = crypto_pwhash_str_verify(hash.constData(), password.constData(),
                             static_cast<unsigned long long>(password.size()))
        == 0;
    return matches && !storedHash.isEmpty();
}

QByteArray newDeviceToken()
{
    QByteArray token(TokenSize, Qt::Uninitialized);
    randombytes_buf(token.data(), static_cast<size_t>(token.size()));
    return token;
}

QByteArray tokenHash(const QByteArray& token)
{
    QByteArray hash(crypto_generichash_BYTES, Qt::Uninitialized);
    crypto_generichash(reinterpret_cast<unsigned char*>(hash.data()), crypto_generichash_BYTES,
        reinterpret_cast<const unsigned char*>(token.constData()),
        static_cast<unsigned long long>(token.size()), nullptr, 0);
    return hash;
}

bool tokenHashesEqual(const QByteArray& a, const QByteArray& b)
{
    if (a.size() != b.size() || a.isEmpty()) {
        return false;
    }
    return sodium_memcmp(a.constData(), b.constData(), static_cast<size_t>(a.size())) == 0;
}

} // namespace ferry::server::Credentials
