#include "ui/CredentialVault.h"

#include "core/Logging.h"

#include <QDir>

#include <qt6keychain/keychain.h>

namespace ferry::ui {

namespace {
    const QString ServiceName = QStringLiteral("Ferry");
}

CredentialVault::CredentialVault(QObject* parent)
    : QObject(parent)
{
}

QString CredentialVault::keyFor(const QString& profileDir, quint64 deviceId)
{
    return QDir(profileDir).absolutePath() + u"#device-" + QString::number(deviceId);
}

void CredentialVault::store(
    const QString& key, const QByteArray& token, std::function<void(bool)> done)
{
    auto* job = new QKeychain::WritePasswordJob(ServiceName, this);
    // The library's own plain-text fallback would only move the secret to a less guarded file.
    job->setInsecureFallback(false);
    job->setKey(key);
    job->setBinaryData(token);
    connect(job, &QKeychain::Job::finished, this, [done = std::move(done)](QKeychain::Job* job) {
        const bool stored = job->error() == QKeychain::NoError;
        if (!stored) {
            qCInfo(lcUi) << "No system keychain for the device token:" << job->errorString();
        }
        done(stored);
    });
    job->start();
}

void CredentialVault::load(
    const QString& key, std::function<void(std::optional<QByteArray>)> done)
{
    auto* job = new QKeychain::ReadPasswordJob(ServiceName, this);
    job->setInsecureFallback(false);
    job->setKey(key);
    connect(job, &QKeychain::Job::finished, this, [done = std::move(done)](QKeychain::Job* job) {
        auto* read = static_cast<QKeychain::ReadPasswordJob*>(job);
        if (read->error() != QKeychain::NoError || read->binaryData().isEmpty()) {
            qCWarning(lcUi) << "Could not read the device token from the keychain:"
                            << read->errorString();
            done(std::nullopt);
            return;
        }
        done(read->binaryData());
    });
    job->start();
}

} // namespace ferry::ui
