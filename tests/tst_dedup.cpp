// A message id names one message for good: when a device sends the same message again (it never
// heard the ack, or a backup of its profile comes back to life), the server answers with the
// first result and stores nothing new, also after the server restarted in between.

#include "tests/support/AccountSnapshot.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"
#include "tests/support/TestFiles.h"

#include <QDir>
#include <QTemporaryDir>
#include <QTest>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

class TestDedup : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void aResentMessageIdIsStoredOnce_data();
    void aResentMessageIdIsStoredOnce();

private:
    QTemporaryDir m_root;
    AccountSnapshot m_accounts;
};

void TestDedup::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    const Result<Done> created
        = m_accounts.create(m_root.filePath(u"accounts"_s), { u"alice"_s, u"bob"_s });
    QVERIFY2(created, whyNot(created).constData());
}

void TestDedup::aResentMessageIdIsStoredOnce_data()
{
    QTest::addColumn<bool>("restartServer");

    QTest::newRow("while the server keeps running") << false;
    // Nothing of the first send survives in the server's memory; only its database remembers.
    QTest::newRow("across a server restart") << true;
}

void TestDedup::aResentMessageIdIsStoredOnce()
{
    QFETCH(bool, restartServer);
    const QString folder = m_root.filePath(QString::fromUtf8(QTest::currentDataTag()));
    const Result<Done> copied = m_accounts.copyTo(folder);
    QVERIFY2(copied, whyNot(copied).constData());
    ServerProcess server(QDir(folder).filePath(u"server"_s));
    // The server logs each resend it recognises at debug level, the proof that the copy really
    // sent the message again rather than only learning of it from the event log.
    server.setLoggingRules(u"ferry.server.debug=true"_s);
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    Ctl alice(QDir(folder).filePath(u"alice"_s), server.url());
    Ctl bob(QDir(folder).filePath(u"bob"_s), server.url());
    // Offsets here count messages only: bob's delivery receipts would add events of their own.
    bob.setExtraArguments({ u"--no-receipts"_s });

    const CtlRun send = alice.send(u"bob"_s, u"say it once"_s);
    QVERIFY2(send.ok(), qPrintable(send.describe()));
    const QString id = send.out.trimmed();

    // The copy is taken while the message is queued and no ferryctl has the profile open, so
    // it is the same device, with the same message in its outbox under the same id.
    Ctl aliceCopy(QDir(folder).filePath(u"alice-copy"_s), server.url());
    const Result<Done> copiedProfile = copyFolderFiles(alice.profileDir(), aliceCopy.profileDir());
    QVERIFY2(copiedProfile, whyNot(copiedProfile).constData());

    const CtlRun delivered = alice.sync();
    QVERIFY2(delivered.ok(), qPrintable(delivered.describe()));
    const Result<QList<QJsonObject>> original = alice.history(u"bob"_s);
    QVERIFY2(original, whyNot(original).constData());
    QCOMPARE(fieldOf(original.value(), u"id"_s), QStringList { id });
    QCOMPARE(fieldOf(original.value(), u"state"_s), QStringList { u"sent"_s });
    QCOMPARE(seqsOf(original.value()), QList<qint64> { 1 });

    if (restartServer) {
        QVERIFY2(server.stop(), qPrintable(server.errorString()));
        QVERIFY2(server.restart(), qPrintable(server.errorString()));
        for (Ctl* device : { &alice, &aliceCopy, &bob }) {
            device->setServerUrl(server.url());
        }
    }

    // The copy still has the message queued and sends it again under its id.
    QCOMPARE(aliceCopy.status()->value(u"outbox"_s).toInteger(), qint64(1));
    const CtlRun resent = aliceCopy.sync();
    QVERIFY2(resent.ok(), qPrintable(resent.describe()));
    const Result<QList<QJsonObject>> copy = aliceCopy.history(u"bob"_s);
    QVERIFY2(copy, whyNot(copy).constData());
    const QByteArray copyHolds = describeHistory(copy.value()).toUtf8();
    QVERIFY2(fieldOf(copy.value(), u"id"_s) == QStringList { id }, copyHolds.constData());
    QVERIFY2(fieldOf(copy.value(), u"state"_s) == QStringList { u"sent"_s }, copyHolds.constData());
    QVERIFY2(seqsOf(copy.value()) == QList<qint64> { 1 }, copyHolds.constData());
    QCOMPARE(aliceCopy.status()->value(u"outbox"_s).toInteger(), qint64(0));

    const CtlRun bobSynced = bob.sync();
    QVERIFY2(bobSynced.ok(), qPrintable(bobSynced.describe()));
    const Result<QList<QJsonObject>> atBob = bob.history(u"alice"_s);
    QVERIFY2(atBob, whyNot(atBob).constData());
    const QByteArray bobHolds = describeHistory(atBob.value()).toUtf8();
    QVERIFY2(fieldOf(atBob.value(), u"id"_s) == QStringList { id }, bobHolds.constData());
    QCOMPARE(bob.status()->value(u"offset"_s).toInteger(), qint64(1));

    // Had the resend been stored, it would have taken seq 2 and this message seq 3.
    const CtlRun next = alice.send(u"bob"_s, u"and this once too"_s);
    QVERIFY2(next.ok(), qPrintable(next.describe()));
    const CtlRun nextDelivered = alice.sync();
    QVERIFY2(nextDelivered.ok(), qPrintable(nextDelivered.describe()));
    const CtlRun bobSyncedAgain = bob.sync();
    QVERIFY2(bobSyncedAgain.ok(), qPrintable(bobSyncedAgain.describe()));

    const Result<QList<QJsonObject>> finalAtBob = bob.history(u"alice"_s);
    QVERIFY2(finalAtBob, whyNot(finalAtBob).constData());
    const QByteArray finalHolds = describeHistory(finalAtBob.value()).toUtf8();
    QVERIFY2(fieldOf(finalAtBob.value(), u"id"_s) == QStringList({ id, next.out.trimmed() }),
        finalHolds.constData());
    QVERIFY2(seqsOf(finalAtBob.value()) == QList<qint64>({ 1, 2 }), finalHolds.constData());
    QCOMPARE(bob.status()->value(u"offset"_s).toInteger(), qint64(2));

    // Checked last: what the devices show is the specification, this only proves the case ran.
    const QStringList resends = server.log().split(u'\n').filter(u"(resend)"_s).filter(id);
    QVERIFY2(resends.size() == 1,
        qPrintable(u"the server logged "_s + QString::number(resends.size()) + u" resends of "_s
            + id + u", expected 1"_s));

    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

QTEST_GUILESS_MAIN(TestDedup)
#include "tst_dedup.moc"
