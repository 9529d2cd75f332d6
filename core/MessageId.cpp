#include "core/MessageId.h"

#include <QDateTime>
#include <QUuid>

#include <sodium.h>

namespace ferry {

MessageId MessageId::generate()
{
    return generateAt(QDateTime::currentMSecsSinceEpoch());
}

MessageId MessageId::generateAt(qint64 unixMillis)
{
    // sodium_init is cheap after the first call and makes randombytes safe to use from any thread.
    if (sodium_init() < 0) {
        qFatal("libsodium could not be initialised; no safe random source for message ids");
    }

    QByteArray bytes(Size, Qt::Uninitialized);
    auto* raw = reinterpret_cast<unsigned char*>(bytes.data());
    randombytes_buf(raw + 6, Size - 6);

    const auto millis = static_cast<quint64>(unixMillis);
    for (int i = 0; i < 6; ++i) {
        raw[i] = static_cast<unsigned char>(millis >> (8 * (5 - i)));
    }
    raw[6] = static_cast<unsigned char>(0x70 | (raw[6] & 0x0f)); // version 7
    raw[8] = static_cast<unsigned char>(0x80 | (raw[8] & 0x3f)); // RFC 9562 variant
    return MessageId(bytes);
}

std::optional<MessageId> MessageId::fromBytes(const QByteArray& bytes)
{
    if (bytes.size() != Size) {
        return std::nullopt;
    }
    return MessageId(bytes);
}

std::optional<MessageId> MessageId::fromString(QStringView text)
{
    if (text.size() != 36) {
        return std::nullopt;
    }
    const QUuid uuid = QUuid::fromString(text);
    if (uuid.isNull()) {
        return std::nullopt;
    }
    return MessageId(uuid.toRfc4122());
}

QString MessageId::toString() const
{
    return QUuid::fromRfc4122(m_bytes).toString(QUuid::WithoutBraces);
}

qint64 MessageId::unixMillis() const
{
    quint64 millis = 0;
    for (int i = 0; i < 6; ++i) {
        millis = (millis << 8) | static_cast<unsigned char>(m_bytes[i]);
    }
    return static_cast<qint64>(millis);
}

} // namespace ferry
