#pragma once

#include <QByteArray>
#include <QObject>
#include <QString>

#include <functional>
#include <optional>

namespace ferry::ui {

/// Keeps a device token in the system keychain (the Secret Service on Linux desktops, the
/// platform keychains elsewhere) through QtKeychain. Where none is available every call fails
/// quickly and the caller keeps the token where it was: in the profile folder, owner-only.
/// Lives on the store's worker thread; QtKeychain's jobs are asynchronous, so answers come back
/// through the callbacks on that thread.
class CredentialVault : public QObject {
    Q_OBJECT
public:
    explicit CredentialVault(QObject* parent = nullptr);

    /// The key of one device's token: the profile folder and the device id, so that two profiles
    /// of one user on one machine never share an entry.
    static QString keyFor(const QString& profileDir, quint64 deviceId);

    void store(const QString& key, const QByteArray& token, std::function<void(bool)> done);
    void load(const QString& key, std::function<void(std::optional<QByteArray>)> done);
};

} // namespace ferry::ui
