#pragma once

// WebSocket close codes of Ferry's own (the 4000-4999 range is for applications), shared by the
// server that sends them and the client that acts on them. docs/protocol.md lists them with the
// standard codes the server also uses (1001 going away, 1002 protocol error, 1003 text frame,
// 1008 unsupported version, 1009 frame too large).
namespace ferry::CloseCode {

// Standard codes (RFC 6455 section 7.4.1) the server sends.
/// The server is shutting down. Reconnect later.
inline constexpr int GoingAway = 1001;
/// The framing or the first frame broke the protocol.
inline constexpr int ProtocolError = 1002;
/// A text frame: the protocol has binary frames only.
inline constexpr int UnsupportedData = 1003;
/// The Hello named a protocol version this server does not speak.
inline constexpr int PolicyViolation = 1008;
/// A message larger than the server's frame limit.
inline constexpr int TooLarge = 1009;

// Ferry's own.

/// No Register, Login, Resume or Authenticate in time. Reconnect and authenticate promptly.
inline constexpr int AuthenticationTimeout = 4000;
/// Nothing heard from the client (not even a pong) for the heartbeat timeout. Reconnect.
inline constexpr int HeartbeatTimeout = 4001;
/// The client read too slowly and the server stopped queueing for it. Reconnect and catch up
/// from the stored offset; nothing is lost.
inline constexpr int SlowConsumer = 4002;
/// The device was removed from its account. Do not reconnect; sign in again as a new device.
inline constexpr int DeviceRemoved = 4003;

} // namespace ferry::CloseCode
