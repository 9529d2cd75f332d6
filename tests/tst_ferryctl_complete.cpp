// ferryctl end to end, as a user runs it: the real ferry-server on loopback and real ferryctl
// processes on profile folders of their own. A thousand messages written offline, queued
// messages that go out after a restart with nobody touching anything, the outbox's list, retry
// and cancel, read state that reaches every device, groups, and devices.

#include "core/ClientStore.h"
#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QTemporaryDir>
#include <QTest>

#include <map>
#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

/// The objects of a `--json` output, one a line.
QList<QJsonObject> jsonLines(const QString& output)
{
    QList<QJsonObject> objects;
    for (const QString& line : output.split(u'\n', Qt::SkipEmptyParts)) {
        objects.append(QJsonDocument::fromJson(line.toUtf8()).object());
    }
    return objects;
}

/// The object whose `key` is `value`, or an empty one.
QJsonObject findBy(const QList<QJsonObject>& objects, const QString& key, const QString& value)
{
    for (const QJsonObject& object : objects) {
        if (object.value(key).toString() == value) {
            return object;
        }
    }
    return {};
}

/// The bodies of the messages (not the membership changes) of a history.
QStringList messageBodies(const QList<QJsonObject>& history)
{
    QStringList bodies;
    for (const QJsonObject& entry : history) {
        if (entry.value(u"kind"_s).toString() == u"message") {
            bodies.append(entry.value(u"body"_s).toString());
        }
    }
    return bodies;
}

QList<qint64> oneTo(qint64 last)
{
    QList<qint64> seqs;
    for (qint64 seq = 1; seq <= last; ++seq) {
        seqs.append(seq);
    }
    return seqs;
}

QStringList sorted(QStringList list)
{
    list.sort();
    return list;
}

} // namespace

class TestFerryctlComplete : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanupTestCase();

    void aThousandMessagesWrittenOfflineArriveOnceInOrderOnEveryDevice();
    void queuedMessagesGoOutAfterARestartWithNobodyDoingAnything();
    void aRefusedMessageCanBeListedRetriedAndCancelled();
    void readStateReachesEveryDeviceAndTheSender();
    void groupMembersComeAndGoAndSeeOnlyWhatTheyWereThereFor();
    void devicesCanBeListedRenamedAndRemoved();

private:
    /// The ferryctl of a device registered in initTestCase.
    Ctl& ctl(const QString& device) { return m_devices.at(device); }
    /// Runs a command on a device and checks it succeeded; its output, or empty on failure.
    CtlRun runOk(const QString& device, const QStringList& arguments);

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    std::map<QString, Ctl> m_devices;
};

CtlRun TestFerryctlComplete::runOk(const QString& device, const QStringList& arguments)
{
    const CtlRun run = ctl(device).run(arguments);
    if (!run.ok()) {
        qWarning("%s", qPrintable(run.describe()));
    }
    return run;
}

void TestFerryctlComplete::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    const struct {
        QString device;
        QString user;
        bool registers;
    } devices[] = {
        { u"alice-laptop"_s, u"alice"_s, true },
        { u"alice-phone"_s, u"alice"_s, false },
        { u"bob"_s, u"bob"_s, true },
        { u"carol"_s, u"carol"_s, true },
        { u"dave"_s, u"dave"_s, true },
        { u"frank-laptop"_s, u"frank"_s, true },
        { u"frank-phone"_s, u"frank"_s, false },
    };
    for (const auto& entry : devices) {
        Ctl device(m_root.filePath(u"profiles/"_s + entry.device), m_server->url());
        const QString deviceName
            = entry.device.section(u'-', 1).isEmpty() ? u"desk"_s : entry.device.section(u'-', 1);
        const CtlRun signedIn = entry.registers ? device.registerUser(entry.user, deviceName)
                                                : device.login(entry.user, deviceName);
        QVERIFY2(signedIn.ok(), qPrintable(signedIn.describe()));
        m_devices.emplace(entry.device, device);
    }
}

void TestFerryctlComplete::init()
{
    // A test that failed half-way may have left the server stopped; the next starts afresh.
    if (!m_server->isRunning()) {
        QVERIFY2(m_server->restart(), qPrintable(m_server->errorString()));
        for (auto& [name, device] : m_devices) {
            device.setServerUrl(m_server->url());
        }
    }
}

void TestFerryctlComplete::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

void TestFerryctlComplete::aThousandMessagesWrittenOfflineArriveOnceInOrderOnEveryDevice()
{
    constexpr int Count = 1000;
    // Written straight into the laptop's store while no ferryctl runs: a thousand `ferryctl
    // send` would take half a minute and test nothing more.
    QStringList ids;
    QStringList bodies;
    {
        Result<std::unique_ptr<ClientStore>> store
            = ClientStore::open(ctl(u"alice-laptop"_s).profileDir());
        QVERIFY2(store, whyNot(store).constData());
        const QString conversation = directConversationId(u"alice"_s, u"carol"_s);
        for (int i = 1; i <= Count; ++i) {
            bodies.append(
                u"offline message "_s + QString::number(i) + u" of "_s + QString::number(Count));
            const Result<StoredMessage> written
                = store.value()->enqueue(conversation, bodies.last().toUtf8());
            QVERIFY2(written, whyNot(written).constData());
            ids.append(MessageId::fromBytes(written->messageId)->toString());
        }
    }

    const CtlRun sent = ctl(u"alice-laptop"_s).sync(60);
    QVERIFY2(sent.ok(), qPrintable(sent.describe()));
    QVERIFY2(sent.err.contains(u"synced: 1000 sent"_s), qPrintable(sent.describe()));
    for (const QString& device : { u"carol"_s, u"alice-phone"_s }) {
        const CtlRun synced = ctl(device).sync(60);
        QVERIFY2(synced.ok(), qPrintable(synced.describe()));
    }

    const struct {
        QString device;
        QString peer;
        QString state;
    } expectations[] = {
        { u"carol"_s, u"alice"_s, u"received"_s },
        // The phone syncs after carol, whose device reported the messages delivered.
        { u"alice-phone"_s, u"carol"_s, u"delivered"_s },
        { u"alice-laptop"_s, u"carol"_s, u"sent"_s },
    };
    for (const auto& expected : expectations) {
        const Result<QList<QJsonObject>> history = ctl(expected.device).history(expected.peer);
        QVERIFY2(history, whyNot(history).constData());
        const QByteArray where = expected.device.toUtf8() + " holds "
            + QByteArray::number(history->size())
            + " entries, the first: " + describeHistory(history->mid(0, 3)).toUtf8();
        QVERIFY2(fieldOf(history.value(), u"id"_s) == ids, where.constData());
        QVERIFY2(fieldOf(history.value(), u"body"_s) == bodies, where.constData());
        QVERIFY2(seqsOf(history.value()) == oneTo(Count), where.constData());
        QVERIFY2(fieldOf(history.value(), u"state"_s) == QStringList(Count, expected.state),
            where.constData());
    }
}

void TestFerryctlComplete::queuedMessagesGoOutAfterARestartWithNobodyDoingAnything()
{
    Ctl& laptop = ctl(u"alice-laptop"_s);
    const quint16 port = m_server->port();
    QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    QStringList ids;
    for (const QString& text : { u"queued while the server was down, 1"_s,
             u"queued while the server was down, 2"_s, u"queued while the server was down, 3"_s }) {
        const CtlRun send = laptop.send(u"dave"_s, text);
        QVERIFY2(send.ok(), qPrintable(send.describe()));
        ids.append(send.out.trimmed());
    }

    // A listen started while the server is away, as after a reboot: it keeps trying.
    std::unique_ptr<QProcess> listen = laptop.start({ u"listen"_s });
    QVERIFY2(listen->waitForStarted(10'000), qPrintable(listen->errorString()));
    const auto waiting = [&] {
        const Result<QJsonObject> status = laptop.status();
        return status && status->value(u"state"_s).toString().startsWith(u"WaitingToRetry"_s);
    };
    QVERIFY2(QTest::qWaitFor(waiting, 15'000), "listen never reported waiting to retry");

    QVERIFY2(m_server->restart(), qPrintable(m_server->errorString()));
    if (m_server->port() != port) {
        listen->kill();
        listen->waitForFinished(10'000);
        QSKIP("another program took the server's port while it was down; listen, which was "
              "told the old address, cannot be expected to find the new one");
    }

    // Nothing is done to alice's laptop: dave looks until the messages are there. The listen's
    // backoff may have grown to a few seconds while the server was down.
    QList<QJsonObject> atDave;
    const auto arrived = [&] {
        if (!ctl(u"dave"_s).sync().ok()) {
            return false;
        }
        const Result<QList<QJsonObject>> history = ctl(u"dave"_s).history(u"alice"_s);
        atDave = history ? history.value() : QList<QJsonObject>();
        return atDave.size() >= ids.size();
    };
    QVERIFY2(QTest::qWaitFor(arrived, 40'000), qPrintable(describeHistory(atDave)));
    QCOMPARE(fieldOf(atDave, u"id"_s), ids);
    QCOMPARE(seqsOf(atDave), oneTo(ids.size()));

    const auto drained = [&] {
        const Result<QJsonObject> status = laptop.status();
        return status && status->value(u"outbox"_s).toInteger() == 0;
    };
    QVERIFY2(QTest::qWaitFor(drained, 15'000), "the laptop's outbox never emptied");
    listen->terminate();
    QVERIFY(listen->waitForFinished(10'000));
    QCOMPARE(listen->exitStatus(), QProcess::NormalExit);
    QCOMPARE(listen->exitCode(), 0);
}

void TestFerryctlComplete::aRefusedMessageCanBeListedRetriedAndCancelled()
{
    Ctl& laptop = ctl(u"alice-laptop"_s);
    const CtlRun toCancel = laptop.send(u"nobody-one"_s, u"to nobody, then cancelled"_s);
    const CtlRun toRetry = laptop.send(u"nobody-two"_s, u"to nobody, then retried"_s);
    QVERIFY2(toCancel.ok(), qPrintable(toCancel.describe()));
    QVERIFY2(toRetry.ok(), qPrintable(toRetry.describe()));
    const QString cancelId = toCancel.out.trimmed();
    const QString retryId = toRetry.out.trimmed();

    const CtlRun refused = laptop.sync();
    QVERIFY2(refused.exitCode == 5, qPrintable(refused.describe()));
    QVERIFY2(refused.err.contains(cancelId + u" was refused"_s)
            && refused.err.contains(retryId + u" was refused"_s),
        qPrintable(refused.describe()));

    CtlRun outbox = runOk(u"alice-laptop"_s, { u"outbox"_s, u"--json"_s });
    QVERIFY(outbox.ok());
    QList<QJsonObject> listed = jsonLines(outbox.out);
    QCOMPARE(fieldOf(listed, u"id"_s), QStringList({ cancelId, retryId }));
    QCOMPARE(fieldOf(listed, u"state"_s), QStringList({ u"failed"_s, u"failed"_s }));
    QVERIFY2(
        findBy(listed, u"id"_s, cancelId).value(u"failure"_s).toString().contains(u"nobody-one"_s),
        qPrintable(outbox.out));
    QVERIFY2(
        findBy(listed, u"id"_s, retryId).value(u"failure"_s).toString().contains(u"nobody-two"_s),
        qPrintable(outbox.out));

    // A unique start of the id is enough, as with git's hashes.
    const CtlRun cancelled
        = runOk(u"alice-laptop"_s, { u"outbox"_s, u"cancel"_s, cancelId.left(28) });
    QVERIFY(cancelled.ok());
    QCOMPARE(cancelled.out.trimmed(), u"cancelled: "_s + cancelId);
    outbox = runOk(u"alice-laptop"_s, { u"outbox"_s, u"--json"_s });
    listed = jsonLines(outbox.out);
    QCOMPARE(fieldOf(listed, u"id"_s), QStringList({ retryId }));

    const CtlRun retried = runOk(u"alice-laptop"_s, { u"outbox"_s, u"retry"_s, retryId });
    QVERIFY(retried.ok());
    QCOMPARE(retried.out.trimmed(), u"queued again: "_s + retryId);
    outbox = runOk(u"alice-laptop"_s, { u"outbox"_s, u"--json"_s });
    listed = jsonLines(outbox.out);
    QCOMPARE(fieldOf(listed, u"id"_s), QStringList({ retryId }));
    QCOMPARE(fieldOf(listed, u"state"_s), QStringList({ u"queued"_s }));

    // Nobody-two still does not exist: sent again, refused again, and kept.
    const CtlRun refusedAgain = laptop.sync();
    QVERIFY2(refusedAgain.exitCode == 5, qPrintable(refusedAgain.describe()));
    outbox = runOk(u"alice-laptop"_s, { u"outbox"_s, u"--json"_s });
    listed = jsonLines(outbox.out);
    QCOMPARE(fieldOf(listed, u"id"_s), QStringList({ retryId }));
    QCOMPARE(fieldOf(listed, u"state"_s), QStringList({ u"failed"_s }));
    QVERIFY2(listed.first().value(u"failure"_s).toString().contains(u"nobody-two"_s),
        qPrintable(outbox.out));

    // The cancelled message is gone for good, from the conversation too.
    const Result<QList<QJsonObject>> history = laptop.history(u"nobody-one"_s);
    QVERIFY2(history, whyNot(history).constData());
    QVERIFY2(history->isEmpty(), qPrintable(describeHistory(history.value())));
}

void TestFerryctlComplete::readStateReachesEveryDeviceAndTheSender()
{
    const QString conversation = directConversationId(u"alice"_s, u"bob"_s);
    QStringList bobsIds;
    for (const QString& text : { u"are you there?"_s, u"hello?"_s }) {
        const CtlRun send = ctl(u"bob"_s).send(u"alice"_s, text);
        QVERIFY2(send.ok(), qPrintable(send.describe()));
        bobsIds.append(send.out.trimmed());
    }
    for (const QString& device : { u"bob"_s, u"alice-laptop"_s, u"alice-phone"_s }) {
        const CtlRun synced = ctl(device).sync();
        QVERIFY2(synced.ok(), qPrintable(synced.describe()));
    }
    const auto unreadOn = [&](const QString& device) {
        const CtlRun listed = runOk(device, { u"conversations"_s, u"--json"_s });
        const QJsonObject summary = findBy(jsonLines(listed.out), u"conversation"_s, conversation);
        return summary.isEmpty() ? -1 : summary.value(u"unread"_s).toInt();
    };
    QCOMPARE(unreadOn(u"alice-phone"_s), 2);

    // Read on the laptop; the phone only hears of it from the server.
    const CtlRun read = runOk(u"alice-laptop"_s, { u"read"_s, u"bob"_s });
    QVERIFY(read.ok());
    QCOMPARE(unreadOn(u"alice-laptop"_s), 0);
    for (const QString& device : { u"alice-laptop"_s, u"alice-phone"_s, u"bob"_s }) {
        const CtlRun synced = ctl(device).sync();
        QVERIFY2(synced.ok(), qPrintable(synced.describe()));
    }
    QCOMPARE(unreadOn(u"alice-phone"_s), 0);
    QCOMPARE(unreadOn(u"alice-laptop"_s), 0);

    const Result<QList<QJsonObject>> atBob = ctl(u"bob"_s).history(u"alice"_s);
    QVERIFY2(atBob, whyNot(atBob).constData());
    for (const QString& id : std::as_const(bobsIds)) {
        QVERIFY2(findBy(atBob.value(), u"id"_s, id).value(u"state"_s).toString() == u"read",
            qPrintable(describeHistory(atBob.value())));
    }
}

void TestFerryctlComplete::groupMembersComeAndGoAndSeeOnlyWhatTheyWereThereFor()
{
    const CtlRun created = runOk(u"alice-laptop"_s,
        { u"group"_s, u"create"_s, u"Weekend plans"_s, u"--members"_s, u"bob,carol"_s });
    QVERIFY(created.ok());
    const QString group = created.out.trimmed();
    QVERIFY2(group.startsWith(u"group:"_s), qPrintable(created.describe()));

    QVERIFY(ctl(u"alice-laptop"_s).send(group, u"before the change"_s).ok());
    QVERIFY(ctl(u"alice-laptop"_s).sync().ok());
    for (const QString& device : { u"bob"_s, u"carol"_s }) {
        QVERIFY(ctl(device).sync().ok());
    }
    QVERIFY(runOk(u"alice-laptop"_s, { u"group"_s, u"add"_s, group, u"dave"_s }).ok());
    QVERIFY(runOk(u"alice-laptop"_s, { u"group"_s, u"remove"_s, group, u"carol"_s }).ok());
    QVERIFY(ctl(u"alice-laptop"_s).send(group, u"after the change"_s).ok());
    QVERIFY(ctl(u"alice-laptop"_s).sync().ok());
    for (const QString& device : { u"bob"_s, u"carol"_s, u"dave"_s }) {
        const CtlRun synced = ctl(device).sync();
        QVERIFY2(synced.ok(), qPrintable(synced.describe()));
    }

    const struct {
        QString device;
        QStringList bodies;
        bool left;
    } expectations[] = {
        { u"bob"_s, { u"before the change"_s, u"after the change"_s }, false },
        // Removed: keeps what was said while a member, gets nothing said after.
        { u"carol"_s, { u"before the change"_s }, true },
        // Added later: gets what is said from then on.
        { u"dave"_s, { u"after the change"_s }, false },
    };
    for (const auto& expected : expectations) {
        const Result<QList<QJsonObject>> history = ctl(expected.device).history(group);
        QVERIFY2(history, whyNot(history).constData());
        const QByteArray holds
            = (expected.device + u" holds:\n"_s + describeHistory(history.value())).toUtf8();
        QVERIFY2(messageBodies(history.value()) == expected.bodies, holds.constData());
        const CtlRun info = runOk(expected.device, { u"group"_s, u"info"_s, group, u"--json"_s });
        QVERIFY(info.ok());
        QVERIFY2(jsonLines(info.out).value(0).value(u"left"_s).toBool() == expected.left,
            qPrintable(info.out));
    }
    // What happened to the group is in everyone's history, in words.
    const Result<QList<QJsonObject>> atBob = ctl(u"bob"_s).history(group);
    QVERIFY2(atBob, whyNot(atBob).constData());
    QVERIFY2(fieldOf(atBob.value(), u"body"_s).contains(u"alice removed carol"_s),
        qPrintable(describeHistory(atBob.value())));

    const CtlRun left = runOk(u"bob"_s, { u"group"_s, u"leave"_s, group });
    QVERIFY(left.ok());
    QVERIFY(ctl(u"alice-laptop"_s).sync().ok());
    const CtlRun info = runOk(u"alice-laptop"_s, { u"group"_s, u"info"_s, group, u"--json"_s });
    QVERIFY(info.ok());
    QStringList members;
    for (const QJsonValue& member : jsonLines(info.out).value(0).value(u"members"_s).toArray()) {
        members.append(member.toString());
    }
    QCOMPARE(sorted(members), QStringList({ u"alice"_s, u"dave"_s }));
    const CtlRun bobsInfo = runOk(u"bob"_s, { u"group"_s, u"info"_s, group, u"--json"_s });
    QVERIFY(jsonLines(bobsInfo.out).value(0).value(u"left"_s).toBool());
}

void TestFerryctlComplete::devicesCanBeListedRenamedAndRemoved()
{
    const auto listDevices = [&] {
        return jsonLines(runOk(u"frank-laptop"_s, { u"devices"_s, u"--json"_s }).out);
    };
    QList<QJsonObject> devices = listDevices();
    QCOMPARE(sorted(fieldOf(devices, u"name"_s)), QStringList({ u"laptop"_s, u"phone"_s }));
    const QJsonObject laptop = findBy(devices, u"name"_s, u"laptop"_s);
    const QJsonObject phone = findBy(devices, u"name"_s, u"phone"_s);
    QVERIFY(laptop.value(u"current"_s).toBool());
    QVERIFY(!phone.value(u"current"_s).toBool());
    const QString phoneId = QString::number(phone.value(u"id"_s).toInteger());

    const CtlRun renamed
        = runOk(u"frank-laptop"_s, { u"devices"_s, u"rename"_s, phoneId, u"old phone"_s });
    QVERIFY(renamed.ok());
    devices = listDevices();
    QCOMPARE(sorted(fieldOf(devices, u"name"_s)), QStringList({ u"laptop"_s, u"old phone"_s }));

    // The phone still works until it is removed.
    QVERIFY(ctl(u"frank-phone"_s).sync().ok());
    const CtlRun removed = runOk(u"frank-laptop"_s, { u"devices"_s, u"remove"_s, phoneId });
    QVERIFY(removed.ok());
    QCOMPARE(fieldOf(listDevices(), u"name"_s), QStringList({ u"laptop"_s }));

    const CtlRun signedOut = ctl(u"frank-phone"_s).sync();
    QVERIFY2(signedOut.exitCode == 4, qPrintable(signedOut.describe()));
    QVERIFY2(signedOut.err.contains(u"removed"_s), qPrintable(signedOut.describe()));
}

QTEST_GUILESS_MAIN(TestFerryctlComplete)
#include "tst_ferryctl_complete.moc"
