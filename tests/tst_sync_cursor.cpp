// A device that syncs from the middle of its event log gets exactly the events after its cursor:
// none missing, none twice, also when the server hands them out in several small batches.

#include "tests/support/AccountSnapshot.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"

#include <QDir>
#include <QTemporaryDir>
#include <QTest>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

class TestSyncCursor : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void syncingFromTheMiddleFetchesExactlyTheMissingEvents_data();
    void syncingFromTheMiddleFetchesExactlyTheMissingEvents();

private:
    QTemporaryDir m_root;
    AccountSnapshot m_accounts;
};

void TestSyncCursor::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    const Result<Done> created
        = m_accounts.create(m_root.filePath(u"accounts"_s), { u"alice"_s, u"bob"_s });
    QVERIFY2(created, whyNot(created).constData());
}

void TestSyncCursor::syncingFromTheMiddleFetchesExactlyTheMissingEvents_data()
{
    QTest::addColumn<QStringList>("serverArguments");

    QTest::newRow("all in one batch") << QStringList {};
    // 5 events come as 3 + 2, the next 7 as 3 + 3 + 1: every batch boundary is crossed.
    QTest::newRow("batches of three") << QStringList { u"--sync-batch"_s, u"3"_s };
    QTest::newRow("one event per batch") << QStringList { u"--sync-batch"_s, u"1"_s };
}

void TestSyncCursor::syncingFromTheMiddleFetchesExactlyTheMissingEvents()
{
    QFETCH(QStringList, serverArguments);
    const QString folder = m_root.filePath(QString::fromUtf8(QTest::currentDataTag()));
    const Result<Done> copied = m_accounts.copyTo(folder);
    QVERIFY2(copied, whyNot(copied).constData());
    ServerProcess server(QDir(folder).filePath(u"server"_s), serverArguments);
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    const Ctl alice(QDir(folder).filePath(u"alice"_s), server.url());
    Ctl bob(QDir(folder).filePath(u"bob"_s), server.url());
    // Offsets here count messages only: bob's delivery receipts would add events of their own.
    bob.setExtraArguments({ u"--no-receipts"_s });

    // Bob syncs after the first 5 messages, so the next 7 find his cursor in the middle of his
    // log; the last step, with nothing new, must move nothing and add nothing.
    const struct {
        int newMessages;
        qint64 bobsOffset;
    } steps[] = { { 5, 5 }, { 7, 12 }, { 0, 12 } };

    QStringList written;
    for (const auto& step : steps) {
        for (int i = 0; i < step.newMessages; ++i) {
            const CtlRun send
                = alice.send(u"bob"_s, u"message "_s + QString::number(written.size() + 1));
            QVERIFY2(send.ok(), qPrintable(send.describe()));
            written.append(send.out.trimmed());
        }
        const CtlRun aliceSynced = alice.sync();
        QVERIFY2(aliceSynced.ok(), qPrintable(aliceSynced.describe()));
        const CtlRun bobSynced = bob.sync();
        QVERIFY2(bobSynced.ok(), qPrintable(bobSynced.describe()));

        const Result<QList<QJsonObject>> history = bob.history(u"alice"_s);
        QVERIFY2(history, whyNot(history).constData());
        const QByteArray holds = describeHistory(history.value()).toUtf8();
        QList<qint64> seqs;
        for (qint64 seq = 1; seq <= written.size(); ++seq) {
            seqs.append(seq);
        }
        QVERIFY2(fieldOf(history.value(), u"id"_s) == written, holds.constData());
        QVERIFY2(seqsOf(history.value()) == seqs, holds.constData());
        const Result<QJsonObject> status = bob.status();
        QVERIFY2(status, whyNot(status).constData());
        QCOMPARE(status->value(u"offset"_s).toInteger(), step.bobsOffset);
    }

    QVERIFY2(server.stop(), qPrintable(server.errorString()));
}

QTEST_GUILESS_MAIN(TestSyncCursor)
#include "tst_sync_cursor.moc"
