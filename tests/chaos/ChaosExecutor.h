#pragma once

#include "core/Result.h"
#include "tests/chaos/ChaosScenario.h"
#include "tests/support/Ctl.h"

#include <QJsonObject>
#include <QList>
#include <QLoggingCategory>
#include <QMap>
#include <QProcess>
#include <QString>

#include <memory>
#include <vector>

namespace ferry::test {
class FaultProxy;
class ServerProcess;
}

namespace ferry::test::chaos {

/// The runner's own log: each step as it starts (debug), and what went wrong around it.
Q_DECLARE_LOGGING_CATEGORY(lcChaos)

/// A message a device was asked to write. Bodies are unique within a run, which is how a message
/// whose `ferryctl send` was killed before it printed its id can still be found.
struct WrittenMessage {
    int device = -1;
    int conversation = -1;
    QString body;
    QString id; ///< as `send` printed it; empty when the send was killed first
    bool cancelled = false; ///< `outbox cancel` succeeded for it
    bool confirmed() const { return !id.isEmpty(); }
    /// Whether the message must exist: its send printed its id and it was not cancelled. If not,
    /// it may exist, and then everywhere.
    bool certain() const { return confirmed() && !cancelled; }
};

/// What the executor did: the ledger the checker compares the devices against, and figures.
struct RunRecord {
    QList<WrittenMessage> writes; ///< in the order written
    QMap<FaultKind, int> faultsInjected; ///< faults that hit something (a kill of a running
                                         ///< process, a planned link fault a connection took)
    int readMarks = 0;
    int cancels = 0; ///< `outbox cancel` runs that removed a message
    int serverRestarts = 0;
    /// Devices whose final sync did not succeed within its retries, with why.
    QMap<int, QString> unsyncedDevices;
    /// Sends that failed although no fault hit them: writing works offline, so none may.
    QStringList failedSends;
    /// SIGTERMs of the server that did not end in a clean exit 0, with how it ended instead.
    QStringList uncleanServerStops;
    /// Something the executor itself could not do (the server would not start): the run proves
    /// nothing and is reported as an error, not as a violation of an invariant.
    QString setupError;
};

/// What one device holds at the end, read through ferryctl.
struct DeviceState {
    QMap<int, QList<QJsonObject>> histories; ///< per conversation of the scenario
    QMap<int, QJsonObject> summaries; ///< `conversations --json` rows per conversation
    QList<QJsonObject> outbox; ///< `outbox --json`
    QString readError; ///< set when ferryctl could not read the profile
};

/// Runs a scenario against the real ferry-server and real ferryctl processes, each device behind
/// its own FaultProxy, in a folder of its own. Everything it starts, it stops.
///
/// The proxies live in this process, so every wait turns this process's event loop: nothing
/// here blocks on a child process while a device may be talking through a proxy.
class ChaosExecutor {
public:
    ChaosExecutor(const Scenario& scenario, QString rootDir);
    ~ChaosExecutor();

    /// Setup, every step, then the settling: faults stop, listens end, the server runs, and
    /// every device syncs (a few rounds, so that receipts converge too).
    RunRecord run();

    /// Reads every device's state; call after run().
    QList<DeviceState> collect() const;

    /// The conversation id the run gave each scenario conversation.
    QStringList conversationIds() const { return m_conversationIds; }

private:
    struct Device;

    Result<Done> setUp();
    void execute(const Step& step);
    void settle();

    void send(const Step& step);
    void sendOne(const Step& step, bool killed);
    void sync(const Step& step);
    void startListening(const Step& step);
    void stopListening(const Step& step);
    void markRead(const Step& step);
    void cancel(const Step& step);
    void restartServer(FaultKind how, int downMs);

    /// Plans the device's next connections and counts the planned faults once taken.
    void planLinks(Device& device, const QList<LinkFault>& links);
    void countTakenLinkFaults(Device& device);
    bool ensureServerRunning();
    void countFault(FaultKind kind) { ++m_record.faultsInjected[kind]; }

    const Scenario& m_scenario;
    QString m_rootDir;
    std::unique_ptr<ServerProcess> m_server;
    std::vector<std::unique_ptr<Device>> m_devices;
    QStringList m_conversationIds;
    RunRecord m_record;
    int m_nextBody = 1;
};

/// Waits for a child process to end, turning this process's event loop meanwhile; true if it
/// ended within `timeoutMs`.
bool waitTurningEvents(QProcess& process, int timeoutMs);

/// Turns this process's event loop for `ms`.
void pauseTurningEvents(int ms);

} // namespace ferry::test::chaos
