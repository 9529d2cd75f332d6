#pragma once

// WebSocket close codes of Ferry's own (the 4000-4999 range is for applications), shared by the
// server that sends them and the client that acts on them. docs/protocol.md lists them with the
// standard codes the server also uses (1001 going away, 1002 protocol error, 1003 text frame,
// 1008 unsupported version, 1009 frame too large).
namespace ferry::CloseCode {

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
