// ferry-echo-bench: the ceiling for Ferry's message path. A WebSocket server on one thread and
// one epoll set that sends every binary frame straight back, with nothing else to do: no
// Protobuf, no database, no authentication. ferry-load drives it with the same frames it sends
// Ferry (`ferry-load direct --echo`), so Ferry's throughput can be given as a fraction of what
// one thread can move through loopback WebSockets on this machine.
//
// Usage: ferry-echo-bench [--listen 127.0.0.1:PORT]; prints "ferry-echo-bench listening on
// ws://127.0.0.1:PORT" once ready; SIGTERM or SIGINT stop it.

#include "../loadgen/WebSocketFrames.h"

#include <QByteArray>
#include <QCryptographicHash>

#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

using namespace ferry::bench;

namespace {

struct Client {
    int fd = -1;
    bool upgraded = false;
    bool wantWrite = false;
    std::string in;
    std::string out;
};

/// Sec-WebSocket-Accept for a client's key (RFC 6455, section 4.2.2).
std::string acceptFor(const std::string& key)
{
    const QByteArray digest = QCryptographicHash::hash(
        QByteArray::fromStdString(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
        QCryptographicHash::Sha1);
    return digest.toBase64().toStdString();
}

std::string headerValue(const std::string& request, const std::string& name)
{
    // Header names are case-insensitive; the load generator and browsers use this spelling.
    const size_t at = request.find(name + ": ");
    if (at == std::string::npos) {
        return {};
    }
    const size_t start = at + name.size() + 2;
    return request.substr(start, request.find("\r\n", start) - start);
}

class EchoServer {
public:
    bool listen(const std::string& host, uint16_t port)
    {
        m_listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const int one = 1;
        setsockopt(m_listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in address {};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        inet_pton(AF_INET, host.c_str(), &address.sin_addr);
        if (::bind(m_listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0
            || ::listen(m_listener, 4096) != 0) {
            std::perror("ferry-echo-bench: listen");
            return false;
        }
        socklen_t size = sizeof address;
        getsockname(m_listener, reinterpret_cast<sockaddr*>(&address), &size);
        m_port = ntohs(address.sin_port);

        m_epoll = epoll_create1(EPOLL_CLOEXEC);
        add(m_listener, ListenerTag, EPOLLIN);

        sigset_t signals;
        sigemptyset(&signals);
        sigaddset(&signals, SIGTERM);
        sigaddset(&signals, SIGINT);
        sigprocmask(SIG_BLOCK, &signals, nullptr);
        m_signals = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
        add(m_signals, SignalTag, EPOLLIN);
        return true;
    }

    uint16_t port() const { return m_port; }

    void exec()
    {
        std::vector<epoll_event> events(1024);
        m_buffer.resize(256 * 1024);
        while (!m_stop) {
            const int n = epoll_wait(m_epoll, events.data(), int(events.size()), 1000);
            for (int i = 0; i < n; ++i) {
                const auto tag = uint32_t(events[i].data.u64);
                if (tag == ListenerTag) {
                    acceptAll();
                } else if (tag == SignalTag) {
                    m_stop = true;
                } else {
                    handle(tag, events[i].events);
                }
            }
        }
    }

private:
    static constexpr uint32_t ListenerTag = 0xFFFFFFFF;
    static constexpr uint32_t SignalTag = 0xFFFFFFFE;

    void add(int fd, uint32_t tag, uint32_t events)
    {
        epoll_event event {};
        event.events = events;
        event.data.u64 = tag;
        epoll_ctl(m_epoll, EPOLL_CTL_ADD, fd, &event);
    }

    void acceptAll()
    {
        while (true) {
            const int fd = accept4(m_listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                return;
            }
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (size_t(fd) >= m_clients.size()) {
                m_clients.resize(size_t(fd) + 1);
            }
            m_clients[size_t(fd)] = Client {};
            m_clients[size_t(fd)].fd = fd;
            add(fd, uint32_t(fd), EPOLLIN);
        }
    }

    void drop(Client& client)
    {
        epoll_ctl(m_epoll, EPOLL_CTL_DEL, client.fd, nullptr);
        ::close(client.fd);
        client = Client {};
    }

    void handle(uint32_t fd, uint32_t events)
    {
        Client& client = m_clients[fd];
        if (client.fd < 0) {
            return;
        }
        if (events & EPOLLOUT) {
            flush(client);
        }
        if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            return;
        }
        const ssize_t n = ::read(client.fd, m_buffer.data(), m_buffer.size());
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            drop(client);
            return;
        }
        if (n < 0) {
            return;
        }
        client.in.append(m_buffer.data(), size_t(n));

        if (!client.upgraded) {
            const size_t end = client.in.find("\r\n\r\n");
            if (end == std::string::npos) {
                return;
            }
            const std::string request = client.in.substr(0, end + 4);
            client.in.erase(0, end + 4);
            const std::string key = headerValue(request, "Sec-WebSocket-Key");
            if (key.empty()) {
                drop(client);
                return;
            }
            client.out += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + acceptFor(key) + "\r\n\r\n";
            client.upgraded = true;
        }

        size_t at = 0;
        while (true) {
            const std::string_view rest(client.in.data() + at, client.in.size() - at);
            const ws::Frame frame = ws::parseFrame(rest, 16 * 1024 * 1024);
            if (frame.bad) {
                drop(client);
                return;
            }
            if (!frame.complete) {
                break;
            }
            char* payload = client.in.data() + at + frame.headerSize;
            if (frame.masked) {
                ws::unmask(payload, frame.payloadSize, frame.mask);
            }
            const std::string_view data(payload, frame.payloadSize);
            at += frame.totalSize();
            if (frame.opcode == ws::Close) {
                ws::appendServerFrame(client.out, ws::Close, data.substr(0, 2));
                flush(client);
                drop(client);
                return;
            }
            ws::appendServerFrame(
                client.out, frame.opcode == ws::Ping ? ws::Pong : frame.opcode, data);
        }
        client.in.erase(0, at);
        flush(client);
    }

    void flush(Client& client)
    {
        size_t written = 0;
        while (written < client.out.size()) {
            const ssize_t n = ::send(
                client.fd, client.out.data() + written, client.out.size() - written, MSG_NOSIGNAL);
            if (n <= 0) {
                break;
            }
            written += size_t(n);
        }
        client.out.erase(0, written);
        const bool wantWrite = !client.out.empty();
        if (wantWrite != client.wantWrite) {
            epoll_event event {};
            event.events = EPOLLIN | (wantWrite ? uint32_t(EPOLLOUT) : 0U);
            event.data.u64 = uint32_t(client.fd);
            epoll_ctl(m_epoll, EPOLL_CTL_MOD, client.fd, &event);
            client.wantWrite = wantWrite;
        }
    }

    int m_listener = -1;
    int m_epoll = -1;
    int m_signals = -1;
    uint16_t m_port = 0;
    bool m_stop = false;
    std::vector<Client> m_clients;
    std::string m_buffer;
};

} // namespace

int main(int argc, char* argv[])
{
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--listen") == 0) {
            const std::string value = argv[++i];
            const size_t colon = value.rfind(':');
            host = value.substr(0, colon);
            port = static_cast<uint16_t>(std::stoi(value.substr(colon + 1)));
        }
    }
    EchoServer server;
    if (!server.listen(host, port)) {
        return 1;
    }
    std::printf(
        "ferry-echo-bench listening on ws://%s:%u\n", host.c_str(), unsigned(server.port()));
    std::fflush(stdout);
    server.exec();
    return 0;
}
