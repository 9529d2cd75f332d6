#pragma once

#include <QList>
#include <QString>
#include <QStringList>

#include <span>

namespace ferry::test::chaos {

/// Every fault the runner can inject, in one table (faultKinds()), so that a new FaultProxy mode
/// or a new way to kill something is one enum value and one row.
enum class FaultKind {
    // Network faults: what the device's FaultProxy does to one of its connections.
    LinkCutBeforeSendAck,
    LinkCutAfterFrames,
    LinkStall,
    LinkCutAfterSendAck,
    LinkDelayed, ///< every frame held a few ms plus jitter, both ways
    LinkDuplicatedSend, ///< the client's nth "send" frame reaches the server twice
    LinkDuplicatedEvents, ///< the server's nth "events" batch reaches the client twice
    LinkHandshakeRefused, ///< the HTTP upgrade answered with 503
    LinkClosedAtOnce, ///< the TCP connection accepted and closed before a byte is read
    // Process faults.
    ClientKilledDuringSend, ///< SIGKILL of `ferryctl send` at a random moment
    ClientKilledDuringSync, ///< SIGKILL of `ferryctl sync` at a random moment
    ClientKilledWhileListening, ///< SIGKILL of a running `ferryctl listen`
    ServerKilled, ///< SIGKILL of ferry-server, restarted over the same data folder
    ServerTerminated, ///< SIGTERM of ferry-server, restarted over the same data folder
    ServerKilledDuringCatchUp, ///< SIGKILL while one device runs `ferryctl sync`
    ServerTerminatedDuringCatchUp, ///< SIGTERM while one device runs `ferryctl sync`
};

/// One row of the fault table.
struct FaultKindInfo {
    FaultKind kind;
    const char* name; ///< as printed in the figures, e.g. "link-stall"
    bool network; ///< injected through FaultProxy (otherwise by a signal to a process)
};

/// The fault table, in enum order.
std::span<const FaultKindInfo> faultKinds();
QString faultName(FaultKind kind);

/// What the device's proxy does to one connection. Pass is no fault.
struct LinkFault {
    enum class Mode {
        Pass,
        CutBeforeSendAck,
        CutAfterFrames,
        Stall,
        CutAfterSendAck,
        Delay,
        DuplicateSend,
        DuplicateEvents,
        RefuseHandshake,
        CloseAtOnce,
    };
    Mode mode = Mode::Pass;
    int frames = 0; ///< for CutAfterFrames; the nth frame for CutAfterSendAck and the duplicates
    int delayMs = 0; ///< for Delay
    int jitterMs = 0; ///< for Delay

    bool isFault() const { return mode != Mode::Pass; }
    FaultKind kind() const;
    QString describe() const;
};

/// One device: a profile of one account.
struct DeviceSpec {
    int user = 0; ///< index into Scenario::users
    QString name; ///< profile folder and device name, e.g. "carol-2"
};

/// A conversation of the run: a direct one between two users, or a group.
struct ConversationSpec {
    bool group = false;
    QList<int> members; ///< user indices; for a group the first one creates it
    QString title; ///< groups only
};

/// One step of a run. Which fields matter depends on the action.
struct Step {
    enum class Action {
        Send, ///< `ferryctl send` on `device` to `conversation`, `messages` times
        Sync, ///< `ferryctl sync` on `device`, its connections disturbed by `links`
        StartListening, ///< `ferryctl listen` on `device` in the background
        StopListening, ///< ends the device's listen: SIGTERM, or SIGKILL (a crash)
        MarkRead, ///< `ferryctl read` on `device` for `conversation`
        /// `ferryctl outbox cancel` of the device's latest message: it may already be on its way,
        /// so it is delivered to everyone or to no one
        Cancel,
        RestartServer, ///< SIGKILL or SIGTERM of the server, down for `downMs`, started again
        Wait, ///< lets background listens work for `downMs`
    };

    Action action = Action::Wait;
    int device = -1;
    int conversation = -1;
    /// The faults of the device's next connections, one each in order; later ones pass.
    QList<LinkFault> links;
    /// A process fault hitting this step (a kill of the client or of the server), if any.
    bool hasProcessFault = false;
    FaultKind processFault = FaultKind::ClientKilledDuringSend;
    int delayMs = 0; ///< when the process fault hits, after the step's process started
    int downMs = 0; ///< how long the server stays down, or how long a Wait lasts
    int messages = 1; ///< for Send: how many messages, one `ferryctl send` each; a kill hits
                      ///< the last

    QString describe(const QStringList& deviceNames) const;
};

/// A whole run, derived from its seed alone.
struct Scenario {
    quint64 seed = 0;
    QStringList users;
    QList<DeviceSpec> devices;
    QList<ConversationSpec> conversations;
    QList<Step> steps;
    /// The server's --sync-batch, or 0 for its default (500): a small batch makes every catch-up
    /// several round trips, so kills and cuts land between batches too.
    int syncBatch = 0;

    QStringList deviceNames() const;
    /// The devices of the members of a conversation.
    QList<int> devicesOf(int conversation) const;
    /// The conversations a user belongs to.
    QList<int> conversationsOf(int user) const;
};

/// The scenario of a seed: users, devices, conversations and steps, drawn from a random
/// generator seeded with `seed` and nothing else, so that the same seed always gives the same
/// decisions. Timing (where exactly a kill lands) is up to the machine; see docs/reliability.md.
Scenario generateScenario(quint64 seed);

} // namespace ferry::test::chaos
