// A full disk under the server's data folder while devices send: the senders are told the
// server could not store (not that it could not be reached), nothing is marked failed, and once
// there is room every message arrives exactly once. The data folder lives on a small tmpfs of
// its own, so the disk really fills; mounting one needs root (as on the build and CI machines).

#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"
#include "tests/support/SmallDisk.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

class TestServerDiskFull : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_root.isValid());
        m_disk = std::make_unique<SmallDisk>(m_root.filePath(u"small-disk"_s));
        if (!m_disk->mount(4)) {
            QSKIP("mounting a 4 MiB tmpfs for the server needs root; run as root to test this");
        }

        m_server = std::make_unique<ServerProcess>(m_disk->filePath(u"server"_s));
        QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));
        m_alice = std::make_unique<Ctl>(m_root.filePath(u"alice"_s), m_server->url());
        m_bob = std::make_unique<Ctl>(m_root.filePath(u"bob"_s), m_server->url());
        for (auto [ctl, name] :
            { std::pair { m_alice.get(), u"alice"_s }, std::pair { m_bob.get(), u"bob"_s } }) {
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

    void sendingToAServerOnAFullDiskSaysWhyAndLosesNothing()
    {
        constexpr int Messages = 20;
        for (int i = 0; i < Messages; ++i) {
            const CtlRun sent = m_alice->send(
                u"bob"_s, u"while the server's disk is full "_s + QString::number(i));
            QVERIFY2(sent.ok(), qPrintable(sent.describe()));
        }
        QVERIFY(m_disk->fill());

        const CtlRun refused = m_alice->sync(3);
        QCOMPARE(refused.exitCode, 3);
        // The server was reached and answered that it could not store; the user is told that.
        QVERIFY2(refused.err.contains(u"the server could not take a message now"_s),
            qPrintable(refused.describe()));
        QVERIFY2(!refused.err.contains(u"could not reach"_s), qPrintable(refused.describe()));
        const Result<QJsonObject> queued = m_alice->status();
        QVERIFY2(queued, whyNot(queued).constData());
        QCOMPARE(queued->value(u"outbox"_s).toInteger(), qint64(Messages));

        QVERIFY(m_disk->free());
        const CtlRun synced = m_alice->sync();
        QVERIFY2(synced.ok(), qPrintable(synced.describe()));
        QVERIFY2(m_bob->sync().ok(), "bob's sync");
        const Result<QList<QJsonObject>> atBob = m_bob->history(u"alice"_s);
        QVERIFY2(atBob, whyNot(atBob).constData());
        QCOMPARE(atBob->size(), Messages);
        QStringList bodies = fieldOf(atBob.value(), u"body"_s);
        bodies.removeDuplicates();
        QCOMPARE(bodies.size(), Messages);
    }

    void aReadOnlyDataFolderStopsTheServerAndIsLeftAsItWas()
    {
        const QString dataDir = m_server->dataDir();
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
        const QByteArray before = contentsOf(QDir(dataDir).filePath(u"server.db"_s));
        QVERIFY(!before.isEmpty());
        QVERIFY(m_disk->setReadOnly(true));

        const ServerRun run = runServerBinary(
            { u"--listen"_s, u"127.0.0.1:0"_s, u"--http-listen"_s, u"off"_s, u"--data"_s, dataDir },
            5000);
        QVERIFY(m_disk->setReadOnly(false));
        QVERIFY2(!run.timedOut, "the server ran on a read-only data folder");
        QVERIFY2(run.exitCode != 0, qPrintable(run.err));
        QVERIFY2(run.err.contains(u"is not writable"_s), qPrintable(run.err));
        QCOMPARE(contentsOf(QDir(dataDir).filePath(u"server.db"_s)), before);

        QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));
    }

private:
    static QByteArray contentsOf(const QString& path)
    {
        QFile file(path);
        return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
    }

    QTemporaryDir m_root;
    std::unique_ptr<SmallDisk> m_disk;
    std::unique_ptr<ServerProcess> m_server;
    std::unique_ptr<Ctl> m_alice;
    std::unique_ptr<Ctl> m_bob;
};

QTEST_GUILESS_MAIN(TestServerDiskFull)
#include "tst_server_disk_full.moc"
