#pragma once

#include "tests/chaos/ChaosExecutor.h"
#include "tests/chaos/ChaosScenario.h"

#include <QList>
#include <QString>
#include <QStringList>

namespace ferry::test::chaos {

/// One broken invariant: the name of the check and what it found.
struct Violation {
    QString check;
    QString detail;
};

/// What the messages of a run came to, for the figures.
struct MessageTally {
    int written = 0; ///< sends started
    int confirmed = 0; ///< sends that printed their id
    int unconfirmedStored = 0; ///< sends killed before printing, whose message exists anyway
    int unconfirmedAbsent = 0; ///< sends killed before the message was stored
    int cancelled = 0; ///< cancelled before they were sent
    int cancelledButSent = 0; ///< cancelled, but the server had them already
    int sequenced = 0; ///< messages that hold a seq at the end (acknowledged or settled)
};

/// Compares what every device holds at the end of a run with what the run wrote. Each invariant
/// is one named check; check() runs them all and returns every violation found.
class ChaosChecker {
public:
    ChaosChecker(const Scenario& scenario, const QStringList& conversationIds,
        const RunRecord& record, const QList<DeviceState>& states);

    QList<Violation> check();
    MessageTally tally() const;

private:
    /// Every send that no fault hit printed its message's id.
    void unfaultedSendsSucceeded();
    /// Every SIGTERM of the server ended in a clean exit 0, as docs/server.md promises.
    void serverStoppedCleanly();
    /// Every device finished its final syncs and could be read.
    void everyDeviceSynced();
    /// No device has anything queued or failed left.
    void outboxesDrained();
    /// Every member device of a conversation holds the same entries (ids and seqs) in the same
    /// order.
    void historiesIdentical();
    /// Every history is seq 1, 2, 3, … with nothing queued and no gap.
    void historiesInSequenceOrder();
    /// Every written message that exists is held exactly once by every member device; a message
    /// whose send was killed before it was stored is held by none.
    void writtenMessagesExactlyOnce();
    /// No device holds a message nobody wrote, or one written to another conversation.
    void noUnknownMessages();
    /// Each device's messages to a conversation are in the order that device wrote them.
    void senderOrderKept();
    /// The devices of one account agree on unread counts and on every entry's state.
    void readStateAgrees();

    /// Whether the write exists at all: confirmed, or found in its writer's own history.
    bool exists(const WrittenMessage& write) const;
    const QList<QJsonObject>& historyOf(int device, int conversation) const;
    QString where(int device, int conversation) const;
    void report(const QString& check, const QString& detail);

    const Scenario& m_scenario;
    QStringList m_conversationIds;
    const RunRecord& m_record;
    const QList<DeviceState>& m_states;
    QStringList m_deviceNames;
    QList<Violation> m_violations;
};

} // namespace ferry::test::chaos
