#pragma once

#include "server-stub/ServerStore.h"

#include <memory>

namespace ferry::server {

/// ServerStore on one SQLite file in WAL mode with full synchronous commits: an acknowledged
/// message has reached the disk. Used from the server's main thread only.
class SqliteServerStore final : public ServerStore {
public:
    static constexpr int SchemaVersion = 1;

    /// Opens or creates `dataDir`/server.db and brings its schema up to date.
    static Result<std::unique_ptr<SqliteServerStore>> open(const QString& dataDir);
    ~SqliteServerStore() override;

    Result<UserRecord> createUser(const QString& name, const QByteArray& passwordHash) override;
    std::optional<UserRecord> findUser(const QString& name) override;
    Result<DeviceRecord> createDevice(
        qint64 userId, const QString& name, const QByteArray& tokenHash) override;
    std::optional<DeviceRecord> findDevice(quint64 deviceId) override;
    Result<StoredMessageAck> appendMessage(const NewMessage& message) override;
    Result<EventPage> eventsAfter(qint64 userId, quint64 afterOffset, int limit) override;
    Result<quint64> lastOffset(qint64 userId) override;

private:
    SqliteServerStore(QString connectionName, QString path);
    Result<Done> migrate();

    QString m_connectionName;
    QString m_path;
};

} // namespace ferry::server
