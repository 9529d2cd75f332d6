#pragma once

#include "sync/SyncEngine.h"

#include <QAbstractListModel>
#include <QtQml/qqmlregistration.h>

namespace ferry::ui {

/// The account's devices as the server last listed them. A new list updates rows in place:
/// devices that went away are removed, new ones inserted, the rest updated.
class DeviceListModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("Owned by ChatSession")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
public:
    enum Role {
        DeviceIdRole = Qt::UserRole + 1,
        NameRole,
        CreatedTextRole,
        CurrentRole,
        OnlineRole,
    };
    Q_ENUM(Role)

    explicit DeviceListModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;

    void setDevices(const QList<ferry::DeviceInfo>& devices);

Q_SIGNALS:
    void countChanged();

private:
    QList<DeviceInfo> m_devices;
};

} // namespace ferry::ui
