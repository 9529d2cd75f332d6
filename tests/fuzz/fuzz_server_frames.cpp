// One frame of arbitrary bytes into the server's real connection handling: ClientConnection's
// binaryMessageReceived (decoding, rate limit, dispatch by state, every request handler) on a real
// ChatServer with a real SqliteServerStore. The connection gets the frame through its transport's
// handler call, exactly as a decoded WebSocket message from the network; its transport sits on
// one end of a socket pair, still in its handshake, so what it sends back is dropped. The
// WebSocket framing in front of it has a target of its own, fuzz_websocket_frames.
//
// The connection is first brought to the state the frame belongs to: Hello is fed to a fresh
// connection, Resume and Authenticate to one that said Hello, everything else to one signed in
// as alice through a session token. Register and Login are fed to the signed-in connection too,
// where they are refused: on a fresh one they would hash a password (tens of milliseconds on a
// thread pool) per input. Their checks are covered by the integration tests instead.
//
// Invariants: no crash and no sanitizer report; alice's event log offset never goes backwards.

#include "core/FrameCodec.h"
#include "core/ProtocolText.h"
#include "server-stub/ChatServer.h"
#include "server-stub/ClientConnection.h"
#include "server-stub/SqliteServerStore.h"
#include "tests/fuzz/FuzzSupport.h"

#include <QCoreApplication>
#include <QDateTime>

#include <sys/socket.h>
#include <unistd.h>

#include "ferry.pb.h"

using namespace ferry;
using namespace ferry::server;

namespace {

struct Fixture {
    std::unique_ptr<ChatServer> server;
    qint64 aliceId = 0;
    quint64 aliceDevice = 0;
    QByteArray aliceSession;
    quint64 lastOffset = 0;
};

/// Gives alice a new device and a session token for it. A frame may remove her device (that is
/// allowed); the next input then signs in with a new one, as a person would.
void signInNewDevice(Fixture* fixture, ServerStore& store, const SessionTokens& tokens)
{
    Result<DeviceRecord> device = store.createDevice(
        fixture->aliceId, QStringLiteral("laptop"), QByteArrayLiteral("token-hash"));
    FERRY_FUZZ_CHECK(device, "alice's device is created");
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    fixture->aliceDevice = device->id;
    fixture->aliceSession = tokens.issue(SessionClaims {
        fixture->aliceId, QStringLiteral("alice"), device->id, now, now + 86'400'000 });
}

Fixture& fixture()
{
    static Fixture* made = [] {
        fuzz::initialiseQt();
        const QString dataDir = fuzz::scratchFolder(QStringLiteral("server"));
        Result<std::unique_ptr<SqliteServerStore>> store = SqliteServerStore::open(dataDir);
        Result<SessionTokens> tokens = SessionTokens::load(dataDir);
        FERRY_FUZZ_CHECK(store && tokens, "the server's store and key open");

        // Users the frames can name: alice is signed in; bob and carol exist, so direct
        // conversations and group members resolve. No password will ever be checked.
        const QByteArray unusedHash = QByteArrayLiteral("not-a-password-hash");
        Result<UserRecord> alice = store.value()->createUser(QStringLiteral("alice"), unusedHash);
        FERRY_FUZZ_CHECK(alice, "alice is created");
        for (const char* name : { "bob", "carol" }) {
            FERRY_FUZZ_CHECK(
                store.value()->createUser(QLatin1String(name), unusedHash), "a user is created");
        }

        auto* fixture = new Fixture;
        fixture->aliceId = alice->id;

        ServerConfig config;
        config.dataDir = dataDir;
        // Each input is a new connection with a full bucket, so the limiter never refuses:
        // its refusal is covered by tst_server_limits.
        config.requestBurst = 1e9;
        fixture->server = std::make_unique<ChatServer>(
            config, std::move(store.value()), std::move(tokens.value()));
        signInNewDevice(fixture, fixture->server->store(), fixture->server->tokens());
        return fixture;
    }();
    return *made;
}

void feed(WebSocketConnection::Handler& connection, const v1::Envelope& envelope)
{
    connection.binaryMessageReceived(encodeFrame(envelope));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    Fixture& f = fixture();
    const QByteArray frame = fuzz::inputBytes(data, size);

    v1::Envelope peeked;
    const bool decodes = decodeFrame(frame, &peeked);
    const auto payload = decodes ? peeked.payload_case() : v1::Envelope::PAYLOAD_NOT_SET;

    int pair[2];
    const int made = ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair);
    FERRY_FUZZ_CHECK(made == 0, "a socket pair is made");
    auto connection = std::make_unique<ClientConnection>(pair[0], f.server.get());
    WebSocketConnection::Handler& handler = *connection;
    if (decodes && payload != v1::Envelope::kHello) {
        v1::Envelope hello;
        hello.mutable_hello()->set_protocol_version(ProtocolVersion);
        feed(handler, hello);
        FERRY_FUZZ_CHECK(
            connection->state() == ClientConnection::State::AwaitingAuth, "Hello is welcomed");
    }
    if (decodes && payload != v1::Envelope::kHello && payload != v1::Envelope::kResume
        && payload != v1::Envelope::kAuthenticate) {
        v1::Envelope authenticate;
        authenticate.mutable_authenticate()->set_session_token(toStd(f.aliceSession));
        feed(handler, authenticate);
        FERRY_FUZZ_CHECK(connection->state() == ClientConnection::State::Authenticated,
            "alice's session token is accepted");
    }

    handler.binaryMessageReceived(frame);

    // Deleting the connection unregisters it from the server, as a closed socket would.
    connection.reset();
    ::close(pair[1]);
    QCoreApplication::sendPostedEvents();

    Result<quint64> offset = f.server->store().lastOffset(f.aliceId);
    FERRY_FUZZ_CHECK(offset, "alice's event log can be read");
    FERRY_FUZZ_CHECK(offset.value() >= f.lastOffset, "alice's event log never shrinks");
    f.lastOffset = offset.value();

    if (f.server->isDeviceRemoved(f.aliceDevice)) {
        signInNewDevice(&f, f.server->store(), f.server->tokens());
    }
    return 0;
}
