#pragma once

#include <QByteArray>
#include <QByteArrayView>

// The server's side of RFC 6455 as pure functions over bytes, without sockets: the opening
// handshake, the frame reader that decodes what clients send, and the header of what the server
// sends. WebSocketConnection drives them on a descriptor; the fuzz target
// tests/fuzz/fuzz_websocket_frames.cpp drives them on arbitrary bytes. No extensions and no
// subprotocols are negotiated, so the reserved bits must always be clear.

namespace ferry::server::websocket {

/// Frame opcodes (RFC 6455 section 5.2).
enum class Opcode : quint8 {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
};

/// Close codes the framing itself sends (RFC 6455 section 7.4.1).
inline constexpr int CloseNormal = 1000;
inline constexpr int CloseProtocolError = 1002;
inline constexpr int CloseTooLarge = 1009;
/// "No status code was present": reported, never sent.
inline constexpr int CloseNoStatus = 1005;

/// The longest opening handshake accepted, request line and headers together.
inline constexpr qsizetype MaxHandshakeBytes = 8 * 1024;

/// The outcome of reading a client's opening handshake.
struct UpgradeRequest {
    bool complete = false; ///< the header ended; until then, read more (unless `status` is set)
    int status = 0; ///< 0 when acceptable, else the HTTP status to refuse with
    QByteArray reason; ///< why it was refused, for the response body and the log
    QByteArray key; ///< Sec-WebSocket-Key, when acceptable
    qsizetype headerBytes = 0; ///< bytes up to and including the blank line, when complete
};

/// Reads the opening handshake from the start of `bytes` (RFC 6455 section 4.2.1): a GET with
/// Host, Upgrade: websocket, Connection: upgrade, Sec-WebSocket-Version: 13 and a key of 16
/// bytes in base64. Incomplete input longer than MaxHandshakeBytes is refused with 431.
UpgradeRequest readUpgradeRequest(QByteArrayView bytes);

/// The 101 response that accepts a handshake with this key.
QByteArray acceptResponse(QByteArrayView key);
/// An HTTP error response that refuses a handshake; the connection closes after it.
QByteArray refusalResponse(int status, QByteArrayView reason);

/// Sec-WebSocket-Accept for a key: base64(SHA-1(key + the RFC's GUID)).
QByteArray acceptKey(QByteArrayView key);

/// The longest header of a server frame: 2 bytes and an 8-byte length, never masked.
inline constexpr qsizetype MaxServerHeaderBytes = 10;
/// Writes the header of one unmasked, final server frame to `out`; returns its length.
qsizetype writeFrameHeader(char* out, Opcode opcode, quint64 payloadLength);

/// What the frame reader hands on. A message's payload is only valid during the call.
class FrameSink {
public:
    virtual ~FrameSink() = default;
    /// A whole binary message, reassembled from its fragments if it had any.
    virtual void binaryMessage(QByteArrayView payload) = 0;
    /// The first frame of a text message; the protocol has no text, so its content is not kept.
    virtual void textMessage() = 0;
    virtual void ping(QByteArrayView payload) = 0;
    virtual void pong() = 0;
    /// The peer's close frame: its code (CloseNoStatus when it had none) and reason.
    virtual void closeReceived(int code, QByteArrayView reason) = 0;
    /// A violation of the protocol or a limit; the reader reads nothing more after it.
    virtual void frameError(int closeCode, const char* reason) = 0;
};

/// Decodes the frames a client sends (RFC 6455 section 5): masked, reserved bits clear, known
/// opcodes, control frames final and at most 125 bytes, fragments in order, messages no larger
/// than the limit (checked from the headers, before the payload is read). Bytes are fed in
/// chunks as they arrive; a frame split anywhere is decoded the same as a whole one. Only an
/// incomplete frame, and the fragments of an unfinished message, are kept between chunks: a
/// frame that lies whole in a chunk is unmasked in place and handed on without a copy.
class FrameReader {
public:
    explicit FrameReader(qsizetype maxMessageBytes)
        : m_maxMessageBytes(maxMessageBytes)
    {
    }

    /// Decodes what `chunk` completes and hands it to `sink`; the chunk's bytes may be changed
    /// (unmasked in place). Stops for good after a close frame or an error. The sink must not
    /// destroy the reader from inside a call.
    void feed(char* chunk, qsizetype size, FrameSink& sink);

    /// Whether a close frame or an error ended the stream.
    bool isFinished() const { return m_finished; }
    /// Bytes kept between chunks: an incomplete frame and an unfinished message.
    qsizetype bufferedBytes() const { return m_partial.size() + m_message.size(); }

private:
    enum class Step { Frame, NeedMore, Stop };
    /// Decodes the one frame at the start of `data`; sets `used` to its length when whole.
    Step decodeFrame(char* data, qsizetype size, qsizetype* used, FrameSink& sink);
    void fail(FrameSink& sink, int closeCode, const char* reason);

    qsizetype m_maxMessageBytes;
    QByteArray m_partial; ///< the start of a frame that has not arrived whole
    QByteArray m_message; ///< fragments of a binary message without its final frame yet
    qsizetype m_messageBytes = 0; ///< of the unfinished message so far, text or binary
    bool m_inMessage = false;
    bool m_messageIsText = false; ///< a text message's fragments are counted, not kept
    bool m_finished = false;
};

} // namespace ferry::server::websocket
