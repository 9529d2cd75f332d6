#pragma once

#include <QByteArray>
#include <QString>

#include <string>

// Conversions between Qt's strings and the std::string that Protobuf fields hold. Protobuf's
// `bytes` and `string` are both std::string; these keep the lengths exact and the UTF-8 honest.
namespace ferry {

inline QByteArray toBytes(const std::string& value)
{
    return QByteArray(value.data(), static_cast<qsizetype>(value.size()));
}

inline QString toQString(const std::string& value)
{
    return QString::fromUtf8(value.data(), static_cast<qsizetype>(value.size()));
}

inline std::string toStd(const QByteArray& value)
{
    return std::string(value.constData(), static_cast<size_t>(value.size()));
}

inline std::string toStd(const QString& value)
{
    return value.toStdString();
}

} // namespace ferry
