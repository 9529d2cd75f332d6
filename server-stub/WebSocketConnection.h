#pragma once

#include "server-stub/WebSocketFraming.h"

#include <QByteArray>
#include <QByteArrayView>

#include <memory>

class QSocketNotifier;

namespace ferry::server {

/// The server's side of one WebSocket (RFC 6455) on an accepted, non-blocking TCP descriptor,
/// driven by the thread's event loop. It replaces QWebSocket for the memory it costs per
/// connection (docs/design.md, "Memory per connection"):
///  - reads go into one buffer per thread; frames that arrive whole are decoded there, and only
///    an incomplete frame is kept per connection (websocket::FrameReader);
///  - what is written during one pass of the event loop (a group commit's acks and pushes, a
///    sync batch) goes to the kernel in one system call at the start of the next pass; only
///    what the kernel does not take stays queued, and the write notifier exists and is enabled
///    only while something does;
///  - one socket notifier for reading, no signals: the owner hears through Handler.
///
/// It answers the opening handshake (101, or an HTTP error and the end of the connection),
/// pings, and the close handshake by itself. Its owner (ClientConnection) owns it through a
/// unique_ptr and implements Handler; the descriptor is closed when it is destroyed.
class WebSocketConnection final : private websocket::FrameSink {
public:
    /// What the owner is told. It must not destroy the connection from inside a call.
    class Handler {
    public:
        virtual ~Handler() = default;
        /// One whole binary message; its bytes are valid only during the call.
        virtual void binaryMessageReceived(QByteArrayView message) = 0;
        /// A text message began: not part of Ferry's protocol.
        virtual void textMessageReceived() = 0;
        virtual void pongReceived() = 0;
        /// The peer broke the framing or a limit; the owner closes with this code.
        virtual void framingFailed(int closeCode, const char* reason) = 0;
        /// The connection is over (peer closed, close handshake done, or an error). Not called
        /// for abort(), whose caller knows.
        virtual void disconnected() = 0;
    };

    /// While one exists on a thread, the frames written on that thread wait in their
    /// connections' buffers, and when the outermost ends each connection written to sends them
    /// all in one system call. Without one, the first frame a connection is given in a pass
    /// leaves at once and the rest at the start of the next pass. For a burst of frames to many
    /// connections, several to some: a group commit's acks and pushes.
    class OutputBatch {
    public:
        OutputBatch();
        ~OutputBatch();
        OutputBatch(const OutputBatch&) = delete;
        OutputBatch& operator=(const OutputBatch&) = delete;
    };

    enum class State {
        Handshake, ///< reading the HTTP upgrade request
        Refused, ///< the handshake was refused; reading to the peer's end of the stream
        Open,
        Closing, ///< our close frame is sent; waiting for the peer's
        Closed,
    };

    /// Takes over `descriptor`, which must be a connected, non-blocking stream socket.
    WebSocketConnection(qintptr descriptor, qsizetype maxMessageBytes, Handler* handler);
    ~WebSocketConnection() override;

    WebSocketConnection(const WebSocketConnection&) = delete;
    WebSocketConnection& operator=(const WebSocketConnection&) = delete;

    State state() const { return m_state; }
    /// The close code received from the peer, or sent if it had none; 1006 when neither.
    int closeCode() const { return m_closeCode; }
    /// Bytes the kernel has not taken yet, including those written in this pass.
    qint64 bytesToWrite() const { return m_output.size() - m_outputSent; }

    /// Sends one binary message as one frame; dropped unless the connection is open.
    void sendBinaryMessage(QByteArrayView message);
    void ping();
    /// Hands queued output to the kernel now, as far as it takes it, without waiting for the
    /// next pass.
    void flush();
    /// Sends a close frame; disconnected() follows when the peer answers (or the owner aborts).
    void close(int closeCode, QByteArrayView reason);
    /// Closes the descriptor at once, dropping what is queued. Handler::disconnected() is not
    /// called.
    void abort();

    /// Called by the notifiers.
    void handleReadable();
    void handleWritable();

private:
    // websocket::FrameSink
    void binaryMessage(QByteArrayView payload) override;
    void textMessage() override;
    void ping(QByteArrayView payload) override;
    void pong() override;
    void closeReceived(int code, QByteArrayView reason) override;
    void frameError(int closeCode, const char* reason) override;

    void handleBytes(char* data, qsizetype size);
    void handleHandshake(char* data, qsizetype size);
    void sendFrame(websocket::Opcode opcode, QByteArrayView payload);
    /// Queues `first` then `second` for the flush at the start of the next pass.
    void write(QByteArrayView first, QByteArrayView second = {});
    void scheduleFlush();
    void unscheduleFlush();
    /// Hands the output of every connection written in the last pass to the kernel.
    static void flushScheduled();
    void setWriteNotifierEnabled(bool enabled);
    /// Sends our end of the stream (a FIN); reading goes on until the peer's.
    void shutdownWriting();
    /// Ends a connection whose end the transport found itself, and tells the handler.
    void finish();
    void closeDescriptor();

    qintptr m_descriptor;
    Handler* m_handler;
    State m_state = State::Handshake;
    int m_closeCode = 1006;
    bool m_writeFailed = false; ///< the peer is gone; the read side reports it
    bool m_reading = false; ///< inside handleReadable, called by the read notifier
    bool m_shutdownWhenWritten = false; ///< end our side of the stream once the output is out
    bool m_flushScheduled = false; ///< in this thread's flush queue
    websocket::FrameReader m_reader;
    QByteArray m_handshake; ///< an upgrade request that has not arrived whole
    QByteArray m_output; ///< what the kernel did not take, from m_outputSent on
    qsizetype m_outputSent = 0;
    std::unique_ptr<QSocketNotifier> m_readNotifier;
    std::unique_ptr<QSocketNotifier> m_writeNotifier; ///< made when output is first queued
};

} // namespace ferry::server
