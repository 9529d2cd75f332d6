#include "LoadWorker.h"

#include "WebSocketFrames.h"
#include "ferry.pb.h"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sstream>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ferry::bench {

namespace {

    constexpr int StdinTag = -1;
    constexpr size_t MaxFramePayload = 16 * 1024 * 1024;
    constexpr int64_t Second = 1'000'000'000;
    const char* const Password = "ferry-load-password";

    int64_t nowNs()
    {
        timespec ts {};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return int64_t(ts.tv_sec) * Second + ts.tv_nsec;
    }

    std::string userName(const std::string& prefix, uint32_t globalIndex)
    {
        return prefix + '-' + std::to_string(globalIndex);
    }

    std::string directConversation(const std::string& a, const std::string& b)
    {
        return "direct:" + std::min(a, b) + ':' + std::max(a, b);
    }

    uint64_t pendingKey(int index, uint64_t requestId)
    {
        return (uint64_t(uint32_t(index)) << 32) | (requestId & 0xFFFFFFFFULL);
    }

    void setFlag(std::vector<uint8_t>& flags, uint32_t at, bool* wasSet)
    {
        if (flags.size() <= at) {
            flags.resize(std::max<size_t>(at + 1, flags.size() * 2), 0);
        }
        *wasSet = flags[at] != 0;
        flags[at] = 1;
    }

} // namespace

LoadWorker::LoadWorker(WorkerOptions options)
    : m_options(std::move(options))
    , m_inEnvelope(std::make_unique<v1::Envelope>())
    , m_readBuffer(256 * 1024, '\0')
{
    m_random ^= uint64_t(getpid()) << 17 ^ uint64_t(nowNs());
}

LoadWorker::~LoadWorker()
{
    for (Connection& c : m_connections) {
        if (c.fd >= 0) {
            ::close(c.fd);
        }
    }
    if (m_epoll >= 0) {
        ::close(m_epoll);
    }
}

int LoadWorker::exec()
{
    m_epoll = epoll_create1(EPOLL_CLOEXEC);
    if (m_epoll < 0) {
        std::perror("ferry-load worker: epoll_create1");
        return 1;
    }
    epoll_event stdinEvent {};
    stdinEvent.events = EPOLLIN;
    stdinEvent.data.u64 = uint64_t(uint32_t(StdinTag));
    epoll_ctl(m_epoll, EPOLL_CTL_ADD, STDIN_FILENO, &stdinEvent);

    std::vector<epoll_event> events(1024);
    while (!m_quit) {
        const int timeoutMs
            = (m_task == Task::Run || m_task == Task::Drain || m_task == Task::Touch) ? 1 : 20;
        const int n = epoll_wait(m_epoll, events.data(), int(events.size()), timeoutMs);
        if (n < 0 && errno != EINTR) {
            std::perror("ferry-load worker: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            const auto tag = static_cast<int>(uint32_t(events[i].data.u64));
            if (tag == StdinTag) {
                readCommands();
            } else {
                handleEvent(tag, events[i].events);
            }
        }
        openConnections();
        const int64_t now = nowNs();
        if (m_task == Task::Run) {
            scheduleSends(now);
        }
        checkTask(now);
    }

    // A close frame on each link, so the server counts an orderly goodbye and not a failure.
    for (size_t i = 0; i < m_connections.size(); ++i) {
        Connection& c = m_connections[i];
        if (c.state == State::Live) {
            const char code[2] = { char(1000 >> 8), char(1000 & 0xFF) };
            sendFrame(c, int(i), ws::Close, std::string_view(code, 2));
        }
    }
    return 0;
}

// ---- Connections -------------------------------------------------------------------------

void LoadWorker::openConnections()
{
    while (m_connections.size() < m_target && m_settingUp < m_options.setupParallel) {
        const int index = int(m_connections.size());
        m_connections.emplace_back();
        Connection& c = m_connections.back();
        c.globalIndex = m_options.firstIndex + uint32_t(index);
        c.name = userName(m_options.prefix, c.globalIndex);
        c.peer = index ^ 1;
        c.directConversation
            = directConversation(c.name, userName(m_options.prefix, c.globalIndex ^ 1U));
        ++m_settingUp;
        startConnection(index);
    }
}

void LoadWorker::startConnection(int index)
{
    Connection& c = m_connections[size_t(index)];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
        std::perror("ferry-load worker: socket");
        fail(c, index, false);
        return;
    }
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Each source address has its own ~28k ephemeral ports; choosing the port at connect() and
    // not at bind() lets the kernel reuse a port towards another destination.
    setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);

    sockaddr_in source {};
    source.sin_family = AF_INET;
    const int sources = std::max(1, m_options.sourceAddresses);
    source.sin_addr.s_addr
        = htonl((127U << 24) | uint32_t(2 + int(c.globalIndex % unsigned(sources))));
    if (::bind(c.fd, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
        std::perror("ferry-load worker: bind");
        fail(c, index, false);
        return;
    }

    sockaddr_in server {};
    server.sin_family = AF_INET;
    server.sin_port = htons(m_options.port);
    inet_pton(AF_INET, m_options.host.c_str(), &server.sin_addr);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0
        && errno != EINPROGRESS) {
        std::perror("ferry-load worker: connect");
        fail(c, index, false);
        return;
    }
    epoll_event event {};
    event.events = EPOLLIN | EPOLLOUT;
    event.data.u64 = uint32_t(index);
    epoll_ctl(m_epoll, EPOLL_CTL_ADD, c.fd, &event);
    c.wantWrite = true;
}

void LoadWorker::handleEvent(int index, uint32_t events)
{
    Connection& c = m_connections[size_t(index)];
    if (c.state == State::Closed) {
        return;
    }
    if (events & EPOLLOUT) {
        handleWritable(c, index);
    }
    if (c.state != State::Closed && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        handleReadable(c, index);
    }
}

void LoadWorker::handleWritable(Connection& c, int index)
{
    if (c.state == State::Connecting) {
        int error = 0;
        socklen_t size = sizeof error;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error != 0) {
            fail(c, index, false);
            return;
        }
        c.state = State::Upgrading;
        c.out += ws::upgradeRequest(m_options.host + ':' + std::to_string(m_options.port));
    }
    flush(c, index);
}

void LoadWorker::handleReadable(Connection& c, int index)
{
    // Bounded per wake-up, so one busy connection cannot starve the others.
    for (int round = 0; round < 4; ++round) {
        const ssize_t n = ::read(c.fd, m_readBuffer.data(), m_readBuffer.size());
        if (n > 0) {
            c.in.append(m_readBuffer.data(), size_t(n));
            if (size_t(n) < m_readBuffer.size()) {
                break;
            }
        } else if (n == 0) {
            fail(c, index, true);
            return;
        } else if (errno == EAGAIN || errno == EINTR) {
            break;
        } else {
            fail(c, index, true);
            return;
        }
    }

    if (c.state == State::Upgrading) {
        const size_t end = c.in.find("\r\n\r\n");
        if (end == std::string::npos) {
            return;
        }
        if (c.in.compare(0, 12, "HTTP/1.1 101") != 0) {
            fail(c, index, false);
            return;
        }
        c.in.erase(0, end + 4);
        if (m_options.echo) {
            becomeLive(c);
        } else {
            v1::Envelope hello;
            hello.set_request_id(c.nextRequestId++);
            hello.mutable_hello()->set_protocol_version(1);
            hello.mutable_hello()->set_client_name("ferry-load");
            c.state = State::AwaitingWelcome;
            sendEnvelope(c, index, hello);
        }
    }
    parseFrames(c, index);
}

void LoadWorker::parseFrames(Connection& c, int index)
{
    size_t at = 0;
    while (c.state != State::Closed) {
        const std::string_view rest(c.in.data() + at, c.in.size() - at);
        const ws::Frame frame = ws::parseFrame(rest, MaxFramePayload);
        if (frame.bad) {
            fail(c, index, true);
            return;
        }
        if (!frame.complete) {
            break;
        }
        char* payload = c.in.data() + at + frame.headerSize;
        if (frame.masked) {
            ws::unmask(payload, frame.payloadSize, frame.mask);
        }
        const std::string_view data(payload, frame.payloadSize);
        at += frame.totalSize();

        switch (frame.opcode) {
        case ws::Ping:
            ++m_pingsAnswered;
            sendFrame(c, index, ws::Pong, data);
            break;
        case ws::Pong:
            break;
        case ws::Close: {
            const int code
                = data.size() >= 2 ? (int(uint8_t(data[0])) << 8) | int(uint8_t(data[1])) : 1005;
            ++m_closeCodes[code];
            sendFrame(c, index, ws::Close, data.substr(0, std::min<size_t>(2, data.size())));
            fail(c, index, true);
            return;
        }
        case ws::Continuation:
        case ws::Binary:
        case ws::Text:
            if (frame.fin && c.message.empty()) {
                handleMessage(c, index, data);
            } else {
                c.message.append(data);
                if (frame.fin) {
                    const std::string whole = std::move(c.message);
                    c.message.clear();
                    handleMessage(c, index, whole);
                }
            }
            break;
        }
    }
    if (c.state != State::Closed) {
        c.in.erase(0, at);
        if (c.in.capacity() > 64 * 1024 && c.in.size() < 4096) {
            c.in.shrink_to_fit(); // a burst passed; an idle connection keeps no big buffer
        }
    }
}

void LoadWorker::handleMessage(Connection& c, int index, std::string_view payload)
{
    v1::Envelope& envelope = *m_inEnvelope;
    if (!envelope.ParseFromArray(payload.data(), int(payload.size()))) {
        ++m_errors;
        return;
    }
    handleEnvelope(c, index, envelope);
}

void LoadWorker::handleEnvelope(Connection& c, int index, const v1::Envelope& envelope)
{
    const int64_t now = nowNs();
    switch (envelope.payload_case()) {
    case v1::Envelope::kWelcome: {
        v1::Envelope request;
        c.authRequestId = c.nextRequestId++;
        request.set_request_id(c.authRequestId);
        v1::Register* registration = request.mutable_register_();
        registration->set_user_name(c.name);
        registration->set_password(Password);
        registration->set_device_name("ferry-load");
        c.state = State::AwaitingAuth;
        sendEnvelope(c, index, request);
        break;
    }
    case v1::Envelope::kAuthenticated: {
        v1::Envelope request;
        c.syncRequestId = c.nextRequestId++;
        request.set_request_id(c.syncRequestId);
        request.mutable_sync()->set_after_offset(envelope.authenticated().last_offset());
        c.state = State::AwaitingSync;
        sendEnvelope(c, index, request);
        break;
    }
    case v1::Envelope::kEvents: {
        const v1::EventBatch& batch = envelope.events();
        for (const v1::Event& event : batch.events()) {
            if (event.has_message()) {
                handleDelivery(c, event.message().body(), now);
            }
        }
        if (c.state == State::AwaitingSync && envelope.request_id() == c.syncRequestId) {
            if (batch.caught_up()) {
                --m_settingUp;
                becomeLive(c);
            } else {
                v1::Envelope request;
                c.syncRequestId = c.nextRequestId++;
                request.set_request_id(c.syncRequestId);
                request.mutable_sync()->set_after_offset(batch.last_offset());
                sendEnvelope(c, index, request);
            }
        }
        break;
    }
    case v1::Envelope::kSend: // the echo server returns what it got
    case v1::Envelope::kSendAck: {
        const auto found = m_pending.find(pendingKey(index, envelope.request_id()));
        if (found == m_pending.end()) {
            break;
        }
        const Pending pending = found->second;
        m_pending.erase(found);
        ++m_acked;
        if (now <= m_runEndNs) {
            ++m_ackedInWindow;
        }
        m_ackLatency.record(now - pending.scheduledNs);
        bool wasSet = false;
        setFlag(c.acked, pending.counter, &wasSet);
        if (m_options.echo) {
            ++m_delivered;
            if (now <= m_runEndNs) {
                ++m_deliveredInWindow;
            }
            m_deliverLatency.record(now - pending.scheduledNs);
            m_rttDeliverySeen = true;
        }
        if (index == 0) {
            m_rttAckSeen = true;
        }
        break;
    }
    case v1::Envelope::kSessionToken:
        if (envelope.request_id() == c.probeRequestId) {
            ++m_probeAnswered;
        }
        break;
    case v1::Envelope::kConversationInfo:
        if (index == 0 && envelope.request_id() == m_groupRequestId) {
            m_groupState = 1;
        }
        break;
    case v1::Envelope::kError: {
        const v1::Error& error = envelope.error();
        if (c.state == State::AwaitingAuth) {
            if (error.code() == v1::NAME_TAKEN && !c.loginTried) {
                // A data folder from an earlier run: sign in as a new device instead.
                c.loginTried = true;
                v1::Envelope request;
                c.authRequestId = c.nextRequestId++;
                request.set_request_id(c.authRequestId);
                v1::Login* login = request.mutable_login();
                login->set_user_name(c.name);
                login->set_password(Password);
                login->set_device_name("ferry-load");
                sendEnvelope(c, index, request);
            } else {
                std::fprintf(stderr, "ferry-load worker: %s could not sign in: %s\n",
                    c.name.c_str(), error.message().c_str());
                fail(c, index, false);
            }
            break;
        }
        ++m_errors;
        ++m_errorCodes[int(error.code())];
        m_pending.erase(pendingKey(index, envelope.request_id()));
        if (envelope.request_id() == c.probeRequestId) {
            ++m_probeRefused;
        }
        if (index == 0 && envelope.request_id() == m_groupRequestId) {
            m_groupState = -1;
        }
        break;
    }
    default:
        break; // presence, typing, welcome of other kinds: nothing to measure
    }
}

void LoadWorker::becomeLive(Connection& c)
{
    if (m_options.echo) {
        --m_settingUp;
    }
    c.state = State::Live;
}

void LoadWorker::fail(Connection& c, int index, bool unexpected)
{
    const bool settingUp = c.state != State::Live && c.state != State::Closed;
    if (c.state == State::Closed) {
        return;
    }
    if (settingUp) {
        --m_settingUp;
        ++m_failed;
    } else if (unexpected) {
        ++m_unexpectedCloses;
    }
    c.state = State::Closed;
    if (c.fd >= 0) {
        epoll_ctl(m_epoll, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
    }
    c.in.clear();
    c.in.shrink_to_fit();
    c.out.clear();
    c.out.shrink_to_fit();
    (void)index;
}

void LoadWorker::sendEnvelope(Connection& c, int index, const v1::Envelope& envelope)
{
    m_scratch.clear();
    envelope.AppendToString(&m_scratch);
    sendFrame(c, index, ws::Binary, m_scratch);
}

void LoadWorker::sendFrame(Connection& c, int index, int opcode, std::string_view payload)
{
    m_random ^= m_random << 13;
    m_random ^= m_random >> 7;
    m_random ^= m_random << 17;
    ws::appendClientFrame(c.out, ws::Opcode(opcode), payload, uint32_t(m_random));
    flush(c, index);
}

void LoadWorker::flush(Connection& c, int index)
{
    if (c.state == State::Connecting || c.fd < 0) {
        return;
    }
    size_t written = 0;
    while (written < c.out.size()) {
        const ssize_t n
            = ::send(c.fd, c.out.data() + written, c.out.size() - written, MSG_NOSIGNAL);
        if (n > 0) {
            written += size_t(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    c.out.erase(0, written);
    const bool wantWrite = !c.out.empty();
    if (wantWrite != c.wantWrite) {
        epoll_event event {};
        event.events = EPOLLIN | (wantWrite ? uint32_t(EPOLLOUT) : 0U);
        event.data.u64 = uint32_t(index);
        epoll_ctl(m_epoll, EPOLL_CTL_MOD, c.fd, &event);
        c.wantWrite = wantWrite;
    }
}

// ---- Messages ----------------------------------------------------------------------------

void LoadWorker::sendMessage(int index, int64_t scheduledNs)
{
    Connection& c = m_connections[size_t(index)];
    const uint32_t counter = c.sentCounter++;

    // Body: when it was meant to be sent, by whom, which one; the rest is filler. Latency is
    // measured from the intended time, so a stalled sender cannot hide a stall (coordinated
    // omission).
    std::string body(size_t(std::max(16, m_options.bodyBytes)), 'x');
    std::memcpy(body.data(), &scheduledNs, 8);
    std::memcpy(body.data() + 8, &c.globalIndex, 4);
    std::memcpy(body.data() + 12, &counter, 4);

    char id[16];
    const auto ms = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch())
                                 .count());
    for (int i = 0; i < 6; ++i) {
        id[i] = char((ms >> (40 - 8 * i)) & 0xFF);
    }
    for (int i = 6; i < 16; i += 2) {
        m_random ^= m_random << 13;
        m_random ^= m_random >> 7;
        m_random ^= m_random << 17;
        id[i] = char(m_random & 0xFF);
        id[i + 1] = char((m_random >> 8) & 0xFF);
    }
    id[6] = char(0x70 | (id[6] & 0x0F)); // UUIDv7 version and variant bits
    id[8] = char(0x80 | (id[8] & 0x3F));

    v1::Envelope envelope;
    const uint64_t requestId = c.nextRequestId++;
    envelope.set_request_id(requestId);
    v1::SendMessage* send = envelope.mutable_send();
    send->set_message_id(id, 16);
    send->set_conversation_id(m_mode == "group" ? m_groupConversation : c.directConversation);
    send->set_body(body);
    m_pending.emplace(pendingKey(index, requestId), Pending { scheduledNs, counter });
    ++m_sent;
    sendEnvelope(c, index, envelope);
}

void LoadWorker::handleDelivery(Connection& c, std::string_view body, int64_t nowNs)
{
    if (body.size() < 16) {
        return;
    }
    int64_t scheduledNs = 0;
    uint32_t sender = 0;
    uint32_t counter = 0;
    std::memcpy(&scheduledNs, body.data(), 8);
    std::memcpy(&sender, body.data() + 8, 4);
    std::memcpy(&counter, body.data() + 12, 4);
    if (sender == c.globalIndex) {
        return; // the sender's own copy in its log: not a delivery to someone else
    }
    ++m_delivered;
    if (nowNs <= m_runEndNs) {
        ++m_deliveredInWindow;
    }
    m_deliverLatency.record(nowNs - scheduledNs);
    if (m_mode == "direct" || m_task == Task::Rtt) {
        bool wasSet = false;
        setFlag(c.fromPeer, counter, &wasSet);
        if (wasSet) {
            ++m_duplicates;
        }
    }
    if (m_task == Task::Rtt && &c == &m_connections[1]) {
        m_rttDeliverySeen = true;
    }
}

void LoadWorker::scheduleSends(int64_t now)
{
    if (now >= m_runEndNs) {
        m_task = Task::Drain;
        m_taskDeadlineNs = m_runEndNs + 20 * Second;
        return;
    }
    if (m_rate <= 0) {
        return;
    }
    // Message k is scheduled at k / rate, so at time t messages 0 to floor(t * rate) are due.
    // Counting only floor(t * rate) of them sent each one a whole interval after its scheduled
    // time, which the latency then included: 1 s per message at a worker's 1 message/s.
    const auto due = uint64_t(double(now - m_runStartNs) * m_rate / double(Second)) + 1;
    // Bounded per turn, so replies keep being read even when the schedule is far behind.
    for (int sentThisTurn = 0; m_scheduled < due && sentThisTurn < 20'000; ++sentThisTurn) {
        const int64_t scheduledNs
            = m_runStartNs + int64_t(double(m_scheduled) * double(Second) / m_rate);
        ++m_scheduled;
        if (m_pending.size() >= m_options.maxOutstanding) {
            ++m_skipped;
            continue;
        }
        // The next live sender, round robin; in direct mode only one whose partner is live.
        int chosen = -1;
        for (size_t tries = 0; tries < m_connections.size(); ++tries) {
            const size_t candidate = m_nextSender++ % m_connections.size();
            const Connection& c = m_connections[candidate];
            if (c.state != State::Live) {
                continue;
            }
            if (m_mode == "direct"
                && (size_t(c.peer) >= m_connections.size()
                    || m_connections[size_t(c.peer)].state != State::Live)) {
                continue;
            }
            chosen = int(candidate);
            break;
        }
        if (chosen < 0) {
            ++m_skipped;
            continue;
        }
        sendMessage(chosen, scheduledNs);
    }
}

bool LoadWorker::drained() const
{
    if (!m_pending.empty()) {
        return false;
    }
    if (m_mode != "direct") {
        return true;
    }
    for (size_t i = 0; i < m_connections.size(); ++i) {
        const Connection& c = m_connections[i];
        if (size_t(c.peer) >= m_connections.size() || c.state != State::Live) {
            continue;
        }
        const Connection& peer = m_connections[size_t(c.peer)];
        for (size_t k = 0; k < peer.acked.size(); ++k) {
            if (peer.acked[k] && (k >= c.fromPeer.size() || !c.fromPeer[k])) {
                return false;
            }
        }
    }
    return true;
}

// ---- Commands ----------------------------------------------------------------------------

void LoadWorker::readCommands()
{
    char buffer[4096];
    const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n <= 0) {
        m_quit = true; // the coordinator is gone: nothing should outlive it
        return;
    }
    m_stdinBuffer.append(buffer, size_t(n));
    size_t newline;
    while ((newline = m_stdinBuffer.find('\n')) != std::string::npos) {
        const std::string line = m_stdinBuffer.substr(0, newline);
        m_stdinBuffer.erase(0, newline + 1);
        handleCommand(line);
    }
}

void LoadWorker::resetCounters()
{
    m_pending.clear();
    m_sent = m_skipped = m_acked = m_ackedInWindow = m_delivered = m_deliveredInWindow = 0;
    m_duplicates = m_errors = 0;
    m_errorCodes.clear();
    m_ackLatency = Histogram();
    m_deliverLatency = Histogram();
    m_scheduled = 0;
    for (Connection& c : m_connections) {
        c.acked.clear();
        c.fromPeer.clear();
        c.sentCounter = 0;
    }
}

void LoadWorker::handleCommand(const std::string& line)
{
    std::istringstream words(line);
    std::string command;
    words >> command;
    const int64_t now = nowNs();

    if (command == "quit") {
        m_quit = true;
    } else if (command == "connect") {
        size_t target = 0;
        words >> target;
        m_target = std::max(m_target, target);
        m_connectStartNs = now;
        m_task = Task::Connect;
        m_taskDeadlineNs = now + 300 * Second;
    } else if (command == "run") {
        double seconds = 0;
        words >> m_mode >> m_rate >> seconds >> m_groupConversation;
        if (m_options.echo) {
            m_mode = "echo";
        }
        resetCounters();
        m_runStartNs = now;
        m_runEndNs = now + int64_t(seconds * double(Second));
        m_task = Task::Run;
    } else if (command == "touch") {
        // Every connection sends one message to its partner, with at most `window` unanswered
        // at a time: a closed loop that goes as fast as the server allows and no faster.
        m_touchWindow = 16;
        words >> m_touchWindow;
        m_mode = "direct";
        resetCounters();
        m_nextTouch = 0;
        m_runStartNs = now;
        m_runEndNs = now + 3600 * Second;
        m_task = Task::Touch;
        m_taskDeadlineNs = now + 600 * Second;
    } else if (command == "rtt") {
        words >> m_rttRemaining;
        m_mode = "rtt";
        resetCounters();
        m_runStartNs = now;
        m_runEndNs = now + 60 * Second;
        m_task = Task::Rtt;
        m_taskDeadlineNs = m_runEndNs;
        m_rttAckSeen = m_rttDeliverySeen = true; // so that the first probe goes out at once
        if (m_connections.size() < 2 || m_connections[0].state != State::Live
            || m_connections[1].state != State::Live) {
            m_rttRemaining = 0;
        }
    } else if (command == "creategroup") {
        std::string conversation;
        uint32_t members = 0;
        words >> conversation >> members;
        m_groupState = 0;
        m_task = Task::CreateGroup;
        m_taskDeadlineNs = now + 60 * Second;
        if (m_connections.empty() || m_connections[0].state != State::Live) {
            m_groupState = -1;
            return;
        }
        v1::Envelope request;
        m_groupRequestId = m_connections[0].nextRequestId++;
        request.set_request_id(m_groupRequestId);
        v1::CreateGroup* group = request.mutable_create_group();
        group->set_conversation_id(conversation);
        group->set_title("ferry-load");
        for (uint32_t i = 1; i < members; ++i) {
            group->add_members(userName(m_options.prefix, m_connections[0].globalIndex + i));
        }
        sendEnvelope(m_connections[0], 0, request);
    } else if (command == "probe") {
        m_probeAnswered = m_probeRefused = 0;
        m_task = Task::Probe;
        m_taskDeadlineNs = now + 60 * Second;
        for (size_t i = 0; i < m_connections.size(); ++i) {
            Connection& c = m_connections[i];
            if (c.state != State::Live) {
                continue;
            }
            v1::Envelope request;
            c.probeRequestId = c.nextRequestId++;
            request.set_request_id(c.probeRequestId);
            request.mutable_refresh_session();
            sendEnvelope(c, int(i), request);
        }
    } else {
        reply("error unknown command: " + line);
    }
}

void LoadWorker::checkTask(int64_t now)
{
    size_t live = 0;
    switch (m_task) {
    case Task::None:
    case Task::Run:
        return;
    case Task::Connect:
        if ((m_connections.size() >= m_target && m_settingUp == 0) || now > m_taskDeadlineNs) {
            for (const Connection& c : m_connections) {
                live += c.state == State::Live ? 1 : 0;
            }
            reply("connected " + std::to_string(live) + ' ' + std::to_string(m_failed) + ' '
                + std::to_string(double(now - m_connectStartNs) / double(Second)));
            m_task = Task::None;
        }
        return;
    case Task::Touch:
        while (m_nextTouch < m_connections.size() && m_pending.size() < m_touchWindow) {
            const size_t index = m_nextTouch++;
            const Connection& c = m_connections[index];
            if (c.state == State::Live && size_t(c.peer) < m_connections.size()
                && m_connections[size_t(c.peer)].state == State::Live) {
                ++m_scheduled;
                sendMessage(int(index), now);
            }
        }
        if ((m_nextTouch >= m_connections.size() && drained()) || now > m_taskDeadlineNs) {
            m_runEndNs = now;
            replyRunResult("touch");
            m_task = Task::None;
        }
        return;
    case Task::Drain: {
        if (now - m_lastDrainCheckNs < 20'000'000 && now <= m_taskDeadlineNs) {
            return;
        }
        m_lastDrainCheckNs = now;
        if (drained() || now > m_taskDeadlineNs) {
            replyRunResult("run");
            m_task = Task::None;
        }
        return;
    }
    case Task::Rtt:
        if (m_rttAckSeen && m_rttDeliverySeen) {
            if (m_rttRemaining <= 0 || now > m_taskDeadlineNs) {
                m_runEndNs = now;
                replyRunResult("rtt");
                m_task = Task::None;
                return;
            }
            --m_rttRemaining;
            m_rttAckSeen = m_rttDeliverySeen = false;
            sendMessage(0, nowNs());
        } else if (now > m_taskDeadlineNs) {
            replyRunResult("rtt");
            m_task = Task::None;
        }
        return;
    case Task::CreateGroup:
        if (m_groupState != 0 || now > m_taskDeadlineNs) {
            reply(m_groupState == 1 ? "group ok" : "group failed");
            m_task = Task::None;
        }
        return;
    case Task::Probe:
        for (const Connection& c : m_connections) {
            live += c.state == State::Live ? 1 : 0;
        }
        if (size_t(m_probeAnswered + m_probeRefused) >= live || now > m_taskDeadlineNs) {
            reply("probed " + std::to_string(m_probeAnswered) + ' ' + std::to_string(m_probeRefused)
                + ' ' + std::to_string(live) + ' ' + std::to_string(m_unexpectedCloses) + ' '
                + std::to_string(m_pingsAnswered));
            m_task = Task::None;
        }
        return;
    }
}

void LoadWorker::replyRunResult(const char* kind)
{
    uint64_t missing = 0;
    size_t live = 0;
    for (size_t i = 0; i < m_connections.size(); ++i) {
        const Connection& c = m_connections[i];
        live += c.state == State::Live ? 1 : 0;
        if (m_mode != "direct" || size_t(c.peer) >= m_connections.size()) {
            continue;
        }
        const Connection& peer = m_connections[size_t(c.peer)];
        for (size_t k = 0; k < peer.acked.size(); ++k) {
            if (peer.acked[k] && (k >= c.fromPeer.size() || !c.fromPeer[k])) {
                ++missing;
            }
        }
    }
    std::string errors;
    for (const auto& [code, count] : m_errorCodes) {
        errors += std::to_string(code) + ':' + std::to_string(count) + ',';
    }
    std::string closes;
    for (const auto& [code, count] : m_closeCodes) {
        closes += std::to_string(code) + ':' + std::to_string(count) + ',';
    }
    reply(std::string("result kind=") + kind + " mode=" + m_mode
        + " scheduled=" + std::to_string(m_scheduled) + " sent=" + std::to_string(m_sent)
        + " skipped=" + std::to_string(m_skipped) + " acked=" + std::to_string(m_acked)
        + " acked_window=" + std::to_string(m_ackedInWindow) + " delivered="
        + std::to_string(m_delivered) + " delivered_window=" + std::to_string(m_deliveredInWindow)
        + " duplicates=" + std::to_string(m_duplicates) + " missing=" + std::to_string(missing)
        + " errors=" + std::to_string(m_errors) + " unanswered=" + std::to_string(m_pending.size())
        + " closed=" + std::to_string(m_unexpectedCloses) + " live=" + std::to_string(live)
        + " pings=" + std::to_string(m_pingsAnswered) + " error_codes=" + errors
        + " close_codes=" + closes);
    reply("hist ack " + m_ackLatency.serialize());
    reply("hist deliver " + m_deliverLatency.serialize());
    reply("end");
}

void LoadWorker::reply(const std::string& line)
{
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

} // namespace ferry::bench
