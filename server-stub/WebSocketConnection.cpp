#include "server-stub/WebSocketConnection.h"

#include "core/Logging.h"

#include <QAbstractEventDispatcher>
#include <QEvent>
#include <QScopeGuard>
#include <QSocketNotifier>

#include <algorithm>
#include <array>
#include <cerrno>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace ferry::server {

using websocket::Opcode;

namespace {
    /// One read hands the kernel this much room; a burst larger than this is read in a few
    /// passes (the notifier is level-triggered and fires again).
    constexpr qsizetype ReadBufferBytes = 64 * 1024;
    /// Reads per activation, so that one busy peer does not hold the loop from the others.
    constexpr int MaxReadsPerActivation = 4;
    /// Sent output is cut off the front of the queue once it is this large, not per write.
    constexpr qsizetype CompactOutputBytes = 64 * 1024;

    /// The connections of this thread with output written in this pass of the event loop; one
    /// posted call at the start of the next pass hands each one's output to the kernel.
    struct FlushQueue {
        std::vector<WebSocketConnection*> connections;
        bool posted = false;
        int openBatches = 0; ///< OutputBatch objects alive on this thread
    };

    FlushQueue& flushQueue()
    {
        thread_local FlushQueue queue;
        return queue;
    }

    /// The read buffer of this thread, shared by every connection of the thread: a read is
    /// decoded before the next one starts, so one suffices. A handler that runs a nested event
    /// loop would read another connection while this one's bytes are still in use; that read
    /// gets a buffer of its own.
    class SharedReadBuffer {
    public:
        SharedReadBuffer()
        {
            thread_local std::unique_ptr<char[]> buffer;
            thread_local bool inUse = false;
            if (inUse) {
                m_own = std::make_unique<char[]>(ReadBufferBytes);
                m_data = m_own.get();
                return;
            }
            if (!buffer) {
                buffer = std::make_unique<char[]>(ReadBufferBytes);
            }
            inUse = true;
            m_inUse = &inUse;
            m_data = buffer.get();
        }
        ~SharedReadBuffer()
        {
            if (m_inUse) {
                *m_inUse = false;
            }
        }
        SharedReadBuffer(const SharedReadBuffer&) = delete;
        SharedReadBuffer& operator=(const SharedReadBuffer&) = delete;

        char* data() const { return m_data; }

    private:
        char* m_data = nullptr;
        bool* m_inUse = nullptr;
        std::unique_ptr<char[]> m_own;
    };

    /// A socket notifier that calls its connection directly: no signal connection, which would
    /// cost an allocation or two per notifier.
    class ConnectionNotifier final : public QSocketNotifier {
    public:
        ConnectionNotifier(qintptr descriptor, Type type, WebSocketConnection* connection)
            : QSocketNotifier(descriptor, type)
            , m_connection(connection)
        {
        }

    protected:
        bool event(QEvent* event) override
        {
            if (event->type() != QEvent::SockAct) {
                return QSocketNotifier::event(event);
            }
            if (type() == Read) {
                m_connection->handleReadable();
            } else {
                m_connection->handleWritable();
            }
            return true;
        }

    private:
        WebSocketConnection* m_connection;
    };
}

WebSocketConnection::WebSocketConnection(
    qintptr descriptor, qsizetype maxMessageBytes, Handler* handler)
    : m_descriptor(descriptor)
    , m_handler(handler)
    , m_reader(maxMessageBytes)
    , m_readNotifier(std::make_unique<ConnectionNotifier>(descriptor, QSocketNotifier::Read, this))
{
}

WebSocketConnection::~WebSocketConnection() { closeDescriptor(); }

// Reading ------------------------------------------------------------------------------------

void WebSocketConnection::handleReadable()
{
    SharedReadBuffer buffer;
    m_reading = true;
    const auto notReading = qScopeGuard([this] { m_reading = false; });
    for (int i = 0; i < MaxReadsPerActivation && m_state != State::Closed; ++i) {
        const ssize_t received = ::recv(
            static_cast<int>(m_descriptor), buffer.data(), static_cast<size_t>(ReadBufferBytes), 0);
        if (received > 0) {
            handleBytes(buffer.data(), received);
            if (received < ReadBufferBytes) {
                return;
            }
            continue;
        }
        if (received < 0 && errno == EINTR) {
            continue;
        }
        if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        // The end of the stream, or a reset: without a close frame first, 1006 stays the code.
        qCDebug(lcServer) << "The peer's stream ended"
                          << (received < 0 ? qt_error_string(errno) : QString());
        finish();
        return;
    }
}

void WebSocketConnection::handleBytes(char* data, qsizetype size)
{
    switch (m_state) {
    case State::Handshake:
        return handleHandshake(data, size);
    case State::Open:
    case State::Closing:
        return m_reader.feed(data, size, *this);
    case State::Refused:
    case State::Closed:
        return;
    }
}

void WebSocketConnection::handleHandshake(char* data, qsizetype size)
{
    // A request that arrives in one read, as nearly all do, is parsed where it lies.
    const bool fromKept = !m_handshake.isEmpty();
    if (fromKept) {
        m_handshake.append(data, size);
    }
    const QByteArrayView bytes
        = fromKept ? QByteArrayView(m_handshake) : QByteArrayView(data, size);
    const websocket::UpgradeRequest request = websocket::readUpgradeRequest(bytes);
    if (!request.complete) {
        if (!fromKept) {
            m_handshake = bytes.toByteArray();
        }
        return;
    }

    if (request.status != 0) {
        qCInfo(lcServer) << "Refused a WebSocket handshake with" << request.status << ':'
                         << request.reason;
        m_handshake = QByteArray();
        write(websocket::refusalResponse(request.status, request.reason));
        // The peer's end of the stream, read to the end, closes the connection: closing at
        // once, with its request unread, would reset the connection and could lose the answer.
        m_state = State::Refused;
        if (bytesToWrite() == 0) {
            shutdownWriting();
        } else {
            m_shutdownWhenWritten = true;
        }
        return;
    }

    write(websocket::acceptResponse(request.key));
    m_state = State::Open;
    qCDebug(lcServer) << "WebSocket handshake done";

    // Frames the client sent right behind its request.
    if (fromKept) {
        QByteArray kept = std::exchange(m_handshake, QByteArray());
        if (kept.size() > request.headerBytes) {
            m_reader.feed(
                kept.data() + request.headerBytes, kept.size() - request.headerBytes, *this);
        }
    } else if (size > request.headerBytes) {
        m_reader.feed(data + request.headerBytes, size - request.headerBytes, *this);
    }
}

void WebSocketConnection::binaryMessage(QByteArrayView payload)
{
    if (m_state == State::Open) {
        m_handler->binaryMessageReceived(payload);
    }
}

void WebSocketConnection::textMessage()
{
    if (m_state == State::Open) {
        m_handler->textMessageReceived();
    }
}

void WebSocketConnection::ping(QByteArrayView payload)
{
    if (m_state == State::Open) {
        sendFrame(Opcode::Pong, payload);
    }
}

void WebSocketConnection::pong()
{
    if (m_state == State::Open) {
        m_handler->pongReceived();
    }
}

void WebSocketConnection::closeReceived(int code, QByteArrayView)
{
    qCDebug(lcServer) << "Close frame received with" << code;
    if (m_state == State::Open) {
        // The peer began the close handshake: the answer echoes its code, then the server
        // closes the TCP connection first, as RFC 6455 section 7.1.1 asks.
        m_closeCode = code;
        char payload[2] = { static_cast<char>(code >> 8), static_cast<char>(code & 0xFF) };
        sendFrame(Opcode::Close,
            code == websocket::CloseNoStatus ? QByteArrayView() : QByteArrayView(payload, 2));
    }
    finish();
}

void WebSocketConnection::frameError(int closeCode, const char* reason)
{
    qCDebug(lcServer) << "Broken framing:" << reason;
    if (m_state == State::Open) {
        m_handler->framingFailed(closeCode, reason);
    } else {
        // Broken framing while our close frame waits for its answer: no answer will come.
        finish();
    }
}

// Writing ------------------------------------------------------------------------------------

void WebSocketConnection::sendBinaryMessage(QByteArrayView message)
{
    if (m_state == State::Open) {
        sendFrame(Opcode::Binary, message);
    }
}

void WebSocketConnection::ping()
{
    if (m_state == State::Open) {
        sendFrame(Opcode::Ping, {});
    }
}

void WebSocketConnection::close(int closeCode, QByteArrayView reason)
{
    if (m_state != State::Open) {
        return;
    }
    // A close frame's payload is a control frame's: at most 125 bytes, the code included.
    char payload[125];
    payload[0] = static_cast<char>(closeCode >> 8);
    payload[1] = static_cast<char>(closeCode & 0xFF);
    const qsizetype reasonBytes = std::min<qsizetype>(reason.size(), sizeof(payload) - 2);
    std::copy_n(reason.data(), reasonBytes, payload + 2);
    sendFrame(Opcode::Close, QByteArrayView(payload, 2 + reasonBytes));
    m_closeCode = closeCode;
    m_state = State::Closing;
    if (m_reader.isFinished()) {
        // After broken framing the peer's answer could not be read: the connection is failed
        // (RFC 6455 section 7.1.7). Our side ends once the close frame is out, and the peer's
        // end of the stream, read to the end, closes it without a reset.
        m_shutdownWhenWritten = true;
        if (bytesToWrite() == 0) {
            shutdownWriting();
        }
    }
}

void WebSocketConnection::shutdownWriting()
{
    m_shutdownWhenWritten = false;
    ::shutdown(static_cast<int>(m_descriptor), SHUT_WR);
}

void WebSocketConnection::sendFrame(Opcode opcode, QByteArrayView payload)
{
    char header[websocket::MaxServerHeaderBytes];
    const qsizetype headerBytes
        = websocket::writeFrameHeader(header, opcode, static_cast<quint64>(payload.size()));
    write(QByteArrayView(header, headerBytes), payload);
}

void WebSocketConnection::write(QByteArrayView first, QByteArrayView second)
{
    if (m_writeFailed || m_state == State::Closed) {
        return;
    }
    const bool writingNow = bytesToWrite() == 0 && !m_flushScheduled
        && !(m_writeNotifier && m_writeNotifier->isEnabled()) && flushQueue().openBatches == 0;
    if (!writingNow) {
        m_output.append(first);
        m_output.append(second);
        scheduleFlush();
        return;
    }

    // The first frame of a pass goes to the kernel at once, header and payload in one system
    // call from where they lie: an answer is not delayed. The connection then joins the flush
    // queue, so that the frames written after it in this pass (a commit's further acks, a
    // push) are collected and leave together at the start of the next pass.
    iovec parts[2] = { { const_cast<char*>(first.data()), static_cast<size_t>(first.size()) },
        { const_cast<char*>(second.data()), static_cast<size_t>(second.size()) } };
    msghdr message {};
    message.msg_iov = parts;
    message.msg_iovlen = second.isEmpty() ? 1 : 2;
    ssize_t sent = -1;
    do {
        sent = ::sendmsg(static_cast<int>(m_descriptor), &message, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        // The peer is gone. The read notifier wakes on the error and ends the connection.
        m_writeFailed = true;
        return;
    }
    const qsizetype written = std::max<qsizetype>(sent, 0);
    if (written < first.size()) {
        m_output.append(first.sliced(written));
        m_output.append(second);
    } else {
        m_output.append(second.sliced(written - first.size()));
    }
    if (bytesToWrite() > 0) {
        // What the kernel did not take waits for the write notifier.
        setWriteNotifierEnabled(true);
    } else {
        scheduleFlush();
    }
}

void WebSocketConnection::scheduleFlush()
{
    // A connection the kernel is not taking from waits for its write notifier instead.
    if (m_flushScheduled || (m_writeNotifier && m_writeNotifier->isEnabled())) {
        return;
    }
    QObject* dispatcher = QAbstractEventDispatcher::instance();
    if (!dispatcher) {
        handleWritable();
        return;
    }
    FlushQueue& queue = flushQueue();
    queue.connections.push_back(this);
    m_flushScheduled = true;
    if (!queue.posted) {
        queue.posted = true;
        QMetaObject::invokeMethod(
            dispatcher, &WebSocketConnection::flushScheduled, Qt::QueuedConnection);
    }
}

void WebSocketConnection::flushScheduled()
{
    FlushQueue& queue = flushQueue();
    queue.posted = false;
    std::vector<WebSocketConnection*> due;
    due.swap(queue.connections);
    for (WebSocketConnection* connection : due) {
        connection->m_flushScheduled = false;
        connection->handleWritable();
    }
}

WebSocketConnection::OutputBatch::OutputBatch() { ++flushQueue().openBatches; }

WebSocketConnection::OutputBatch::~OutputBatch()
{
    if (--flushQueue().openBatches == 0) {
        // Sent now rather than at the next pass: the batch is complete. The call posted for
        // the next pass then finds nothing to send.
        flushScheduled();
    }
}

void WebSocketConnection::unscheduleFlush()
{
    if (!m_flushScheduled) {
        return;
    }
    std::vector<WebSocketConnection*>& connections = flushQueue().connections;
    connections.erase(std::find(connections.begin(), connections.end(), this));
    m_flushScheduled = false;
}

void WebSocketConnection::flush()
{
    if (bytesToWrite() > 0 && m_state != State::Closed) {
        handleWritable();
    }
}

void WebSocketConnection::handleWritable()
{
    while (bytesToWrite() > 0 && !m_writeFailed) {
        const ssize_t sent = ::send(static_cast<int>(m_descriptor),
            m_output.constData() + m_outputSent, static_cast<size_t>(bytesToWrite()), MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR) {
            continue;
        }
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (sent < 0) {
            m_writeFailed = true;
            break;
        }
        m_outputSent += sent;
    }

    if (m_writeFailed || bytesToWrite() == 0) {
        // Frees the block: an idle connection keeps no output buffer.
        m_output = QByteArray();
        m_outputSent = 0;
        setWriteNotifierEnabled(false);
        if (m_shutdownWhenWritten && !m_writeFailed) {
            shutdownWriting();
        }
        return;
    }
    if (m_outputSent >= CompactOutputBytes) {
        m_output.remove(0, m_outputSent);
        m_outputSent = 0;
    }
    // The rest waits until the kernel has room.
    setWriteNotifierEnabled(true);
}

void WebSocketConnection::setWriteNotifierEnabled(bool enabled)
{
    if (!m_writeNotifier) {
        if (!enabled || m_descriptor < 0) {
            return;
        }
        m_writeNotifier
            = std::make_unique<ConnectionNotifier>(m_descriptor, QSocketNotifier::Write, this);
        return;
    }
    if (m_writeNotifier->isEnabled() != enabled) {
        m_writeNotifier->setEnabled(enabled);
    }
}

// Ending -------------------------------------------------------------------------------------

void WebSocketConnection::abort() { closeDescriptor(); }

void WebSocketConnection::finish()
{
    if (m_state == State::Closed) {
        return;
    }
    // An echoed close frame goes out before the descriptor closes.
    flush();
    closeDescriptor();
    m_handler->disconnected();
}

void WebSocketConnection::closeDescriptor()
{
    m_state = State::Closed;
    unscheduleFlush();
    // The notifiers go first: the dispatcher must not watch a descriptor number that the next
    // accepted connection may reuse. The read notifier may be the caller (through
    // handleReadable), and is then deleted once its event is over.
    if (m_reading && m_readNotifier) {
        m_readNotifier->setEnabled(false);
        m_readNotifier.release()->deleteLater();
    }
    m_readNotifier.reset();
    m_writeNotifier.reset();
    m_output = QByteArray();
    m_outputSent = 0;
    m_handshake = QByteArray();
    if (m_descriptor >= 0) {
        ::close(static_cast<int>(m_descriptor));
        m_descriptor = -1;
    }
}

} // namespace ferry::server
