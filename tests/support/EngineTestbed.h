#pragma once

#include "core/ClientStore.h"
#include "core/Result.h"
#include "sync/SyncEngine.h"
#include "tests/support/ServerProcess.h"

#include <QByteArrayList>
#include <QList>
#include <QSignalSpy>
#include <QString>
#include <QStringList>
#include <QTemporaryDir>
#include <QUrl>

#include <map>
#include <memory>

namespace ferry::test {

/// Engine settings with short timings (backoff from 50 ms up to 500 ms, a ping every 300 ms
/// answered within 600 ms), so that a test's fault is noticed and mended in about a second.
SyncEngine::Settings quickEngineSettings();

/// quickEngineSettings() for an engine that signs in with a password: the password hash is slow
/// by design, slower still on a loaded machine, and the short heartbeat timeout would also bound
/// the handshake that waits for it.
SyncEngine::Settings signInEngineSettings();

/// A SyncEngine state by name ("Live"), and the states a spy on stateChanged saw, in order.
QString stateName(SyncEngine::State state);
QStringList statesSeen(const QSignalSpy& spy);

/// An entry as one line (id, seq, sender, state, body), for the message of a failed check.
QString describe(const StoredMessage& entry);
QByteArray describe(const QList<StoredMessage>& entries);

/// The entries of a history whose body starts with `prefix`, in the history's order.
QList<StoredMessage> withPrefix(const QList<StoredMessage>& entries, const QByteArray& prefix);

/// The sync engine in the test's own process against the real ferry-server on loopback: owns a
/// temporary folder, the server running over a data folder in it, and the devices signed in
/// through an engine, each with its client store open for the whole test case. The folder is
/// RAM-backed where the machine has /dev/shm: a backlog costs the server a flushed commit per
/// message, some 3 ms each on a virtual disk, while no suite on a testbed is about what reaches
/// the disk (tst_crash_resend and tst_offline_delivery are, on an ordinary folder).
class EngineTestbed {
public:
    /// One device: its profile folder and its store.
    struct Device {
        QString profile;
        std::unique_ptr<ClientStore> store;
    };

    /// A device to sign in: under the name `device`, as `user`, creating the account first when
    /// `createAccount`.
    struct SignIn {
        QString device;
        QString user;
        bool createAccount = false;
    };

    /// `name` names the temporary folder; `waitMs` bounds every wait of the testbed's own.
    EngineTestbed(const QString& name, int waitMs);
    EngineTestbed(const EngineTestbed&) = delete;
    EngineTestbed& operator=(const EngineTestbed&) = delete;

    /// Starts the server with `serverArguments` (after --listen and --data), then signs in each
    /// of `devices` in order. False, with errorString(), at the first thing that failed.
    bool start(const QStringList& serverArguments, const QList<SignIn>& devices);
    /// Starts the server again if a test that failed half-way left it stopped.
    bool ensureServerRunning();
    /// Stops the server if it runs; true unless it did not end cleanly.
    bool stopServer();
    QString errorString() const { return m_error; }

    ServerProcess& server() { return *m_server; }
    /// A path in the temporary folder, for what a test keeps beside the devices.
    QString filePath(const QString& relative) const { return m_root.filePath(relative); }

    Device& device(const QString& name) { return m_devices.at(name); }

    /// An engine for the device, pointed at `url` (the server, unless given).
    std::unique_ptr<SyncEngine> engineFor(Device& device,
        SyncEngine::Settings settings = quickEngineSettings(), const QUrl& url = {});
    /// Connects (to `url`, the server unless given), catches up, sends what is queued and owed,
    /// and disconnects once idle.
    Result<Done> syncOnce(Device& device, const QUrl& url = {});

    /// Writes `count` messages from the device's account to a conversation, bodies `prefix` and
    /// a number from 1, and returns their ids in the order the server numbered them. They go over
    /// a raw protocol connection as the sender's device, every one sent before the first ack is
    /// read: the sender's engine is not what such a test is about, and this takes a second where
    /// an engine, settling each ack, takes several.
    Result<QByteArrayList> writeMessages(
        const Device& sender, const QString& conversation, const QByteArray& prefix, int count);

private:
    Result<Done> signIn(const SignIn& entry);
    bool fail(const QString& why);

    int m_waitMs;
    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    std::map<QString, Device> m_devices;
    QString m_error;
};

/// Queues `count` messages in the device's outbox, bodies as writeMessages() writes them, and
/// returns their ids in order. A live engine of the device, when given, is told of each one as
/// the app tells its engine when the user sends.
Result<QByteArrayList> enqueueMessages(EngineTestbed::Device& device, const QString& conversation,
    const QByteArray& prefix, int count, SyncEngine* live = nullptr);

/// The entries of the device's history with the prefix, in order; none if it cannot be read.
QList<StoredMessage> historyWithPrefix(
    const EngineTestbed::Device& device, const QString& conversation, const QByteArray& prefix);

/// Checks that the device holds exactly the messages `ids` among the entries with `prefix`
/// (every entry, for an empty one), once each, in this order, with ascending seq, each in one of
/// `states`, and no gap in the conversation. Like any helper's, a failed check returns from this
/// function only; the test goes on unless it asks QTest::currentTestFailed().
void verifyHoldsOnce(const EngineTestbed::Device& device, const QString& conversation,
    const QByteArray& prefix, const QByteArrayList& ids, const QList<MessageState>& states);

/// The seq of each entry with the prefix, in the device's history order (0 for a queued one).
QList<quint64> seqsAt(
    const EngineTestbed::Device& device, const QString& conversation, const QByteArray& prefix);

} // namespace ferry::test
