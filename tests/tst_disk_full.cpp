// A full disk under the client's profile, while the user writes and while messages arrive:
// each failure is said plainly, nothing stored before is lost or doubled, and everything works
// again once there is room. The profile lives on a small tmpfs of its own, so the disk really
// fills; mounting one needs root (as on the build and CI machines).

#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"
#include "tests/support/SmallDisk.h"

#include <QDir>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

class TestDiskFull : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_root.isValid());
        m_disk = std::make_unique<SmallDisk>(m_root.filePath(u"small-disk"_s));
        if (!m_disk->mount(4)) {
            QSKIP("mounting a 4 MiB tmpfs for the profile needs root; run as root to test this");
        }

        m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
        QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));
        m_alice = std::make_unique<Ctl>(m_disk->filePath(u"alice"_s), m_server->url());
        m_bob = std::make_unique<Ctl>(m_root.filePath(u"bob"_s), m_server->url());
        for (auto [ctl, name] : { std::pair { m_alice.get(), u"alice"_s },
                 std::pair { m_bob.get(), u"bob"_s } }) {
            const CtlRun registered = ctl->registerUser(name, u"device"_s);
            QVERIFY2(registered.ok(), qPrintable(registered.describe()));
        }
    }

    void cleanupTestCase()
    {
        if (m_server && m_server->isRunning()) {
            QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
        }
        m_disk.reset();
    }

    void writingOnAFullDiskFailsClearlyAndLosesNothing()
    {
        QVERIFY2(m_alice->send(u"bob"_s, u"before the disk filled"_s).ok(), "first send");
        QVERIFY(m_disk->fill());

        // SQLite may still find room in pages it holds; within a bounded number of writes the
        // disk refuses one, and that refusal must be a clear error, not a crash or a wipe.
        CtlRun refused;
        int accepted = 0;
        for (int i = 0; i < 400; ++i) {
            refused = m_alice->send(u"bob"_s, u"written on a full disk "_s + QString::number(i)
                    + u' ' + QString(2000, u'x'));
            if (!refused.ok()) {
                break;
            }
            ++accepted;
        }
        QVERIFY2(!refused.ok(), "the disk never filled up");
        QCOMPARE(refused.exitCode, 1);
        QVERIFY2(refused.err.contains(u"full"_s), qPrintable(refused.describe()));

        // With the disk full even opening the profile can fail (SQLite's shared-memory file may
        // need room), and must say why rather than call the profile damaged.
        const CtlRun looked = m_alice->run({ u"status"_s, u"--json"_s });
        QVERIFY2(looked.ok() || looked.err.contains(u"full"_s), qPrintable(looked.describe()));
        QVERIFY2(!looked.err.contains(u"damaged"_s), qPrintable(looked.describe()));

        // Once there is room, what was written before is all there, queued exactly once.
        QVERIFY(m_disk->free());
        const Result<QJsonObject> status = m_alice->status();
        QVERIFY2(status, whyNot(status).constData());
        QCOMPARE(status->value(u"outbox"_s).toInteger(), qint64(1 + accepted));

        const CtlRun after = m_alice->send(u"bob"_s, u"after freeing space"_s);
        QVERIFY2(after.ok(), qPrintable(after.describe()));
        const CtlRun synced = m_alice->sync();
        QVERIFY2(synced.ok(), qPrintable(synced.describe()));
        QVERIFY2(m_bob->sync().ok(), "bob's sync");
        const Result<QList<QJsonObject>> atBob = m_bob->history(u"alice"_s);
        QVERIFY2(atBob, whyNot(atBob).constData());
        QCOMPARE(atBob->size(), 2 + accepted);
        QStringList ids = fieldOf(atBob.value(), u"id"_s);
        ids.removeDuplicates();
        QCOMPARE(ids.size(), atBob->size());
    }

    void receivingOnAFullDiskFailsClearlyAndCatchesUpLater()
    {
        const Result<QJsonObject> before = m_alice->status();
        QVERIFY2(before, whyNot(before).constData());
        const qint64 offsetBefore = before->value(u"offset"_s).toInteger();

        for (int i = 0; i < 60; ++i) {
            QVERIFY2(m_bob->send(u"alice"_s, u"while alice's disk is full "_s + QString::number(i)
                             + u' ' + QString(2000, u'y'))
                         .ok(),
                "bob's send");
        }
        QVERIFY2(m_bob->sync().ok(), "bob's sync");

        QVERIFY(m_disk->fill());
        const CtlRun refused = m_alice->sync(10);
        QVERIFY2(!refused.ok(), "the sync stored 60 messages on a full disk");
        QVERIFY2(refused.err.contains(u"full"_s) || refused.err.contains(u"could not"_s),
            qPrintable(refused.describe()));

        // A batch is applied whole or not at all: the offset never runs ahead of what is stored.
        QVERIFY(m_disk->free());
        const Result<QJsonObject> during = m_alice->status();
        QVERIFY2(during, whyNot(during).constData());
        const Result<QList<QJsonObject>> partial = m_alice->history(u"bob"_s);
        QVERIFY2(partial, whyNot(partial).constData());

        const CtlRun caughtUp = m_alice->sync();
        QVERIFY2(caughtUp.ok(), qPrintable(caughtUp.describe()));
        const Result<QList<QJsonObject>> all = m_alice->history(u"bob"_s);
        QVERIFY2(all, whyNot(all).constData());
        int fromBob = 0;
        for (const QJsonObject& message : all.value()) {
            fromBob += message.value(u"sender"_s).toString() == u"bob"_s ? 1 : 0;
        }
        QCOMPARE(fromBob, 60);
        QStringList ids = fieldOf(all.value(), u"id"_s);
        ids.removeDuplicates();
        QCOMPARE(ids.size(), all->size());
        const Result<QJsonObject> after = m_alice->status();
        QVERIFY2(after, whyNot(after).constData());
        QVERIFY(after->value(u"offset"_s).toInteger() >= offsetBefore + 60);
        QVERIFY(during->value(u"offset"_s).toInteger() <= after->value(u"offset"_s).toInteger());
    }

private:
    QTemporaryDir m_root;
    std::unique_ptr<SmallDisk> m_disk;
    std::unique_ptr<ServerProcess> m_server;
    std::unique_ptr<Ctl> m_alice;
    std::unique_ptr<Ctl> m_bob;
};

QTEST_GUILESS_MAIN(TestDiskFull)
#include "tst_disk_full.moc"
