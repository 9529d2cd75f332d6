#include "ui/DeviceListModel.h"

#include "core/Logging.h"

#include <QDateTime>
#include <QLocale>

namespace ferry::ui {

DeviceListModel::DeviceListModel(QObject* parent)
    : QAbstractListModel(parent)
{
}

int DeviceListModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_devices.size());
}

QVariant DeviceListModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) {
        qCWarning(lcUi) << "DeviceListModel was asked for an invalid index" << index;
        return {};
    }
    const DeviceInfo& device = m_devices.at(index.row());
    switch (role) {
    case DeviceIdRole:
        // A string: QML numbers cannot hold every 64-bit id exactly.
        return QString::number(device.id);
    case Qt::DisplayRole:
    case NameRole:
        return device.name;
    case CreatedTextRole:
        return tr("Added %1").arg(QLocale().toString(
            QDateTime::fromMSecsSinceEpoch(device.createdMs).toLocalTime().date(),
            QLocale::ShortFormat));
    case CurrentRole:
        return device.current;
    case OnlineRole:
        return device.online;
    default:
        return {};
    }
}

QHash<int, QByteArray> DeviceListModel::roleNames() const
{
    return {
        { DeviceIdRole, "deviceId" },
        { NameRole, "name" },
        { CreatedTextRole, "createdText" },
        { CurrentRole, "current" },
        { OnlineRole, "online" },
    };
}

void DeviceListModel::setDevices(const QList<DeviceInfo>& devices)
{
    // Remove the devices that are gone, then update or insert in the server's order.
    for (int row = static_cast<int>(m_devices.size()) - 1; row >= 0; --row) {
        const bool kept = std::any_of(devices.cbegin(), devices.cend(),
            [&](const DeviceInfo& device) { return device.id == m_devices.at(row).id; });
        if (!kept) {
            beginRemoveRows({}, row, row);
            m_devices.removeAt(row);
            endRemoveRows();
        }
    }
    for (const DeviceInfo& device : devices) {
        auto found = std::find_if(m_devices.begin(), m_devices.end(),
            [&](const DeviceInfo& known) { return known.id == device.id; });
        if (found != m_devices.end()) {
            *found = device;
            const QModelIndex changed = index(static_cast<int>(found - m_devices.begin()));
            Q_EMIT dataChanged(changed, changed);
            continue;
        }
        const int row = static_cast<int>(m_devices.size());
        beginInsertRows({}, row, row);
        m_devices.append(device);
        endInsertRows();
    }
    Q_EMIT countChanged();
}

} // namespace ferry::ui
