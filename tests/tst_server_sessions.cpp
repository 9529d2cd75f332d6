// Sessions and credentials at the protocol level, against the real ferry-server on loopback: a
// session token is checked by its signature and expiry, a refreshed one works on a fresh
// connection, a removed device's tokens stop working, and a failed login says nothing about
// whether the user exists, neither in its answer nor in its timing.

#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"

#include <QDateTime>
#include <QElapsedTimer>
#include <QRandomGenerator>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <memory>

#include "ferry.pb.h"

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

v1::Envelope authenticateWith(const QByteArray& sessionToken)
{
    v1::Envelope envelope;
    envelope.mutable_authenticate()->set_session_token(toStd(sessionToken));
    return envelope;
}

/// The answer to Authenticate with `sessionToken` on a connection of its own.
v1::Envelope authenticateOnAFreshConnection(const QUrl& url, const QByteArray& sessionToken)
{
    ProtocolClient client(url);
    if (!client.hello()) {
        return {};
    }
    return client.request(authenticateWith(sessionToken));
}

QByteArray flipped(QByteArray bytes, qsizetype index)
{
    bytes[index] = static_cast<char>(bytes[index] ^ 0x01);
    return bytes;
}

double median(QList<qint64> values)
{
    std::sort(values.begin(), values.end());
    return static_cast<double>(values[values.size() / 2]);
}

} // namespace

class TestServerSessions : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void aSessionTokenThatIsNotTheServersIsRefused_data();
    void aSessionTokenThatIsNotTheServersIsRefused();
    void anExpiredSessionTokenAsksForAResume();
    void aRefreshedSessionTokenAuthenticatesAFreshConnection();
    void aRemovedDevicesTokensAnswerDeviceRemoved();
    void aWrongPasswordAndAnUnknownUserAnswerAlikeAndAsSlowly();

private:
    QString uniqueName() { return u"user"_s + QString::number(++m_userCounter); }

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    QString m_alice;
    QByteArray m_aliceSession;
    int m_userCounter = 0;
};

void TestServerSessions::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    // One account for the tests that only need a genuine token to tamper with.
    ProtocolClient alice(m_server->url());
    m_alice = uniqueName();
    QVERIFY(alice.registerUser(m_alice) != 0);
    m_aliceSession = alice.sessionToken();
    QVERIFY(!m_aliceSession.isEmpty());
}

void TestServerSessions::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

void TestServerSessions::aSessionTokenThatIsNotTheServersIsRefused_data()
{
    QTest::addColumn<QString>("tampering");
    QTest::newRow("a byte of the signature flipped") << u"first byte"_s;
    QTest::newRow("a byte of the claims flipped") << u"last byte"_s;
    QTest::newRow("the token cut short by one byte") << u"truncated"_s;
    QTest::newRow("random bytes of a token's length") << u"random"_s;
    QTest::newRow("a few garbage bytes") << u"garbage"_s;
    QTest::newRow("no token at all") << u"empty"_s;
}

void TestServerSessions::aSessionTokenThatIsNotTheServersIsRefused()
{
    QFETCH(QString, tampering);
    const QByteArray genuine = m_aliceSession;
    QByteArray token;
    if (tampering == u"first byte") {
        token = flipped(genuine, 0);
    } else if (tampering == u"last byte") {
        token = flipped(genuine, genuine.size() - 1);
    } else if (tampering == u"truncated") {
        token = genuine.left(genuine.size() - 1);
    } else if (tampering == u"random") {
        for (qsizetype i = 0; i < genuine.size(); ++i) {
            token.append(static_cast<char>(QRandomGenerator::global()->bounded(256)));
        }
    } else if (tampering == u"garbage") {
        token = QByteArrayLiteral("not a token");
    }

    ProtocolClient client(m_server->url());
    QVERIFY(client.hello());
    const v1::Envelope answer = client.request(authenticateWith(token));
    QVERIFY2(answer.has_error(), answer.DebugString().c_str());
    QCOMPARE(answer.error().code(), v1::INVALID_TOKEN);

    // A refused token leaves the connection open and unauthenticated: the genuine one still
    // works on it, so the refusal was about the token and not about the link.
    const v1::Envelope retry = client.request(authenticateWith(genuine));
    QVERIFY2(retry.has_authenticated(), retry.DebugString().c_str());
    QCOMPARE(QString::fromStdString(retry.authenticated().user_name()), m_alice);
}

void TestServerSessions::anExpiredSessionTokenAsksForAResume()
{
    // A server of its own, whose sessions last one second.
    ServerProcess server(m_root.filePath(u"short-sessions"_s), { u"--session-lifetime"_s, u"1"_s });
    QVERIFY2(server.start(), qPrintable(server.errorString()));

    ProtocolClient bob(server.url());
    const qint64 before = QDateTime::currentMSecsSinceEpoch();
    QVERIFY(bob.registerUser(uniqueName()) != 0);
    const QByteArray session = bob.sessionToken();

    // Fresh, the token authenticates and names its expiry, a second after it was issued.
    const v1::Envelope fresh = authenticateOnAFreshConnection(server.url(), session);
    QVERIFY2(fresh.has_authenticated(), fresh.DebugString().c_str());
    const qint64 expiresMs = fresh.authenticated().session_expires_ms();
    QVERIFY2(expiresMs >= before + 1000 && expiresMs <= QDateTime::currentMSecsSinceEpoch() + 1000,
        qPrintable(u"expiry "_s + QString::number(expiresMs - before) + u" ms after the start"_s));

    // The wait is for the token's own expiry, which cannot be signalled; it is at most 1 s.
    QTest::qWait(static_cast<int>(
        std::max<qint64>(0, expiresMs - QDateTime::currentMSecsSinceEpoch()) + 50));
    const v1::Envelope expired = authenticateOnAFreshConnection(server.url(), session);
    QVERIFY2(expired.has_error(), expired.DebugString().c_str());
    QCOMPARE(expired.error().code(), v1::SESSION_EXPIRED);

    // The device token still opens a session, with a new session token.
    ProtocolClient resumed(server.url());
    QCOMPARE(resumed.resume(bob.deviceId(), bob.deviceToken()), bob.deviceId());
    QVERIFY(!resumed.sessionToken().isEmpty());
    QVERIFY(resumed.sessionToken() != session);

    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

void TestServerSessions::aRefreshedSessionTokenAuthenticatesAFreshConnection()
{
    ProtocolClient carol(m_server->url());
    const QString name = uniqueName();
    QVERIFY(carol.registerUser(name) != 0);

    // Issued at least a millisecond later than the first, so it cannot equal it by accident.
    QTest::qWait(5);
    v1::Envelope refresh;
    refresh.mutable_refresh_session();
    const v1::Envelope answer = carol.request(refresh);
    QVERIFY2(answer.has_session_token(), answer.DebugString().c_str());
    const QByteArray refreshed = toBytes(answer.session_token().session_token());
    QVERIFY(!refreshed.isEmpty());
    QVERIFY(refreshed != carol.sessionToken());
    QVERIFY(answer.session_token().expires_ms() > QDateTime::currentMSecsSinceEpoch());

    const v1::Envelope authenticated = authenticateOnAFreshConnection(m_server->url(), refreshed);
    QVERIFY2(authenticated.has_authenticated(), authenticated.DebugString().c_str());
    QCOMPARE(QString::fromStdString(authenticated.authenticated().user_name()), name);
    QCOMPARE(authenticated.authenticated().device_id(), carol.deviceId());
    QCOMPARE(
        authenticated.authenticated().session_expires_ms(), answer.session_token().expires_ms());
    // Authenticate creates no device and issues no new session.
    QVERIFY(authenticated.authenticated().device_token().empty());
    QVERIFY(authenticated.authenticated().session_token().empty());
}

void TestServerSessions::aRemovedDevicesTokensAnswerDeviceRemoved()
{
    ProtocolClient laptop(m_server->url());
    const QString name = uniqueName();
    QVERIFY(laptop.registerUser(name) != 0);
    ProtocolClient phone(m_server->url());
    const quint64 phoneId = phone.login(name);
    QVERIFY(phoneId != 0);
    const QByteArray phoneSession = phone.sessionToken();
    const QByteArray phoneToken = phone.deviceToken();

    v1::Envelope remove;
    remove.mutable_remove_device()->set_device_id(phoneId);
    const v1::Envelope removed = laptop.request(remove);
    QVERIFY2(removed.has_ok(), removed.DebugString().c_str());
    QVERIFY(phone.waitClosed());

    const v1::Envelope bySession = authenticateOnAFreshConnection(m_server->url(), phoneSession);
    QVERIFY2(bySession.has_error(), bySession.DebugString().c_str());
    QCOMPARE(bySession.error().code(), v1::DEVICE_REMOVED);

    ProtocolClient byDeviceToken(m_server->url());
    QVERIFY(byDeviceToken.hello());
    v1::Envelope resume;
    resume.mutable_resume()->set_device_id(phoneId);
    resume.mutable_resume()->set_device_token(toStd(phoneToken));
    const v1::Envelope resumed = byDeviceToken.request(resume);
    QVERIFY2(resumed.has_error(), resumed.DebugString().c_str());
    QCOMPARE(resumed.error().code(), v1::DEVICE_REMOVED);

    // The account's other device is untouched.
    const v1::Envelope stillValid
        = authenticateOnAFreshConnection(m_server->url(), laptop.sessionToken());
    QVERIFY2(stillValid.has_authenticated(), stillValid.DebugString().c_str());
}

void TestServerSessions::aWrongPasswordAndAnUnknownUserAnswerAlikeAndAsSlowly()
{
    ProtocolClient client(m_server->url());
    QVERIFY(client.hello());
    const auto login = [&](const QString& user, qint64* elapsedNs) {
        v1::Envelope envelope;
        envelope.mutable_login()->set_user_name(user.toStdString());
        envelope.mutable_login()->set_password("not-the-password");
        envelope.mutable_login()->set_device_name("test");
        QElapsedTimer timer;
        timer.start();
        const v1::Envelope answer = client.request(envelope);
        *elapsedNs = timer.nsecsElapsed();
        return answer;
    };

    // Interleaved, so that a busy moment of the machine weighs on both kinds alike.
    QList<qint64> wrongPasswordNs;
    QList<qint64> unknownUserNs;
    for (int attempt = 0; attempt < 3; ++attempt) {
        qint64 elapsed = 0;
        const v1::Envelope wrongPassword = login(m_alice, &elapsed);
        wrongPasswordNs.append(elapsed);
        const v1::Envelope unknownUser = login(u"nobody-"_s + uniqueName(), &elapsed);
        unknownUserNs.append(elapsed);

        QVERIFY2(wrongPassword.has_error(), wrongPassword.DebugString().c_str());
        QVERIFY2(unknownUser.has_error(), unknownUser.DebugString().c_str());
        QCOMPARE(wrongPassword.error().code(), v1::BAD_CREDENTIALS);
        QCOMPARE(unknownUser.error().code(), v1::BAD_CREDENTIALS);
        QCOMPARE(unknownUser.error().message(), wrongPassword.error().message());
    }

    // Both check one Argon2id hash (a stand-in for the unknown user), so neither is much
    // faster. The bound is loose: a loaded machine adds noise of the same order.
    const double wrongPassword = median(wrongPasswordNs);
    const double unknownUser = median(unknownUserNs);
    qInfo("Median login refusal: wrong password %.1f ms, unknown user %.1f ms", wrongPassword / 1e6,
        unknownUser / 1e6);
    QVERIFY2(unknownUser >= 0.5 * wrongPassword,
        qPrintable(u"an unknown user is refused in %1 ms, a wrong password in %2 ms"_s
                       .arg(unknownUser / 1e6)
                       .arg(wrongPassword / 1e6)));
}

QTEST_GUILESS_MAIN(TestServerSessions)
#include "tst_server_sessions.moc"
