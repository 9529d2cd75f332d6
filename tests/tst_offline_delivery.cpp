// Offline first, end to end: messages written while no server runs wait in the outbox, and once
// the server is back every device of both accounts gets each of them exactly once, in the order
// they were written, with the same sequence numbers everywhere.

#include "core/MessageId.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"

#include <QTemporaryDir>
#include <QTest>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

class TestOfflineDelivery : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void messagesWrittenOfflineReachEveryDeviceOnceInOrder();
};

void TestOfflineDelivery::messagesWrittenOfflineReachEveryDeviceOnceInOrder()
{
    QTemporaryDir root;
    QVERIFY2(root.isValid(), qPrintable(root.errorString()));
    ServerProcess server(root.filePath(u"server"_s));
    QVERIFY2(server.start(), qPrintable(server.errorString()));

    Ctl aliceLaptop(root.filePath(u"alice-laptop"_s), server.url());
    Ctl alicePhone(root.filePath(u"alice-phone"_s), server.url());
    Ctl bob(root.filePath(u"bob"_s), server.url());
    const CtlRun laptopRegistered = aliceLaptop.registerUser(u"alice"_s, u"laptop"_s);
    QVERIFY2(laptopRegistered.ok(), qPrintable(laptopRegistered.describe()));
    const CtlRun bobRegistered = bob.registerUser(u"bob"_s, u"desk"_s);
    QVERIFY2(bobRegistered.ok(), qPrintable(bobRegistered.describe()));
    const CtlRun phoneLoggedIn = alicePhone.login(u"alice"_s, u"phone"_s);
    QVERIFY2(phoneLoggedIn.ok(), qPrintable(phoneLoggedIn.describe()));
    const quint16 registeredPort = server.port();
    QVERIFY2(server.stop(), qPrintable(server.errorString()));

    // No server anywhere: writing must still work, and each message gets its id at once.
    // Bodies must arrive byte for byte, so they carry what a careless layer would mangle.
    const QStringList bodies = {
        u"first, written offline"_s,
        u"second: naïve café ✓ — ünïcödé"_s,
        u"third\twith a tab, \"quotes\" and a\nnewline"_s,
    };
    QStringList ids;
    for (const QString& body : bodies) {
        const CtlRun send = aliceLaptop.send(u"bob"_s, body);
        QVERIFY2(send.ok(), qPrintable(send.describe()));
        const QString id = send.out.trimmed();
        QVERIFY2(MessageId::fromString(id).has_value(), qPrintable(u"not a message id: "_s + id));
        ids.append(id);
    }
    const Result<QList<QJsonObject>> queued = aliceLaptop.history(u"bob"_s);
    QVERIFY2(queued, whyNot(queued).constData());
    QCOMPARE(fieldOf(queued.value(), u"id"_s), ids);
    QCOMPARE(fieldOf(queued.value(), u"state"_s), QStringList(3, u"queued"_s));
    QCOMPARE(seqsOf(queued.value()), QList<qint64>({ -1, -1, -1 }));

    const CtlRun unreachable = aliceLaptop.sync(2);
    QVERIFY2(unreachable.exitCode == 3, qPrintable(unreachable.describe()));
    QCOMPARE(aliceLaptop.status()->value(u"outbox"_s).toInteger(), qint64(3));

    // The server comes back over the same data, where the clients registered it.
    QVERIFY2(server.restart(), qPrintable(server.errorString()));
    if (server.port() != registeredPort) {
        qWarning(
            "Port %u was taken meanwhile; the server moved to %u", registeredPort, server.port());
    }
    for (Ctl* device : { &aliceLaptop, &bob, &alicePhone }) {
        device->setServerUrl(server.url());
        const CtlRun sync = device->sync();
        QVERIFY2(sync.ok(), qPrintable(sync.describe()));
    }

    const QList<qint64> seqs = { 1, 2, 3 };
    const struct {
        Ctl* device;
        QString peer;
        QString state;
    } expectations[] = {
        { &bob, u"alice"_s, u"received"_s },
        // The phone syncs after bob, whose device reported the messages delivered.
        { &alicePhone, u"bob"_s, u"delivered"_s },
        { &aliceLaptop, u"bob"_s, u"sent"_s },
    };
    for (const auto& expected : expectations) {
        const Result<QList<QJsonObject>> history = expected.device->history(expected.peer);
        QVERIFY2(history, whyNot(history).constData());
        const QList<QJsonObject>& messages = history.value();
        const QByteArray holds
            = (expected.device->profileDir() + u" holds:\n"_s + describeHistory(messages)).toUtf8();
        QVERIFY2(fieldOf(messages, u"id"_s) == ids, holds.constData());
        QVERIFY2(fieldOf(messages, u"body"_s) == bodies, holds.constData());
        QVERIFY2(seqsOf(messages) == seqs, holds.constData());
        QVERIFY2(fieldOf(messages, u"sender"_s) == QStringList(3, u"alice"_s), holds.constData());
        QVERIFY2(
            fieldOf(messages, u"state"_s) == QStringList(3, expected.state), holds.constData());
        QVERIFY2(fieldOf(messages, u"conversation"_s) == QStringList(3, u"direct:alice:bob"_s),
            holds.constData());
    }
    QCOMPARE(aliceLaptop.status()->value(u"outbox"_s).toInteger(), qint64(0));

    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

QTEST_GUILESS_MAIN(TestOfflineDelivery)
#include "tst_offline_delivery.moc"
