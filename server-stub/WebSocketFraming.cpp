#include "server-stub/WebSocketFraming.h"

#include <QCryptographicHash>
#include <QList>
#include <QtEndian>

namespace ferry::server::websocket {

namespace {
    /// The GUID of RFC 6455 section 1.3 that turns a key into its accept value.
    constexpr QByteArrayView HandshakeGuid { "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" };
    constexpr qsizetype MaxControlPayload = 125;

    QByteArrayView statusText(int status)
    {
        switch (status) {
        case 400:
            return "Bad Request";
        case 405:
            return "Method Not Allowed";
        case 426:
            return "Upgrade Required";
        case 431:
            return "Request Header Fields Too Large";
        default:
            return "Error";
        }
    }

    /// The parts of `text` between separators, empty ones included.
    QList<QByteArrayView> splitView(QByteArrayView text, QByteArrayView separator)
    {
        QList<QByteArrayView> parts;
        qsizetype start = 0;
        while (true) {
            const qsizetype next = text.indexOf(separator, start);
            if (next < 0) {
                parts.append(text.sliced(start));
                return parts;
            }
            parts.append(text.sliced(start, next - start));
            start = next + separator.size();
        }
    }

    /// Whether a comma-separated header value holds `token`, ignoring case (RFC 7230 lists).
    bool hasToken(QByteArrayView value, QByteArrayView token)
    {
        for (const QByteArrayView part : splitView(value, ",")) {
            if (part.trimmed().compare(token, Qt::CaseInsensitive) == 0) {
                return true;
            }
        }
        return false;
    }

    UpgradeRequest refuse(UpgradeRequest request, int status, QByteArrayView reason)
    {
        request.status = status;
        request.reason = reason.toByteArray();
        request.key.clear();
        return request;
    }

    /// Close codes a peer may send (RFC 6455 section 7.4): the defined ones that are not
    /// reserved for reporting, and the ranges for libraries and applications.
    bool isValidReceivedCloseCode(int code)
    {
        if (code >= 3000 && code <= 4999) {
            return true;
        }
        return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
    }
}

// The opening handshake ----------------------------------------------------------------------

UpgradeRequest readUpgradeRequest(QByteArrayView bytes)
{
    UpgradeRequest request;
    const qsizetype end = bytes.indexOf(QByteArrayView("\r\n\r\n"));
    if (end < 0 || end + 4 > MaxHandshakeBytes) {
        if (bytes.size() > MaxHandshakeBytes) {
            request.complete = true;
            return refuse(request, 431, "the request header is larger than 8 KiB");
        }
        return request;
    }
    request.complete = true;
    request.headerBytes = end + 4;

    const QList<QByteArrayView> lines = splitView(bytes.first(end), "\r\n");
    const QList<QByteArrayView> requestLine = splitView(lines[0], " ");
    if (requestLine.size() != 3 || requestLine[2] != "HTTP/1.1") {
        return refuse(request, 400, "the request line is not an HTTP/1.1 request");
    }
    if (requestLine[0] != "GET") {
        return refuse(request, 405, "only a GET request upgrades to a WebSocket");
    }

    bool hasHost = false;
    bool upgradesToWebSocket = false;
    bool connectionUpgrades = false;
    QByteArrayView version;
    int keys = 0;
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const qsizetype colon = lines[i].indexOf(':');
        if (colon <= 0 || lines[i].first(colon).trimmed().size() != colon) {
            return refuse(request, 400, "a header line is malformed");
        }
        const QByteArrayView name = lines[i].first(colon);
        const QByteArrayView value = lines[i].sliced(colon + 1).trimmed();
        if (name.compare("Host", Qt::CaseInsensitive) == 0) {
            hasHost = true;
        } else if (name.compare("Upgrade", Qt::CaseInsensitive) == 0) {
            upgradesToWebSocket = hasToken(value, "websocket");
        } else if (name.compare("Connection", Qt::CaseInsensitive) == 0) {
            connectionUpgrades = hasToken(value, "upgrade");
        } else if (name.compare("Sec-WebSocket-Version", Qt::CaseInsensitive) == 0) {
            version = value;
        } else if (name.compare("Sec-WebSocket-Key", Qt::CaseInsensitive) == 0) {
            request.key = value.toByteArray();
            ++keys;
        }
    }

    if (!hasHost) {
        return refuse(request, 400, "the request has no Host header");
    }
    if (!upgradesToWebSocket || !connectionUpgrades) {
        return refuse(request, 400, "the request is not a WebSocket upgrade");
    }
    if (version != "13") {
        return refuse(request, 426, "only WebSocket version 13 is spoken here");
    }
    const auto decodedKey
        = QByteArray::fromBase64Encoding(request.key, QByteArray::AbortOnBase64DecodingErrors);
    if (keys != 1 || !decodedKey || decodedKey.decoded.size() != 16) {
        return refuse(request, 400, "Sec-WebSocket-Key must be 16 bytes in base64, given once");
    }
    return request;
}

QByteArray acceptKey(QByteArrayView key)
{
    QCryptographicHash sha1(QCryptographicHash::Sha1);
    sha1.addData(key);
    sha1.addData(HandshakeGuid);
    return sha1.result().toBase64();
}

QByteArray acceptResponse(QByteArrayView key)
{
    return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: "
        + acceptKey(key) + "\r\n\r\n";
}

QByteArray refusalResponse(int status, QByteArrayView reason)
{
    QByteArray response = "HTTP/1.1 " + QByteArray::number(status) + ' '
        + statusText(status).toByteArray() + "\r\nConnection: close\r\n"
        + "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "
        + QByteArray::number(reason.size() + 1) + "\r\n";
    if (status == 426) {
        response += "Sec-WebSocket-Version: 13\r\n";
    }
    response += "\r\n" + reason.toByteArray() + '\n';
    return response;
}

// Frames --------------------------------------------------------------------------------------

qsizetype writeFrameHeader(char* out, Opcode opcode, quint64 payloadLength)
{
    out[0] = static_cast<char>(0x80 | static_cast<quint8>(opcode));
    if (payloadLength < 126) {
        out[1] = static_cast<char>(payloadLength);
        return 2;
    }
    if (payloadLength <= 0xFFFF) {
        out[1] = 126;
        qToBigEndian(static_cast<quint16>(payloadLength), out + 2);
        return 4;
    }
    out[1] = 127;
    qToBigEndian(payloadLength, out + 2);
    return 10;
}

void FrameReader::feed(char* chunk, qsizetype size, FrameSink& sink)
{
    if (m_finished || size <= 0) {
        return;
    }
    // A frame begun in an earlier chunk is completed in m_partial, and decoding goes on from
    // there; otherwise the chunk is decoded where it lies, and only its incomplete tail is kept.
    const bool fromPartial = !m_partial.isEmpty();
    if (fromPartial) {
        m_partial.append(chunk, size);
    }
    char* data = fromPartial ? m_partial.data() : chunk;
    const qsizetype available = fromPartial ? m_partial.size() : size;

    qsizetype offset = 0;
    while (!m_finished && offset < available) {
        qsizetype used = 0;
        if (decodeFrame(data + offset, available - offset, &used, sink) == Step::NeedMore) {
            break;
        }
        offset += used;
    }

    if (m_finished) {
        m_partial = QByteArray();
        m_message = QByteArray();
    } else if (fromPartial) {
        m_partial.remove(0, offset);
    } else {
        m_partial = QByteArray(data + offset, available - offset);
    }
    if (m_partial.isEmpty()) {
        // Frees the block: an idle connection keeps nothing.
        m_partial = QByteArray();
    }
}

FrameReader::Step FrameReader::decodeFrame(
    char* data, qsizetype size, qsizetype* used, FrameSink& sink)
{
    if (size < 2) {
        return Step::NeedMore;
    }
    const auto first = static_cast<quint8>(data[0]);
    const auto second = static_cast<quint8>(data[1]);
    const bool final = (first & 0x80) != 0;
    const quint8 opcodeBits = first & 0x0F;
    const bool masked = (second & 0x80) != 0;

    if ((first & 0x70) != 0) {
        fail(sink, CloseProtocolError, "reserved bits set without an extension");
        return Step::Stop;
    }
    const auto opcode = static_cast<Opcode>(opcodeBits);
    switch (opcode) {
    case Opcode::Continuation:
    case Opcode::Text:
    case Opcode::Binary:
    case Opcode::Close:
    case Opcode::Ping:
    case Opcode::Pong:
        break;
    default:
        fail(sink, CloseProtocolError, "reserved opcode");
        return Step::Stop;
    }
    if (!masked) {
        fail(sink, CloseProtocolError, "a client's frames must be masked");
        return Step::Stop;
    }

    qsizetype header = 2;
    quint64 length = second & 0x7F;
    if (length == 126) {
        if (size < 4) {
            return Step::NeedMore;
        }
        length = qFromBigEndian<quint16>(data + 2);
        header = 4;
    } else if (length == 127) {
        if (size < 10) {
            return Step::NeedMore;
        }
        length = qFromBigEndian<quint64>(data + 2);
        header = 10;
        if ((length >> 63) != 0) {
            fail(sink, CloseProtocolError, "a frame length has its top bit set");
            return Step::Stop;
        }
    }

    // Limits are checked from the header, so an oversized frame is refused before its payload
    // is read, let alone kept.
    const bool control = (opcodeBits & 0x8) != 0;
    if (control) {
        if (!final) {
            fail(sink, CloseProtocolError, "a control frame is fragmented");
            return Step::Stop;
        }
        if (length > MaxControlPayload) {
            fail(sink, CloseProtocolError, "a control frame is longer than 125 bytes");
            return Step::Stop;
        }
    } else {
        const bool continuation = opcode == Opcode::Continuation;
        if (continuation && !m_inMessage) {
            fail(sink, CloseProtocolError, "a continuation frame without a message");
            return Step::Stop;
        }
        if (!continuation && m_inMessage) {
            fail(sink, CloseProtocolError, "a new message inside a fragmented one");
            return Step::Stop;
        }
        const quint64 limit = static_cast<quint64>(m_maxMessageBytes);
        const quint64 before = continuation ? static_cast<quint64>(m_messageBytes) : 0;
        if (length > limit || before + length > limit) {
            fail(sink, CloseTooLarge, "the message is larger than the limit");
            return Step::Stop;
        }
    }

    header += 4;
    if (size < header || static_cast<quint64>(size - header) < length) {
        return Step::NeedMore;
    }
    *used = header + static_cast<qsizetype>(length);

    char* payload = data + header;
    const char* mask = data + header - 4;
    for (qsizetype i = 0; i < static_cast<qsizetype>(length); ++i) {
        payload[i] = static_cast<char>(payload[i] ^ mask[i & 3]);
    }
    const QByteArrayView bytes(payload, static_cast<qsizetype>(length));

    switch (opcode) {
    case Opcode::Text:
        m_inMessage = !final;
        m_messageIsText = true;
        m_messageBytes = bytes.size();
        sink.textMessage();
        return Step::Frame;
    case Opcode::Binary:
        if (final) {
            sink.binaryMessage(bytes);
            return Step::Frame;
        }
        m_inMessage = true;
        m_messageIsText = false;
        m_messageBytes = bytes.size();
        m_message = bytes.toByteArray();
        return Step::Frame;
    case Opcode::Continuation:
        m_messageBytes += bytes.size();
        if (!m_messageIsText) {
            m_message.append(bytes);
        }
        if (final) {
            m_inMessage = false;
            m_messageBytes = 0;
            const QByteArray message = std::exchange(m_message, QByteArray());
            if (!m_messageIsText) {
                sink.binaryMessage(message);
            }
        }
        return Step::Frame;
    case Opcode::Ping:
        sink.ping(bytes);
        return Step::Frame;
    case Opcode::Pong:
        sink.pong();
        return Step::Frame;
    case Opcode::Close:
        break;
    }

    if (bytes.size() == 1) {
        fail(sink, CloseProtocolError, "a close frame of one byte");
        return Step::Stop;
    }
    const int code = bytes.size() >= 2 ? qFromBigEndian<quint16>(bytes.data()) : CloseNoStatus;
    if (bytes.size() >= 2 && !isValidReceivedCloseCode(code)) {
        fail(sink, CloseProtocolError, "a close frame with an invalid code");
        return Step::Stop;
    }
    m_finished = true;
    sink.closeReceived(code, bytes.size() >= 2 ? bytes.sliced(2) : QByteArrayView());
    return Step::Stop;
}

void FrameReader::fail(FrameSink& sink, int closeCode, const char* reason)
{
    m_finished = true;
    sink.frameError(closeCode, reason);
}

} // namespace ferry::server::websocket
