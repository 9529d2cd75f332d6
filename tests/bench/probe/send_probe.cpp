// send_probe: acknowledged messages per second through a running ferry-server. Registers
// `senders` users, then each sends `messages` direct messages to the next user, keeping
// `window` of them in flight, and counts SendAcks. Registration hashes a password per sender
// (tens of milliseconds each, by design), so senders are few and each keeps several in flight. A
// quick probe for the server's send path (docs/design.md, "Group commit"); the load generator in
// tests/bench measures the full picture.
//
//   send_probe ws://127.0.0.1:PORT [senders 50] [messages per sender 200] [window 8]
//
// Start the server with a high request rate, or its limiter is what gets measured:
//   ferry-server --listen 127.0.0.1:0 --data DIR --request-rate 1000000 --request-burst 1000000

#include "core/EpollEventDispatcher.h"
#include "core/FrameCodec.h"
#include "core/MessageId.h"
#include "ferry.pb.h"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QTimer>
#include <QWebSocket>

#include <cstdio>
#include <memory>
#include <vector>

using namespace ferry;

namespace {

std::string toStd(const QByteArray& bytes)
{
    return std::string(bytes.constData(), size_t(bytes.size()));
}

QString directId(const QString& a, const QString& b)
{
    return a < b ? u"direct:" + a + u':' + b : u"direct:" + b + u':' + a;
}

struct Run {
    int senders = 50;
    int messagesEach = 200;
    int window = 8;
    int ready = 0;
    qint64 acked = 0;
    qint64 errors = 0;
    QElapsedTimer clock;
    std::function<void()> allReady;
    std::function<void()> allDone;
};

class Sender {
public:
    Sender(Run& run, const QUrl& url, QString name, QString peer)
        : m_run(run)
        , m_name(std::move(name))
        , m_conversation(directId(m_name, peer))
    {
        QObject::connect(&m_socket, &QWebSocket::connected, &m_socket, [this] {
            v1::Envelope hello;
            hello.set_request_id(1);
            hello.mutable_hello()->set_protocol_version(ProtocolVersion);
            hello.mutable_hello()->set_client_name("send_probe");
            m_socket.sendBinaryMessage(encodeFrame(hello));
        });
        QObject::connect(&m_socket, &QWebSocket::binaryMessageReceived, &m_socket,
            [this](const QByteArray& frame) { handle(frame); });
        m_socket.open(url);
    }

    void start()
    {
        for (int i = 0; i < m_run.window; ++i) {
            sendNext();
        }
    }

private:
    void handle(const QByteArray& frame)
    {
        v1::Envelope envelope;
        if (!decodeFrame(frame, &envelope)) {
            return;
        }
        if (envelope.has_welcome()) {
            v1::Envelope request;
            request.set_request_id(2);
            request.mutable_register_()->set_user_name(m_name.toStdString());
            request.mutable_register_()->set_password("a-good-password");
            request.mutable_register_()->set_device_name("probe");
            m_socket.sendBinaryMessage(encodeFrame(request));
        } else if (envelope.has_authenticated()) {
            if (++m_run.ready == m_run.senders) {
                m_run.allReady();
            }
        } else if (envelope.has_send_ack() || envelope.has_error()) {
            if (envelope.has_error() && ++m_run.errors <= 5) {
                std::fprintf(stderr, "error %d: %s\n", int(envelope.error().code()),
                    envelope.error().message().c_str());
            }
            if (++m_run.acked == qint64(m_run.senders) * m_run.messagesEach) {
                m_run.allDone();
            }
            sendNext();
        }
    }

    void sendNext()
    {
        if (m_sent == m_run.messagesEach) {
            return;
        }
        ++m_sent;
        v1::Envelope envelope;
        envelope.set_request_id(quint64(m_sent) + 100);
        v1::SendMessage* send = envelope.mutable_send();
        send->set_message_id(toStd(MessageId::generate().bytes()));
        send->set_conversation_id(m_conversation.toStdString());
        send->set_body(std::string(100, 'x'));
        m_socket.sendBinaryMessage(encodeFrame(envelope));
    }

    Run& m_run;
    QString m_name;
    QString m_conversation;
    QWebSocket m_socket;
    int m_sent = 0;
};

} // namespace

int main(int argc, char* argv[])
{
    // The probe's own event loop must not be what grows with the number of connections.
    QCoreApplication::setEventDispatcher(new EpollEventDispatcher);
    QCoreApplication app(argc, argv);
    const QStringList args = app.arguments();
    if (args.size() < 2) {
        std::fprintf(stderr, "usage: send_probe ws://HOST:PORT [senders] [messages] [window]\n");
        return 2;
    }
    Run run;
    run.senders = args.size() > 2 ? args[2].toInt() : run.senders;
    run.messagesEach = args.size() > 3 ? args[3].toInt() : run.messagesEach;
    run.window = args.size() > 4 ? args[4].toInt() : run.window;
    if (run.senders < 2) {
        std::fprintf(stderr, "send_probe: at least two senders, each writes to the next\n");
        return 2;
    }

    std::vector<std::unique_ptr<Sender>> senders;
    run.allReady = [&] {
        run.clock.start();
        for (auto& sender : senders) {
            sender->start();
        }
    };
    run.allDone = [&] {
        const double seconds = double(run.clock.nsecsElapsed()) / 1e9;
        std::printf("senders %d, window %d: %lld messages acknowledged in %.3f s = %.0f messages/s"
                    " (%lld errors)\n",
            run.senders, run.window, static_cast<long long>(run.acked), seconds,
            double(run.acked) / seconds, static_cast<long long>(run.errors));
        QCoreApplication::exit(run.errors == 0 ? 0 : 1);
    };

    const QString prefix = u"p" + QString::number(QCoreApplication::applicationPid()) + u"-";
    for (int i = 0; i < run.senders; ++i) {
        senders.push_back(std::make_unique<Sender>(run, QUrl(args[1]), prefix + QString::number(i),
            prefix + QString::number((i + 1) % run.senders)));
    }
    QTimer::singleShot(120'000, &app, [] {
        std::fprintf(stderr, "send_probe: gave up after 120 s\n");
        QCoreApplication::exit(3);
    });
    return app.exec();
}
