#include "WebSocketFrames.h"

#include <cstring>

namespace ferry::bench::ws {

std::string upgradeRequest(std::string_view host)
{
    std::string request = "GET / HTTP/1.1\r\nHost: ";
    request += host;
    request += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: ZmVycnktbG9hZC1rZXkxMg==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n";
    return request;
}

namespace {

    void appendHeader(std::string& out, Opcode opcode, size_t size, bool masked)
    {
        const char maskBit = masked ? char(0x80) : char(0);
        out.push_back(static_cast<char>(0x80 | opcode));
        if (size < 126) {
            out.push_back(static_cast<char>(maskBit | static_cast<char>(size)));
        } else if (size <= 0xFFFF) {
            out.push_back(static_cast<char>(maskBit | 126));
            out.push_back(static_cast<char>(size >> 8));
            out.push_back(static_cast<char>(size & 0xFF));
        } else {
            out.push_back(static_cast<char>(maskBit | 127));
            for (int shift = 56; shift >= 0; shift -= 8) {
                out.push_back(static_cast<char>((uint64_t(size) >> shift) & 0xFF));
            }
        }
    }

} // namespace

void appendClientFrame(std::string& out, Opcode opcode, std::string_view payload, uint32_t maskKey)
{
    appendHeader(out, opcode, payload.size(), true);
    uint8_t mask[4];
    std::memcpy(mask, &maskKey, 4);
    out.append(reinterpret_cast<const char*>(mask), 4);
    const size_t start = out.size();
    out.append(payload);
    unmask(out.data() + start, payload.size(), mask); // masking and unmasking are the same XOR
}

void appendServerFrame(std::string& out, Opcode opcode, std::string_view payload)
{
    appendHeader(out, opcode, payload.size(), false);
    out.append(payload);
}

Frame parseFrame(std::string_view data, size_t maxPayload)
{
    Frame frame;
    if (data.size() < 2) {
        return frame;
    }
    const auto b0 = static_cast<uint8_t>(data[0]);
    const auto b1 = static_cast<uint8_t>(data[1]);
    if ((b0 & 0x70) != 0) {
        frame.bad = true; // no extension is negotiated, so reserved bits must be clear
        return frame;
    }
    frame.fin = (b0 & 0x80) != 0;
    frame.opcode = static_cast<Opcode>(b0 & 0x0F);
    frame.masked = (b1 & 0x80) != 0;
    size_t at = 2;
    uint64_t size = b1 & 0x7F;
    if (size == 126 || size == 127) {
        const size_t lengthBytes = size == 126 ? 2 : 8;
        if (data.size() < at + lengthBytes) {
            return frame;
        }
        size = 0;
        for (size_t i = 0; i < lengthBytes; ++i) {
            size = (size << 8) | static_cast<uint8_t>(data[at + i]);
        }
        at += lengthBytes;
    }
    if (size > maxPayload) {
        frame.bad = true;
        return frame;
    }
    if (frame.masked) {
        if (data.size() < at + 4) {
            return frame;
        }
        std::memcpy(frame.mask, data.data() + at, 4);
        at += 4;
    }
    frame.headerSize = at;
    frame.payloadSize = static_cast<size_t>(size);
    frame.complete = data.size() >= frame.totalSize();
    return frame;
}

void unmask(char* payload, size_t size, const uint8_t mask[4])
{
    for (size_t i = 0; i < size; ++i) {
        payload[i] = static_cast<char>(payload[i] ^ static_cast<char>(mask[i & 3]));
    }
}

} // namespace ferry::bench::ws
