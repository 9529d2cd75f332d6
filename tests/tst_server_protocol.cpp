// The server's side of the wire protocol, frame by frame: a raw WebSocket client in this process
// sends hand-made envelopes (and bad bytes) to the real ferry-server binary on loopback and
// checks every answer, error code and close code that docs/protocol.md promises.

#include "core/FrameCodec.h"
#include "core/MessageId.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"

#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <QWebSocket>

#include "ferry.pb.h"

using namespace ferry;
using ferry::test::ProtocolClient;
using ferry::test::ServerProcess;
using ferry::test::directId;
using ferry::test::toStd;

class TestServerProtocol : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dataDir.isValid());
        m_server = std::make_unique<ServerProcess>(m_dataDir.path());
        QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

        // Two accounts every test may use; registering costs an Argon2id hash each.
        ProtocolClient alice(m_server->url());
        QVERIFY(alice.isConnected());
        QVERIFY(alice.registerUser(QStringLiteral("alice")) != 0);
        ProtocolClient bob(m_server->url());
        m_bobDeviceId = bob.registerUser(QStringLiteral("bob"));
        QVERIFY(m_bobDeviceId != 0);
        m_bobToken = bob.deviceToken();
    }

    void cleanupTestCase()
    {
        if (m_server && m_server->isRunning()) {
            QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
        }
    }

    void textFrameIsRefusedAndClosed()
    {
        ProtocolClient client(m_server->url());
        QVERIFY(client.isConnected());
        client.socket().sendTextMessage(QStringLiteral("{\"hello\": 1}"));

        v1::Envelope reply;
        QVERIFY(client.next(&reply));
        QCOMPARE(reply.error().code(), v1::MALFORMED_FRAME);
        QVERIFY(client.waitClosed());
        QCOMPARE(client.socket().closeCode(), QWebSocketProtocol::CloseCodeDatatypeNotSupported);
    }

    void undecodableFrameIsRefusedAndClosed_data()
    {
        QTest::addColumn<QByteArray>("frame");
        QTest::newRow("random bytes") << QByteArray("\xff\xfe\xfd\x00garbage", 11);
        QTest::newRow("empty frame") << QByteArray();
        QTest::newRow("truncated envelope") << QByteArray("\x52\x10\x08", 3);
    }

    void undecodableFrameIsRefusedAndClosed()
    {
        QFETCH(QByteArray, frame);
        ProtocolClient client(m_server->url());
        QVERIFY(client.isConnected());
        client.socket().sendBinaryMessage(frame);

        v1::Envelope reply;
        QVERIFY(client.next(&reply));
        QCOMPARE(reply.error().code(), v1::MALFORMED_FRAME);
        QVERIFY(client.waitClosed());
        QCOMPARE(client.socket().closeCode(), QWebSocketProtocol::CloseCodeProtocolError);
    }

    void firstFrameMustBeHello()
    {
        ProtocolClient client(m_server->url());
        v1::Envelope sync;
        sync.mutable_sync()->set_after_offset(0);
        client.send(sync);

        v1::Envelope reply;
        QVERIFY(client.next(&reply));
        QCOMPARE(reply.error().code(), v1::BAD_REQUEST);
        QVERIFY(client.waitClosed());
    }

    void unknownVersionNamesTheSupportedOnes()
    {
        ProtocolClient client(m_server->url());
        v1::Envelope hello;
        hello.mutable_hello()->set_protocol_version(99);
        const quint64 requestId = client.send(hello);

        v1::Envelope reply;
        QVERIFY(client.next(&reply));
        QCOMPARE(reply.request_id(), requestId);
        QCOMPARE(reply.error().code(), v1::UNSUPPORTED_VERSION);
        QCOMPARE(reply.error().supported_versions_size(), 1);
        QCOMPARE(reply.error().supported_versions(0), ProtocolVersion);
        QVERIFY(client.waitClosed());
        QCOMPARE(client.socket().closeCode(), QWebSocketProtocol::CloseCodePolicyViolated);
    }

    void requestsBeforeAuthenticationAreRefusedButTheLinkStays()
    {
        ProtocolClient client(m_server->url());
        QVERIFY(client.hello());
        v1::Envelope sync;
        sync.mutable_sync()->set_after_offset(0);
        client.send(sync);

        v1::Envelope reply;
        QVERIFY(client.next(&reply));
        QCOMPARE(reply.error().code(), v1::NOT_AUTHENTICATED);
        QCOMPARE(client.socket().state(), QAbstractSocket::ConnectedState);
    }

    void oversizedFrameClosesTheConnection()
    {
        ProtocolClient client(m_server->url());
        QVERIFY(client.hello());
        client.socket().sendBinaryMessage(QByteArray(70 * 1024, 'x'));
        QVERIFY(client.waitClosed());
        QCOMPARE(client.socket().closeCode(), QWebSocketProtocol::CloseCodeTooMuchData);

        // The server is still there for everyone else.
        ProtocolClient after(m_server->url());
        QVERIFY(after.hello());
    }

    void resumeWithAWrongTokenIsRefused()
    {
        ProtocolClient client(m_server->url());
        QVERIFY(client.hello());
        v1::Envelope resume;
        resume.mutable_resume()->set_device_id(m_bobDeviceId);
        QByteArray forged = m_bobToken;
        forged[0] = static_cast<char>(forged[0] ^ 1);
        resume.mutable_resume()->set_device_token(toStd(forged));
        client.send(resume);

        v1::Envelope reply;
        QVERIFY(client.next(&reply));
        QCOMPARE(reply.error().code(), v1::INVALID_TOKEN);
    }

    void resumeWithTheRightTokenAuthenticates()
    {
        ProtocolClient client(m_server->url());
        QVERIFY(client.hello());
        v1::Envelope resume;
        resume.mutable_resume()->set_device_id(m_bobDeviceId);
        resume.mutable_resume()->set_device_token(toStd(m_bobToken));
        client.send(resume);

        v1::Envelope reply;
        QVERIFY(client.next(&reply));
        QVERIFY(reply.has_authenticated());
        QCOMPARE(reply.authenticated().user_name(), std::string("bob"));
    }

    void badSendsAreRefusedWithTheMessageId_data()
    {
        QTest::addColumn<QString>("conversation");
        QTest::addColumn<int>("bodyBytes");
        QTest::addColumn<int>("idBytes");
        QTest::addColumn<int>("expectedCode");
        QTest::newRow("recipient does not exist")
            << QStringLiteral("direct:alice:nobody") << 5 << 16 << int(v1::UNKNOWN_RECIPIENT);
        QTest::newRow("sender is not a member")
            << QStringLiteral("direct:bob:carol") << 5 << 16 << int(v1::NOT_A_MEMBER);
        QTest::newRow("conversation to oneself")
            << QStringLiteral("direct:alice:alice") << 5 << 16 << int(v1::NOT_A_MEMBER);
        QTest::newRow("unknown kind of conversation")
            << QStringLiteral("group:nonexistent") << 5 << 16 << int(v1::NOT_A_MEMBER);
        QTest::newRow("id of 15 bytes")
            << QStringLiteral("direct:alice:bob") << 5 << 15 << int(v1::BAD_REQUEST);
        QTest::newRow("body above the limit")
            << QStringLiteral("direct:alice:bob") << 62 * 1024 << 16 << int(v1::BODY_TOO_LARGE);
    }

    void badSendsAreRefusedWithTheMessageId()
    {
        QFETCH(QString, conversation);
        QFETCH(int, bodyBytes);
        QFETCH(int, idBytes);
        QFETCH(int, expectedCode);

        ProtocolClient alice(m_server->url());
        QVERIFY(alice.registerUser(uniqueName()) != 0);
        // The registered name differs per row; rewrite "alice" into it where the row names her.
        const QString self = m_lastName;
        const QString target = QString(conversation).replace(QStringLiteral("alice"), self);
        const QStringList parts = target.split(u':');
        QString normalised = target;
        if (parts.size() == 3 && parts[0] == u"direct" && parts[1] > parts[2]) {
            normalised = parts[0] + u':' + parts[2] + u':' + parts[1];
        }

        const QByteArray id = MessageId::generate().bytes().left(idBytes);
        const v1::Envelope reply = alice.sendMessage(normalised, QByteArray(bodyBytes, 'b'), id);
        QVERIFY2(reply.has_error(), reply.DebugString().c_str());
        QCOMPARE(int(reply.error().code()), expectedCode);
        QCOMPARE(reply.error().message_id(), toStd(id));
        QCOMPARE(alice.socket().state(), QAbstractSocket::ConnectedState);
    }

    void sameIdFromAnotherSenderIsAConflict()
    {
        ProtocolClient alice(m_server->url());
        const QString aliceName = uniqueName();
        QVERIFY(alice.registerUser(aliceName) != 0);
        const QByteArray id = MessageId::generate().bytes();
        const v1::Envelope first
            = alice.sendMessage(directId(aliceName, QStringLiteral("bob")), "hi", id);
        QVERIFY2(first.has_send_ack(), first.DebugString().c_str());

        ProtocolClient mallory(m_server->url());
        const QString malloryName = uniqueName();
        QVERIFY(mallory.registerUser(malloryName) != 0);
        const v1::Envelope second
            = mallory.sendMessage(directId(malloryName, QStringLiteral("bob")), "hijack", id);
        QCOMPARE(second.error().code(), v1::DUPLICATE_ID_CONFLICT);
    }

    void resendReturnsTheOriginalAck()
    {
        ProtocolClient alice(m_server->url());
        const QString name = uniqueName();
        QVERIFY(alice.registerUser(name) != 0);
        const QString conversation = directId(name, QStringLiteral("bob"));
        const QByteArray id = MessageId::generate().bytes();

        const v1::Envelope first = alice.sendMessage(conversation, "once", id);
        QTest::qWait(20); // a different server time, were the resend to be stored anew
        const v1::Envelope again = alice.sendMessage(conversation, "once", id);
        const v1::Envelope next = alice.sendMessage(conversation, "twice");

        QVERIFY(first.has_send_ack() && again.has_send_ack() && next.has_send_ack());
        QCOMPARE(again.send_ack().seq(), first.send_ack().seq());
        QCOMPARE(again.send_ack().server_time_ms(), first.send_ack().server_time_ms());
        QCOMPARE(next.send_ack().seq(), first.send_ack().seq() + 1);
    }

    void liveEventsFollowTheCatchUpWithNoGapAndNoRepeat()
    {
        ProtocolClient carol(m_server->url());
        const QString carolName = uniqueName();
        QVERIFY(carol.registerUser(carolName) != 0);
        ProtocolClient dave(m_server->url());
        const QString daveName = uniqueName();
        QVERIFY(dave.registerUser(daveName) != 0);
        const QString conversation = directId(carolName, daveName);

        // Five messages before dave syncs, fetched in batches of two...
        for (int i = 0; i < 5; ++i) {
            QVERIFY(carol.sendMessage(conversation, QByteArray::number(i)).has_send_ack());
        }
        QList<quint64> offsets;
        quint64 after = 0;
        for (bool caughtUp = false; !caughtUp;) {
            v1::Envelope sync;
            sync.mutable_sync()->set_after_offset(after);
            sync.mutable_sync()->set_max_events(2);
            dave.send(sync);
            v1::Envelope batch;
            QVERIFY(dave.next(&batch));
            QVERIFY(batch.has_events());
            QVERIFY(batch.events().events_size() <= 2);
            for (const v1::Event& event : batch.events().events()) {
                offsets.append(event.offset());
            }
            after = batch.events().last_offset();
            caughtUp = batch.events().caught_up();
        }

        // ...then five more while dave is live: each is pushed once, with request id 0.
        for (int i = 5; i < 10; ++i) {
            QVERIFY(carol.sendMessage(conversation, QByteArray::number(i)).has_send_ack());
            v1::Envelope pushed;
            QVERIFY(dave.next(&pushed));
            QCOMPARE(pushed.request_id(), quint64(0));
            for (const v1::Event& event : pushed.events().events()) {
                offsets.append(event.offset());
                QCOMPARE(event.message().body(), std::to_string(i));
            }
        }
        QVERIFY(dave.staysQuiet(200));

        QList<quint64> expected;
        for (quint64 offset = 1; offset <= 10; ++offset) {
            expected.append(offset);
        }
        QCOMPARE(offsets, expected);
    }

    // Last: it stops the server.
    void shutdownClosesWithGoingAway()
    {
        ProtocolClient client(m_server->url());
        QVERIFY(client.hello());
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
        QVERIFY(client.waitClosed());
        QCOMPARE(client.socket().closeCode(), QWebSocketProtocol::CloseCodeGoingAway);
    }

private:
    QString uniqueName()
    {
        m_lastName = u"user" + QString::number(++m_userCounter);
        return m_lastName;
    }

    QTemporaryDir m_dataDir;
    std::unique_ptr<ServerProcess> m_server;
    QByteArray m_bobToken;
    quint64 m_bobDeviceId = 0;
    QString m_lastName;
    int m_userCounter = 0;
};

QTEST_GUILESS_MAIN(TestServerProtocol)
#include "tst_server_protocol.moc"
