// A profile database in a bad way, through the real ferryctl: damaged (cut short, or with
// garbage over its middle), read-only, locked by another process, or written by an older Ferry.
// Damage is set aside whole, never overwritten, and what can be read of it carried over; a
// read-only or locked profile is reported as such and left exactly as it was; an old one is
// migrated with its data.

#include "core/ClientStore.h"
#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"
#include "tests/support/SqliteFile.h"
#include "tests/support/TestFiles.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QProcess>
#include <QRandomGenerator>
#include <QScopeGuard>
#include <QSqlError>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>

#include <memory>
#include <unistd.h>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

const QString DatabaseFile = u"ferry.db"_s;

/// The objects of a `--json` output, one a line.
QList<QJsonObject> jsonLines(const QString& output)
{
    QList<QJsonObject> objects;
    for (const QString& line : output.split(u'\n', Qt::SkipEmptyParts)) {
        objects.append(QJsonDocument::fromJson(line.toUtf8()).object());
    }
    return objects;
}

/// How a test damages a database file.
enum class Damage {
    CutInHalf, ///< the file ends half-way, in the middle of a page
    GarbageInTheMiddle, ///< 8 KiB of random bytes over the middle of the file
    /// The same in a file first switched to a rollback journal, as a copy made by some other
    /// tool may be: opening it would rewrite its header to switch it back.
    GarbageInTheMiddleOfARollbackJournalFile
};

Result<Done> damageFile(const QString& path, Damage kind)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadWrite)) {
        return Error { u"files"_s, u"could not open "_s + path + u": "_s + file.errorString() };
    }
    const qint64 size = file.size();
    if (kind == Damage::CutInHalf) {
        return file.resize(size / 2) ? Result<Done>(Done {})
                                     : Error { u"files"_s, file.errorString() };
    }
    if (kind == Damage::GarbageInTheMiddleOfARollbackJournalFile) {
        file.close();
        {
            SqliteFile other(path);
            QSqlQuery query(other.database());
            if (!other.isOpen() || !query.exec(u"PRAGMA journal_mode = DELETE"_s) || !query.next()
                || query.value(0).toString() != u"delete"_s) {
                return Error { u"files"_s,
                    u"could not switch "_s + path + u" to a rollback journal"_s };
            }
        }
        if (!file.open(QIODevice::ReadWrite)) {
            return Error { u"files"_s, file.errorString() };
        }
    }
    // The same garbage every run, so that every run damages the same pages the same way.
    QRandomGenerator random(20'240'601);
    QByteArray garbage(8192, Qt::Uninitialized);
    random.fillRange(reinterpret_cast<quint32*>(garbage.data()), garbage.size() / 4);
    if (!file.seek(file.size() / 2) || file.write(garbage) != garbage.size()) {
        return Error { u"files"_s,
            u"could not overwrite "_s + path + u": "_s + file.errorString() };
    }
    return Done {};
}

/// The folders named damaged-* in a profile.
QStringList damagedCopies(const QString& profile)
{
    return QDir(profile).entryList({ u"damaged-*"_s }, QDir::Dirs | QDir::NoDotAndDotDot);
}

/// The file names in a folder and the bytes of each, to tell that nothing was changed.
QMap<QString, QByteArray> folderContents(const QString& folder)
{
    QMap<QString, QByteArray> contents;
    const QDir dir(folder);
    for (const QString& name : dir.entryList(QDir::Files | QDir::Hidden)) {
        const Result<QByteArray> bytes = readFileBytes(dir.absoluteFilePath(name));
        contents.insert(name, bytes ? bytes.value() : QByteArray("(unreadable)"));
    }
    return contents;
}

/// Runs a program to its end, at most ten seconds; true when it exited with 0.
bool runProgram(const QString& program, const QStringList& arguments)
{
    QProcess process;
    process.start(program, arguments);
    return process.waitForFinished(10'000) && process.exitStatus() == QProcess::NormalExit
        && process.exitCode() == 0;
}

} // namespace

Q_DECLARE_METATYPE(Damage)

class TestProfileDamage : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void aDamagedDatabaseIsSetAsideAndWhatCanBeReadIsRecovered_data();
    void aDamagedDatabaseIsSetAsideAndWhatCanBeReadIsRecovered();
    void aReadOnlyProfileIsReportedAndLeftAsItWas();
    void aLockedProfileIsReportedAndLeftAsItWas();
    void aSchemaOneDatabaseIsMigratedAndItsQueuedMessageStillGoesOut();

private:
    /// A fresh copy of alice's profile as initTestCase left it, in a folder of its own.
    Result<Ctl> copyOfAlice(const QString& name) const;

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    std::unique_ptr<Ctl> m_bob;
    QString m_aliceBase; ///< alice's profile folder, never run on after initTestCase
    QStringList m_bobsIds; ///< what bob wrote to alice, in order
    QStringList m_queuedIds; ///< what alice wrote to bob and has not sent, in order
};

Result<Ctl> TestProfileDamage::copyOfAlice(const QString& name) const
{
    const QString profile = m_root.filePath(u"profiles/"_s + name);
    const Result<Done> copied = copyFolderFiles(m_aliceBase, profile);
    if (!copied) {
        return copied.error();
    }
    return Ctl(profile, m_server->url());
}

void TestProfileDamage::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));
    m_aliceBase = m_root.filePath(u"profiles/alice-base"_s);
    const Ctl alice(m_aliceBase, m_server->url());
    m_bob = std::make_unique<Ctl>(m_root.filePath(u"profiles/bob"_s), m_server->url());
    const CtlRun aliceRegistered = alice.registerUser(u"alice"_s, u"laptop"_s);
    QVERIFY2(aliceRegistered.ok(), qPrintable(aliceRegistered.describe()));
    const CtlRun bobRegistered = m_bob->registerUser(u"bob"_s, u"desk"_s);
    QVERIFY2(bobRegistered.ok(), qPrintable(bobRegistered.describe()));

    // A history of some thirty pages, so that the middle of the file holds old messages, and
    // three queued messages after it, whose rows are the newest and sit at the end.
    const QString padding(1000, u'.');
    for (int i = 1; i <= 40; ++i) {
        const CtlRun send
            = m_bob->send(u"alice"_s, u"bob's message "_s + QString::number(i) + padding);
        QVERIFY2(send.ok(), qPrintable(send.describe()));
        m_bobsIds.append(send.out.trimmed());
    }
    QVERIFY(m_bob->sync().ok());
    QVERIFY(alice.sync().ok());
    for (int i = 1; i <= 3; ++i) {
        const CtlRun send = alice.send(u"bob"_s, u"queued by alice, "_s + QString::number(i));
        QVERIFY2(send.ok(), qPrintable(send.describe()));
        m_queuedIds.append(send.out.trimmed());
    }
    // Closed cleanly, the profile is the database file alone: its write-ahead log was folded in.
    QCOMPARE(QDir(m_aliceBase).entryList(QDir::Files), QStringList({ DatabaseFile }));
}

void TestProfileDamage::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

void TestProfileDamage::aDamagedDatabaseIsSetAsideAndWhatCanBeReadIsRecovered_data()
{
    QTest::addColumn<QString>("folder");
    QTest::addColumn<Damage>("damage");
    QTest::addColumn<QStringList>("nextCommand");
    QTest::addColumn<bool>("everythingQueuedIsReadable");

    // Cut inside a page, the file is no database SQLite will read at all: opening it fails.
    QTest::newRow("cut in half, found on opening")
        << u"cut-in-half"_s << Damage::CutInHalf << QStringList { u"status"_s } << false;
    // The middle holds old messages: opening reads no page of them; what reads them finds out.
    QTest::newRow("garbage over the middle, found by the command that reads it")
        << u"garbage-found-by-history"_s << Damage::GarbageInTheMiddle
        << QStringList { u"history"_s, u"bob"_s } << true;
    // A file of ours not in WAL mode is checked whole before it is switched (which rewrites its
    // header): the damage is found on opening, and the copy kept aside is the file as it was.
    QTest::newRow("garbage over the middle of a rollback-journal file, found on opening")
        << u"garbage-rollback-journal"_s << Damage::GarbageInTheMiddleOfARollbackJournalFile
        << QStringList { u"status"_s } << true;
    QTest::newRow("garbage over the middle, found by repair")
        << u"garbage-found-by-repair"_s << Damage::GarbageInTheMiddle << QStringList { u"repair"_s }
        << true;
}

void TestProfileDamage::aDamagedDatabaseIsSetAsideAndWhatCanBeReadIsRecovered()
{
    QFETCH(QString, folder);
    QFETCH(Damage, damage);
    QFETCH(QStringList, nextCommand);
    QFETCH(bool, everythingQueuedIsReadable);
    Result<Ctl> alice = copyOfAlice(folder);
    QVERIFY2(alice, whyNot(alice).constData());
    const QString database = QDir(alice->profileDir()).filePath(DatabaseFile);
    const Result<Done> damaged = damageFile(database, damage);
    QVERIFY2(damaged, whyNot(damaged).constData());
    const Result<QByteArray> damagedBytes = readFileBytes(database);
    QVERIFY2(damagedBytes, whyNot(damagedBytes).constData());

    // The damaged file is kept whole where the user can find it, byte for byte as it was.
    const CtlRun found = alice->run(nextCommand);
    const QStringList copies = damagedCopies(alice->profileDir());
    QVERIFY2(copies.size() == 1,
        qPrintable(u"no damaged-* folder in the profile after "_s + found.describe()));
    const Result<QByteArray> keptBytes
        = readFileBytes(QDir(alice->profileDir()).filePath(copies.first() + u'/' + DatabaseFile));
    QVERIFY2(keptBytes, whyNot(keptBytes).constData());
    QVERIFY2(keptBytes.value() == damagedBytes.value(), "the damaged file was changed");
    QVERIFY2(found.err.contains(u"damaged"_s), qPrintable(found.describe()));

    // Queued messages come back under their own ids, so the server can recognise any it has.
    const CtlRun outbox = alice->run({ u"outbox"_s, u"--json"_s });
    QVERIFY2(outbox.ok(), qPrintable(outbox.describe()));
    const QStringList recovered = fieldOf(jsonLines(outbox.out), u"id"_s);
    if (everythingQueuedIsReadable) {
        QCOMPARE(recovered, m_queuedIds);
    }
    for (const QString& id : recovered) {
        QVERIFY2(
            m_queuedIds.contains(id), qPrintable(u"recovered a message never written: "_s + id));
    }

    // With the account gone too, the profile signs in again as a new device of alice's.
    const Result<QJsonObject> status = alice->status();
    QVERIFY2(status, whyNot(status).constData());
    if (status->value(u"user"_s).isNull()) {
        QVERIFY2(!everythingQueuedIsReadable, "the account was lost though its page was intact");
        QVERIFY2(found.err.contains(u"log in again"_s), qPrintable(found.describe()));
        const CtlRun login = alice->login(u"alice"_s, u"laptop after the damage"_s);
        QVERIFY2(login.ok(), qPrintable(login.describe()));
    }

    // The rest comes from the server: every message of the conversation, once, in order.
    const CtlRun synced = alice->sync();
    QVERIFY2(synced.ok(), qPrintable(synced.describe()));
    const Result<QList<QJsonObject>> history = alice->history(u"bob"_s);
    QVERIFY2(history, whyNot(history).constData());
    const QStringList ids = fieldOf(history.value(), u"id"_s);
    const QByteArray holds = describeHistory(history->mid(0, 3)).toUtf8();
    QVERIFY2(ids.mid(0, m_bobsIds.size()) == m_bobsIds, holds.constData());
    for (const QString& id : recovered) {
        QVERIFY2(ids.count(id) == 1, qPrintable(id));
    }
    QList<qint64> seqs;
    for (qint64 seq = 1; seq <= ids.size(); ++seq) {
        seqs.append(seq);
    }
    QCOMPARE(seqsOf(history.value()), seqs);
    QCOMPARE(status->value(u"outbox"_s).toInteger(), qint64(recovered.size()));
    QCOMPARE(alice->status()->value(u"outbox"_s).toInteger(), qint64(0));
}

void TestProfileDamage::aReadOnlyProfileIsReportedAndLeftAsItWas()
{
    Result<Ctl> alice = copyOfAlice(u"read-only"_s);
    QVERIFY2(alice, whyNot(alice).constData());
    const QString profile = alice->profileDir();
    const QString database = QDir(profile).filePath(DatabaseFile);
    QVERIFY(QFile::setPermissions(
        database, QFileDevice::ReadOwner | QFileDevice::ReadGroup | QFileDevice::ReadOther));
    QVERIFY(QFile::setPermissions(profile,
        QFileDevice::ReadOwner | QFileDevice::ExeOwner | QFileDevice::ReadGroup
            | QFileDevice::ExeGroup | QFileDevice::ReadOther | QFileDevice::ExeOther));
    // Permissions do not stop root, who runs the tests on many CI machines; the immutable
    // attribute does. Undone at the end whatever happens, or the folder could not be deleted.
    auto undo = qScopeGuard([&] {
        runProgram(u"chattr"_s, { u"-i"_s, database, profile });
        QFile::setPermissions(
            profile, QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);
    });
    if (::geteuid() == 0 && !runProgram(u"chattr"_s, { u"+i"_s, database, profile })) {
        QSKIP("running as root, where permissions do not stop writes, and chattr +i is not "
              "available here to make the profile read-only");
    }
    const QMap<QString, QByteArray> before = folderContents(profile);
    const QFile::Permissions folderPermissions = QFile::permissions(profile);

    const CtlRun send = alice->send(u"bob"_s, u"written to a read-only profile"_s);
    QVERIFY2(send.exitCode == 1, qPrintable(send.describe()));
    QVERIFY2(send.err.contains(u"read-only"_s) && send.err.contains(u"nothing was changed"_s),
        qPrintable(send.describe()));
    QVERIFY2(!send.err.contains(u"damaged"_s), qPrintable(send.describe()));
    const CtlRun sync = alice->sync(5);
    QVERIFY2(sync.exitCode == 1, qPrintable(sync.describe()));
    QVERIFY2(sync.err.contains(u"read-only"_s), qPrintable(sync.describe()));

    QCOMPARE(folderContents(profile).keys(), before.keys());
    QVERIFY2(folderContents(profile) == before, "a file of the read-only profile was changed");
    QCOMPARE(QFile::permissions(profile), folderPermissions);
    QVERIFY(damagedCopies(profile).isEmpty());
}

void TestProfileDamage::aLockedProfileIsReportedAndLeftAsItWas()
{
    Result<Ctl> alice = copyOfAlice(u"locked"_s);
    QVERIFY2(alice, whyNot(alice).constData());
    const CtlRun outboxBefore = alice->run({ u"outbox"_s, u"--json"_s });
    QVERIFY2(outboxBefore.ok(), qPrintable(outboxBefore.describe()));

    // Another process holds the write lock, as a second ferryctl in the middle of a long write
    // would. In write-ahead-log mode readers go on; writers wait, then give up.
    {
        const SqliteFile other(QDir(alice->profileDir()).filePath(DatabaseFile));
        QVERIFY2(other.isOpen(), qPrintable(other.openError()));
        QSqlQuery lock(other.database());
        QVERIFY2(lock.exec(u"BEGIN EXCLUSIVE"_s), qPrintable(lock.lastError().text()));

        const CtlRun send = alice->send(u"bob"_s, u"written while the profile is locked"_s);
        QVERIFY2(send.exitCode == 1, qPrintable(send.describe()));
        QVERIFY2(send.err.contains(u"locked"_s), qPrintable(send.describe()));
        QVERIFY2(!send.err.contains(u"damaged"_s), qPrintable(send.describe()));
        const CtlRun status = alice->run({ u"status"_s, u"--json"_s });
        QVERIFY2(status.ok(), qPrintable(status.describe()));

        QVERIFY(lock.exec(u"ROLLBACK"_s));
    }

    const CtlRun outboxAfter = alice->run({ u"outbox"_s, u"--json"_s });
    QVERIFY2(outboxAfter.ok(), qPrintable(outboxAfter.describe()));
    QCOMPARE(outboxAfter.out, outboxBefore.out);
    QCOMPARE(fieldOf(jsonLines(outboxAfter.out), u"id"_s), m_queuedIds);
    QVERIFY(damagedCopies(alice->profileDir()).isEmpty());
}

void TestProfileDamage::aSchemaOneDatabaseIsMigratedAndItsQueuedMessageStillGoesOut()
{
    // A real device of gina's, whose identity goes into a database written as Ferry's first
    // schema wrote it: the statements of the first migration, a version of 1.
    const Ctl scratch(m_root.filePath(u"profiles/gina-scratch"_s), m_server->url());
    const CtlRun registered = scratch.registerUser(u"gina"_s, u"old laptop"_s);
    QVERIFY2(registered.ok(), qPrintable(registered.describe()));
    std::optional<AccountInfo> account;
    {
        Result<std::unique_ptr<ClientStore>> store = ClientStore::open(scratch.profileDir());
        QVERIFY2(store, whyNot(store).constData());
        account = store.value()->account();
    }
    QVERIFY(account);

    const Ctl gina(m_root.filePath(u"profiles/gina-old"_s), m_server->url());
    QVERIFY(QDir().mkpath(gina.profileDir()));
    const QByteArray messageId = MessageId::generate().bytes();
    const QString messageIdText = MessageId::fromBytes(messageId)->toString();
    const QString conversation = directConversationId(u"gina"_s, u"bob"_s);
    {
        const SqliteFile old(QDir(gina.profileDir()).filePath(DatabaseFile));
        QVERIFY2(old.isOpen(), qPrintable(old.openError()));
        QSqlQuery query(old.database());
        const QStringList schemaOne = {
            u"CREATE TABLE account (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " server_url TEXT NOT NULL, user_name TEXT NOT NULL, device_id INTEGER NOT NULL,"
            " device_token BLOB NOT NULL)"_s,
            u"CREATE TABLE sync_state (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " event_offset INTEGER NOT NULL)"_s,
            u"INSERT INTO sync_state (id, event_offset) VALUES (1, 0)"_s,
            u"CREATE TABLE messages (local_id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " message_id BLOB NOT NULL UNIQUE, conversation_id TEXT NOT NULL,"
            " sender TEXT NOT NULL, body BLOB NOT NULL, seq INTEGER, state INTEGER NOT NULL,"
            " server_time_ms INTEGER, written_ms INTEGER NOT NULL, failure_reason TEXT)"_s,
            u"CREATE INDEX messages_by_conversation ON messages (conversation_id, seq, local_id)"_s,
            u"CREATE INDEX messages_outbox ON messages (local_id) WHERE state = 0"_s,
            u"PRAGMA application_id = 1179800153"_s,
            u"PRAGMA user_version = 1"_s,
        };
        for (const QString& statement : schemaOne) {
            QVERIFY2(
                query.exec(statement), qPrintable(statement + u": "_s + query.lastError().text()));
        }
        query.prepare(u"INSERT INTO account (id, server_url, user_name, device_id, device_token)"
                      " VALUES (1, ?, ?, ?, ?)"_s);
        query.addBindValue(account->serverUrl);
        query.addBindValue(account->userName);
        query.addBindValue(static_cast<qint64>(account->deviceId));
        query.addBindValue(account->deviceToken);
        QVERIFY2(query.exec(), qPrintable(query.lastError().text()));
        query.prepare(u"INSERT INTO messages (message_id, conversation_id, sender, body, state,"
                      " written_ms) VALUES (?, ?, 'gina', 'written before the upgrade', 0, ?)"_s);
        query.addBindValue(messageId);
        query.addBindValue(conversation);
        query.addBindValue(QDateTime::currentMSecsSinceEpoch());
        QVERIFY2(query.exec(), qPrintable(query.lastError().text()));
    }

    const Result<QJsonObject> status = gina.status();
    QVERIFY2(status, whyNot(status).constData());
    QCOMPARE(status->value(u"user"_s).toString(), u"gina"_s);
    QCOMPARE(status->value(u"device"_s).toInteger(), qint64(account->deviceId));
    QCOMPARE(status->value(u"outbox"_s).toInteger(), qint64(1));
    {
        const SqliteFile upgraded(
            QDir(gina.profileDir()).filePath(DatabaseFile), SqliteFile::Access::ReadOnly);
        QVERIFY2(upgraded.isOpen(), qPrintable(upgraded.openError()));
        QSqlQuery query(upgraded.database());
        QVERIFY(query.exec(u"PRAGMA user_version"_s) && query.next());
        QCOMPARE(query.value(0).toInt(), ClientStore::SchemaVersion);
    }

    const Result<QList<QJsonObject>> queued = gina.history(u"bob"_s);
    QVERIFY2(queued, whyNot(queued).constData());
    QCOMPARE(fieldOf(queued.value(), u"id"_s), QStringList({ messageIdText }));
    QCOMPARE(fieldOf(queued.value(), u"state"_s), QStringList({ u"queued"_s }));
    QCOMPARE(fieldOf(queued.value(), u"body"_s), QStringList({ u"written before the upgrade"_s }));

    const CtlRun synced = gina.sync();
    QVERIFY2(synced.ok() && synced.err.contains(u"1 sent"_s), qPrintable(synced.describe()));
    QVERIFY(m_bob->sync().ok());
    const Result<QList<QJsonObject>> atBob = m_bob->history(u"gina"_s);
    QVERIFY2(atBob, whyNot(atBob).constData());
    QCOMPARE(fieldOf(atBob.value(), u"id"_s), QStringList({ messageIdText }));
    QCOMPARE(fieldOf(atBob.value(), u"body"_s), QStringList({ u"written before the upgrade"_s }));
    QCOMPARE(seqsOf(atBob.value()), QList<qint64>({ 1 }));
}

QTEST_GUILESS_MAIN(TestProfileDamage)
#include "tst_profile_damage.moc"
