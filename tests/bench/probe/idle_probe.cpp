// idle_probe: the server's resident memory per idle authenticated connection. Registers one
// user (or takes a session token), opens `connections` WebSockets, authenticates each with the
// session token, reads the server's VmRSS from /proc before and after, prints the
// difference per connection, then holds the connections `holdSeconds` (answering pings) and
// exits. With `rtt` round trips asked for, the last connection then makes that many requests one
// after the other (RefreshSession: no disk, a signature) and the percentiles of their round
// trips are printed: the cost of one active user while the others idle. Each process may hold
// at most 20,000 descriptors: run several for more (the first
// prints the session token the others can be given). All connect from 127.0.0.1, which holds
// about 28,000 ephemeral ports: enough for what one server process can hold.
//
//   idle_probe ws://127.0.0.1:PORT SERVER_PID CONNECTIONS [hold seconds 0] [rtt 0] [token hex]

#include "core/EpollEventDispatcher.h"
#include "core/FrameCodec.h"
#include "ferry.pb.h"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QTimer>
#include <QWebSocket>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

using namespace ferry;

namespace {

qint64 residentKiB(qint64 pid)
{
    QFile status(u"/proc/"_qs + QString::number(pid) + u"/status"_qs);
    if (!status.open(QIODevice::ReadOnly)) {
        return -1;
    }
    for (const QByteArray& line : status.readAll().split('\n')) {
        if (line.startsWith("VmRSS:")) {
            return line.mid(6).trimmed().split(' ').first().toLongLong();
        }
    }
    return -1;
}

} // namespace

int main(int argc, char* argv[])
{
    // The probe's own event loop must not be what grows with the number of connections.
    QCoreApplication::setEventDispatcher(new EpollEventDispatcher);
    QCoreApplication app(argc, argv);
    const QStringList args = app.arguments();
    if (args.size() < 4) {
        std::fprintf(
            stderr, "usage: idle_probe URL SERVER_PID CONNECTIONS [hold s] [rtt n] [token hex]\n");
        return 2;
    }
    const QUrl url(args[1]);
    const qint64 serverPid = args[2].toLongLong();
    const int wanted = args[3].toInt();
    const int holdSeconds = args.size() > 4 ? args[4].toInt() : 0;
    const int roundTrips = args.size() > 5 ? args[5].toInt() : 0;
    QByteArray sessionToken
        = args.size() > 6 ? QByteArray::fromHex(args[6].toLatin1()) : QByteArray();
    std::vector<qint64> roundTripNs;
    QElapsedTimer roundTripClock;

    std::vector<std::unique_ptr<QWebSocket>> sockets;
    int authenticated = 0;
    int failed = 0;
    qint64 rssBeforeKiB = 0;
    QElapsedTimer clock;

    auto finish = [&] {
        const qint64 rssAfterKiB = residentKiB(serverPid);
        std::printf("%d connections authenticated in %.2f s (%d failed); server RSS "
                    "%lld -> %lld KiB: %.1f KiB per connection\n",
            authenticated, double(clock.elapsed()) / 1000.0, failed,
            static_cast<long long>(rssBeforeKiB), static_cast<long long>(rssAfterKiB),
            double(rssAfterKiB - rssBeforeKiB) / std::max(authenticated, 1));
        std::fflush(stdout);
        if (roundTrips > 0 && !sockets.empty()) {
            roundTripClock.start();
            v1::Envelope request;
            request.set_request_id(3);
            request.mutable_refresh_session();
            sockets.back()->sendBinaryMessage(encodeFrame(request));
        } else {
            QTimer::singleShot(holdSeconds * 1000, &app, &QCoreApplication::quit);
        }
    };
    auto roundTripDone = [&](QWebSocket* socket) {
        roundTripNs.push_back(roundTripClock.nsecsElapsed());
        if (int(roundTripNs.size()) < roundTrips) {
            roundTripClock.start();
            v1::Envelope request;
            request.set_request_id(3);
            request.mutable_refresh_session();
            socket->sendBinaryMessage(encodeFrame(request));
            return;
        }
        std::sort(roundTripNs.begin(), roundTripNs.end());
        auto at = [&](double q) {
            return double(roundTripNs[size_t(q * double(roundTripNs.size() - 1))]) / 1000.0;
        };
        std::printf("round trip with %d idle connections: p50 %.0f us, p90 %.0f us, p99 %.0f us"
                    " (%d requests)\n",
            authenticated - 1, at(0.5), at(0.9), at(0.99), roundTrips);
        std::fflush(stdout);
        QTimer::singleShot(holdSeconds * 1000, &app, &QCoreApplication::quit);
    };

    auto openAll = [&] {
        rssBeforeKiB = residentKiB(serverPid);
        clock.start();
        for (int i = 0; i < wanted; ++i) {
            auto socket = std::make_unique<QWebSocket>();
            QWebSocket* raw = socket.get();
            QObject::connect(raw, &QWebSocket::connected, raw, [raw] {
                v1::Envelope hello;
                hello.set_request_id(1);
                hello.mutable_hello()->set_protocol_version(ProtocolVersion);
                raw->sendBinaryMessage(encodeFrame(hello));
            });
            QObject::connect(
                raw, &QWebSocket::binaryMessageReceived, raw, [&, raw](const QByteArray& frame) {
                    v1::Envelope envelope;
                    if (!decodeFrame(frame, &envelope)) {
                        return;
                    }
                    if (envelope.has_welcome()) {
                        v1::Envelope request;
                        request.set_request_id(2);
                        request.mutable_authenticate()->set_session_token(
                            sessionToken.toStdString());
                        raw->sendBinaryMessage(encodeFrame(request));
                    } else if (envelope.has_session_token()) {
                        roundTripDone(raw);
                    } else if (envelope.has_authenticated() || envelope.has_error()) {
                        (envelope.has_error() ? failed : authenticated) += 1;
                        if (authenticated + failed == wanted) {
                            finish();
                        }
                    }
                });
            QObject::connect(raw, &QWebSocket::disconnected, raw, [&] {
                if (++failed + authenticated == wanted) {
                    finish();
                }
            });
            raw->open(url);
            sockets.push_back(std::move(socket));
        }
    };

    if (sessionToken.isEmpty()) {
        // One registration gives the session token every connection then uses.
        auto* registrar = new QWebSocket(QString(), QWebSocketProtocol::VersionLatest, &app);
        QObject::connect(registrar, &QWebSocket::connected, registrar, [registrar] {
            v1::Envelope hello;
            hello.set_request_id(1);
            hello.mutable_hello()->set_protocol_version(ProtocolVersion);
            registrar->sendBinaryMessage(encodeFrame(hello));
        });
        QObject::connect(registrar, &QWebSocket::binaryMessageReceived, registrar,
            [&, registrar](const QByteArray& frame) {
                v1::Envelope envelope;
                decodeFrame(frame, &envelope);
                if (envelope.has_welcome()) {
                    v1::Envelope request;
                    request.set_request_id(2);
                    const QByteArray name
                        = "idle" + QByteArray::number(QCoreApplication::applicationPid());
                    request.mutable_register_()->set_user_name(name.toStdString());
                    request.mutable_register_()->set_password("a-good-password");
                    registrar->sendBinaryMessage(encodeFrame(request));
                } else if (envelope.has_authenticated()) {
                    sessionToken
                        = QByteArray::fromStdString(envelope.authenticated().session_token());
                    std::printf("session token %s\n", sessionToken.toHex().constData());
                    registrar->close();
                    openAll();
                } else {
                    std::fprintf(stderr, "idle_probe: could not register\n");
                    QCoreApplication::exit(1);
                }
            });
        registrar->open(url);
    } else {
        openAll();
    }
    QTimer::singleShot(600'000, &app, [] { QCoreApplication::exit(3); });
    return app.exec();
}
