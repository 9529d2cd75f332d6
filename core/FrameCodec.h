#pragma once

#include <QByteArray>

// The generated ferry.pb.h is heavy; this header only names the type so that callers which pass
// envelopes around without looking inside do not pay for it.
namespace ferry::v1 {
class Envelope;
}

namespace ferry {

/// The protocol versions this build speaks, newest last.
inline constexpr quint32 ProtocolVersion = 1;

/// Serialises one envelope into the payload of one binary WebSocket frame.
QByteArray encodeFrame(const v1::Envelope& envelope);

/// Parses the payload of one binary frame. Returns false, leaving `envelope` unspecified, when the
/// bytes are not a well-formed envelope or carry no payload at all.
bool decodeFrame(const QByteArray& frame, v1::Envelope* envelope);

} // namespace ferry
