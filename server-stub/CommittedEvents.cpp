#include "server-stub/CommittedEvents.h"

#include "ferry.pb.h"

#include <cstring>

namespace ferry::server {

namespace {

    // Protobuf's wire format (protobuf.dev, "Encoding"): a field is a varint key, field number
    // shifted left by three with the wire type in the low bits, then its value; a nested message
    // is length-delimited. Fields are written in field-number order, and proto3 leaves out
    // those that hold their default, as the generated serializer does.
    constexpr quint8 WireVarint = 0;
    constexpr quint8 WireLengthDelimited = 2;

    // Field numbers of ferry.proto.
    constexpr quint32 EnvelopeEvents = 20;
    constexpr quint32 EventBatchEvents = 1;
    constexpr quint32 EventBatchCaughtUp = 2;
    constexpr quint32 EventBatchLastOffset = 3;
    constexpr quint32 EventOffset = 1;
    constexpr quint32 EventMessage = 10;

    constexpr quint64 key(quint32 field, quint8 wireType)
    {
        return (quint64(field) << 3) | wireType;
    }

    qsizetype varintSize(quint64 value)
    {
        qsizetype size = 1;
        while (value >= 0x80) {
            value >>= 7;
            ++size;
        }
        return size;
    }

    char* writeVarint(char* out, quint64 value)
    {
        while (value >= 0x80) {
            *out++ = static_cast<char>((value & 0x7F) | 0x80);
            value >>= 7;
        }
        *out++ = static_cast<char>(value);
        return out;
    }

    char* writeBytes(char* out, const QByteArray& bytes)
    {
        std::memcpy(out, bytes.constData(), static_cast<size_t>(bytes.size()));
        return out + bytes.size();
    }

    /// Size of an Event holding this offset and message, without its own key and length.
    qsizetype eventSize(const CommittedEvent& event)
    {
        qsizetype size = 0;
        if (event.offset != 0) {
            size += varintSize(key(EventOffset, WireVarint)) + varintSize(event.offset);
        }
        size += varintSize(key(EventMessage, WireLengthDelimited))
            + varintSize(quint64(event.messageEvent.size())) + event.messageEvent.size();
        return size;
    }

} // namespace

QByteArray serializeMessageEvent(const v1::MessageEvent& message)
{
    QByteArray bytes(static_cast<qsizetype>(message.ByteSizeLong()), Qt::Uninitialized);
    message.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(bytes.data()));
    return bytes;
}

QByteArray encodeEventPush(const CommittedEvent* first, qsizetype count, bool caughtUp)
{
    const quint64 lastOffset = count > 0 ? first[count - 1].offset : 0;

    // Sizes first, so that the frame is allocated once and written front to back.
    qsizetype batchSize = 0;
    for (qsizetype i = 0; i < count; ++i) {
        const qsizetype size = eventSize(first[i]);
        batchSize += varintSize(key(EventBatchEvents, WireLengthDelimited))
            + varintSize(quint64(size)) + size;
    }
    if (caughtUp) {
        batchSize += varintSize(key(EventBatchCaughtUp, WireVarint)) + 1;
    }
    if (lastOffset != 0) {
        batchSize += varintSize(key(EventBatchLastOffset, WireVarint)) + varintSize(lastOffset);
    }
    const qsizetype frameSize = varintSize(key(EnvelopeEvents, WireLengthDelimited))
        + varintSize(quint64(batchSize)) + batchSize;

    QByteArray frame(frameSize, Qt::Uninitialized);
    char* out = frame.data();
    out = writeVarint(out, key(EnvelopeEvents, WireLengthDelimited));
    out = writeVarint(out, quint64(batchSize));
    for (qsizetype i = 0; i < count; ++i) {
        const CommittedEvent& event = first[i];
        out = writeVarint(out, key(EventBatchEvents, WireLengthDelimited));
        out = writeVarint(out, quint64(eventSize(event)));
        if (event.offset != 0) {
            out = writeVarint(out, key(EventOffset, WireVarint));
            out = writeVarint(out, event.offset);
        }
        out = writeVarint(out, key(EventMessage, WireLengthDelimited));
        out = writeVarint(out, quint64(event.messageEvent.size()));
        out = writeBytes(out, event.messageEvent);
    }
    if (caughtUp) {
        out = writeVarint(out, key(EventBatchCaughtUp, WireVarint));
        out = writeVarint(out, 1);
    }
    if (lastOffset != 0) {
        out = writeVarint(out, key(EventBatchLastOffset, WireVarint));
        out = writeVarint(out, lastOffset);
    }
    Q_ASSERT(out == frame.constData() + frame.size());
    return frame;
}

} // namespace ferry::server
