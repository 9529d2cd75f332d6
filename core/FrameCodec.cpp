#include "core/FrameCodec.h"

#include "ferry.pb.h"

namespace ferry {

QByteArray encodeFrame(const v1::Envelope& envelope)
{
    QByteArray frame(static_cast<qsizetype>(envelope.ByteSizeLong()), Qt::Uninitialized);
    envelope.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(frame.data()));
    return frame;
}

bool decodeFrame(const QByteArray& frame, v1::Envelope* envelope)
{
    if (!envelope->ParseFromArray(frame.constData(), static_cast<int>(frame.size()))) {
        return false;
    }
    // An envelope with no payload decodes cleanly from empty or unknown-only bytes; it is still
    // not a frame anyone can act on.
    return envelope->payload_case() != v1::Envelope::PAYLOAD_NOT_SET;
}

} // namespace ferry
