// Arbitrary bytes into the server's WebSocket framing (server-stub/WebSocketFraming), the first
// code that reads what a client sends: the opening handshake's parser, and the frame reader fed
// the same bytes twice, once whole and once cut into small chunks of sizes the input chooses.
//
// Invariants: no crash and no sanitizer report; the reader hands on the same events, in the same
// order, however the bytes are cut; no message is larger than the limit; nothing is handed on
// after a close frame or an error; the reader keeps at most one incomplete frame and one
// unfinished message; an accepted handshake has a key of 16 bytes and ends inside the input.

#include "server-stub/WebSocketFraming.h"
#include "tests/fuzz/FuzzSupport.h"

#include <QByteArray>
#include <QList>

using namespace ferry::server::websocket;

namespace {

constexpr qsizetype MaxMessageBytes = 1024;

/// Writes down what the reader hands on, as text that two runs can be compared by.
class RecordingSink final : public FrameSink {
public:
    QList<QByteArray> events;
    bool finished = false;

    void binaryMessage(QByteArrayView payload) override
    {
        FERRY_FUZZ_CHECK(payload.size() <= MaxMessageBytes, "a message is within the limit");
        record("binary " + payload.toByteArray().toHex());
    }
    void textMessage() override { record("text"); }
    void ping(QByteArrayView payload) override
    {
        FERRY_FUZZ_CHECK(payload.size() <= 125, "a ping is at most 125 bytes");
        record("ping " + payload.toByteArray().toHex());
    }
    void pong() override { record("pong"); }
    void closeReceived(int code, QByteArrayView reason) override
    {
        record("close " + QByteArray::number(code) + ' ' + reason.toByteArray().toHex());
        finished = true;
    }
    void frameError(int closeCode, const char* reason) override
    {
        record("error " + QByteArray::number(closeCode) + ' ' + reason);
        finished = true;
    }

private:
    void record(QByteArray event)
    {
        FERRY_FUZZ_CHECK(!finished, "nothing is handed on after a close frame or an error");
        events.append(std::move(event));
    }
};

QList<QByteArray> readWhole(QByteArray bytes)
{
    RecordingSink sink;
    FrameReader reader(MaxMessageBytes);
    reader.feed(bytes.data(), bytes.size(), sink);
    return sink.events;
}

QList<QByteArray> readInChunks(QByteArray bytes, QByteArrayView chunkSizes)
{
    RecordingSink sink;
    FrameReader reader(MaxMessageBytes);
    qsizetype offset = 0;
    for (qsizetype i = 0; offset < bytes.size(); ++i) {
        const qsizetype size = std::min<qsizetype>(bytes.size() - offset,
            1 + static_cast<quint8>(chunkSizes.at(i % chunkSizes.size())) % 16);
        reader.feed(bytes.data() + offset, size, sink);
        offset += size;
        FERRY_FUZZ_CHECK(reader.bufferedBytes() <= 2 * MaxMessageBytes + 14,
            "the reader keeps at most an incomplete frame and an unfinished message");
    }
    return sink.events;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const QByteArray input = ferry::fuzz::inputBytes(data, size);

    const UpgradeRequest request = readUpgradeRequest(input);
    if (request.complete && request.status == 0) {
        const auto key = QByteArray::fromBase64Encoding(request.key);
        FERRY_FUZZ_CHECK(key.decoded.size() == 16, "an accepted key is 16 bytes");
        FERRY_FUZZ_CHECK(request.headerBytes <= input.size(), "the header ends inside the input");
    }

    // The first four bytes choose the chunk sizes; all of the input is read as frames.
    const QByteArrayView chunkSizes
        = input.size() >= 4 ? QByteArrayView(input).first(4) : QByteArrayView("\x01");
    const QList<QByteArray> whole = readWhole(input);
    const QList<QByteArray> chunked = readInChunks(input, chunkSizes);
    FERRY_FUZZ_CHECK(whole == chunked, "the events do not depend on how the bytes are cut");
    return 0;
}
