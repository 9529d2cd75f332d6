#pragma once

#include <QByteArray>
#include <QString>

#include <optional>

namespace ferry {

/// A message id: 16 bytes laid out as a UUIDv7 (RFC 9562), 48 bits of Unix milliseconds followed
/// by version, variant and 74 random bits. The client that writes a message chooses its id, so a
/// resend after any failure carries the same id and the server can recognise it. Ids are never
/// used to order messages: the server's sequence number does that.
class MessageId {
public:
    static constexpr qsizetype Size = 16;

    /// A fresh id for a message written now.
    static MessageId generate();
    /// A fresh id for the given Unix time, for tests that need a fixed clock.
    static MessageId generateAt(qint64 unixMillis);

    /// Parses 16 raw bytes; anything else is not an id.
    static std::optional<MessageId> fromBytes(const QByteArray& bytes);
    /// Parses the canonical text form, 8-4-4-4-12 lowercase hex digits.
    static std::optional<MessageId> fromString(QStringView text);

    const QByteArray& bytes() const { return m_bytes; }
    QString toString() const;
    qint64 unixMillis() const;

    friend bool operator==(const MessageId&, const MessageId&) = default;

private:
    explicit MessageId(QByteArray bytes)
        : m_bytes(std::move(bytes))
    {
    }

    QByteArray m_bytes;
};

} // namespace ferry
