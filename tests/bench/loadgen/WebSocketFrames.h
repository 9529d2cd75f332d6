#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

/// The few pieces of RFC 6455 a load generator needs, on plain byte strings: the client's upgrade
/// request, masked frames out, and frames in. No Qt here: one QWebSocket per connection would
/// cost the load generator more than the server it measures.
namespace ferry::bench::ws {

enum Opcode : uint8_t {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
};

/// The GET request that asks `host` to switch to WebSocket. The key is fixed: it only proves to
/// the server that the client speaks WebSocket, and there is no proxy here whose cache it guards.
std::string upgradeRequest(std::string_view host);

/// Appends one masked frame (FIN set) carrying `payload` to `out`. `maskKey` should differ from
/// frame to frame; any 32 bits do for a loopback benchmark.
void appendClientFrame(std::string& out, Opcode opcode, std::string_view payload, uint32_t maskKey);

/// Appends one unmasked frame, as a server sends it (the echo server).
void appendServerFrame(std::string& out, Opcode opcode, std::string_view payload);

/// One frame parsed from the front of a buffer.
struct Frame {
    bool complete = false; ///< false: more bytes are needed
    bool bad = false; ///< not a frame this code accepts (reserved bits, oversized)
    bool fin = false;
    Opcode opcode = Binary;
    size_t headerSize = 0;
    size_t payloadSize = 0;
    bool masked = false;
    uint8_t mask[4] = {};

    size_t totalSize() const { return headerSize + payloadSize; }
};

/// Reads the header at the front of `data`; `maxPayload` bounds what is accepted.
Frame parseFrame(std::string_view data, size_t maxPayload);

/// Removes a client's mask from a payload in place.
void unmask(char* payload, size_t size, const uint8_t mask[4]);

} // namespace ferry::bench::ws
