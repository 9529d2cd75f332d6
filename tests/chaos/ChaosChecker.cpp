#include "tests/chaos/ChaosChecker.h"

#include <QJsonDocument>
#include <QSet>

namespace ferry::test::chaos {

namespace {

    const QString KindMessage = QStringLiteral("message");

    QString field(const QJsonObject& entry, const char* key)
    {
        return entry.value(QLatin1StringView(key)).toVariant().toString();
    }

    /// "id@seq" of each entry: what two devices must agree on.
    QStringList identities(const QList<QJsonObject>& history)
    {
        QStringList keys;
        for (const QJsonObject& entry : history) {
            keys.append(field(entry, "id") + u'@' + field(entry, "seq"));
        }
        return keys;
    }

    int countBody(const QList<QJsonObject>& history, const QString& body)
    {
        int count = 0;
        for (const QJsonObject& entry : history) {
            if (field(entry, "kind") == KindMessage && field(entry, "body") == body) {
                ++count;
            }
        }
        return count;
    }

    QString compact(const QJsonObject& object)
    {
        return QString::fromUtf8(QJsonDocument(object).toJson(QJsonDocument::Compact));
    }

} // namespace

ChaosChecker::ChaosChecker(const Scenario& scenario, const QStringList& conversationIds,
    const RunRecord& record, const QList<DeviceState>& states)
    : m_scenario(scenario)
    , m_conversationIds(conversationIds)
    , m_record(record)
    , m_states(states)
    , m_deviceNames(scenario.deviceNames())
{
}

QList<Violation> ChaosChecker::check()
{
    m_violations.clear();
    unfaultedSendsSucceeded();
    serverStoppedCleanly();
    everyDeviceSynced();
    outboxesDrained();
    historiesIdentical();
    historiesInSequenceOrder();
    writtenMessagesExactlyOnce();
    noUnknownMessages();
    senderOrderKept();
    readStateAgrees();
    return m_violations;
}

MessageTally ChaosChecker::tally() const
{
    MessageTally tally;
    for (const WrittenMessage& write : m_record.writes) {
        ++tally.written;
        if (write.cancelled) {
            ++(exists(write) ? tally.cancelledButSent : tally.cancelled);
        } else if (write.confirmed()) {
            ++tally.confirmed;
        } else if (exists(write)) {
            ++tally.unconfirmedStored;
        } else {
            ++tally.unconfirmedAbsent;
        }
        for (const QJsonObject& entry : historyOf(write.device, write.conversation)) {
            if (field(entry, "body") == write.body && !entry.value(u"seq").isNull()) {
                ++tally.sequenced;
                break;
            }
        }
    }
    return tally;
}

void ChaosChecker::unfaultedSendsSucceeded()
{
    for (const QString& failure : m_record.failedSends) {
        report(QStringLiteral("unfaulted-sends-succeeded"), failure);
    }
}

void ChaosChecker::serverStoppedCleanly()
{
    for (const QString& failure : m_record.uncleanServerStops) {
        report(QStringLiteral("server-stopped-cleanly"), failure);
    }
}

void ChaosChecker::everyDeviceSynced()
{
    for (auto it = m_record.unsyncedDevices.begin(); it != m_record.unsyncedDevices.end(); ++it) {
        report(QStringLiteral("every-device-synced"),
            m_deviceNames[it.key()] + u" could not finish its final sync: " + it.value());
    }
    for (int device = 0; device < m_states.size(); ++device) {
        if (!m_states[device].readError.isEmpty()) {
            report(QStringLiteral("every-device-synced"),
                m_deviceNames[device] + u" could not be read: " + m_states[device].readError);
        }
    }
}

void ChaosChecker::outboxesDrained()
{
    for (int device = 0; device < m_states.size(); ++device) {
        for (const QJsonObject& entry : m_states[device].outbox) {
            report(QStringLiteral("outboxes-drained"),
                m_deviceNames[device] + u" still holds " + compact(entry));
        }
    }
}

void ChaosChecker::historiesIdentical()
{
    for (int conversation = 0; conversation < m_conversationIds.size(); ++conversation) {
        const QList<int> devices = m_scenario.devicesOf(conversation);
        const QStringList reference = identities(historyOf(devices.first(), conversation));
        for (const int device : devices.mid(1)) {
            const QStringList held = identities(historyOf(device, conversation));
            if (held != reference) {
                report(QStringLiteral("histories-identical"),
                    where(device, conversation) + u" holds [" + held.join(u", ") + u"] but "
                        + where(devices.first(), conversation) + u" holds [" + reference.join(u", ")
                        + u']');
            }
        }
    }
}

void ChaosChecker::historiesInSequenceOrder()
{
    for (int conversation = 0; conversation < m_conversationIds.size(); ++conversation) {
        for (const int device : m_scenario.devicesOf(conversation)) {
            qint64 expected = 1;
            for (const QJsonObject& entry : historyOf(device, conversation)) {
                const QJsonValue seq = entry.value(u"seq");
                if (entry.contains(u"gap") || seq.isNull() || seq.toInteger() != expected) {
                    report(QStringLiteral("histories-in-sequence-order"),
                        where(device, conversation) + u" holds " + compact(entry) + u" where seq "
                            + QString::number(expected) + u" belongs");
                    break;
                }
                ++expected;
            }
        }
    }
}

void ChaosChecker::writtenMessagesExactlyOnce()
{
    for (const WrittenMessage& write : m_record.writes) {
        const bool shouldExist = exists(write);
        for (const int device : m_scenario.devicesOf(write.conversation)) {
            const QList<QJsonObject>& history = historyOf(device, write.conversation);
            const int held = countBody(history, write.body);
            if (held != (shouldExist ? 1 : 0)) {
                report(QStringLiteral("written-messages-exactly-once"),
                    where(device, write.conversation) + u" holds \"" + write.body + u"\" "
                        + QString::number(held) + u" times; expected "
                        + (shouldExist ? u"once"
                                       : u"never (its send was killed before it was stored, or "
                                         u"it was cancelled before it was sent)"));
                continue;
            }
            if (!write.confirmed()) {
                continue;
            }
            for (const QJsonObject& entry : history) {
                if (field(entry, "body") == write.body && field(entry, "id") != write.id) {
                    report(QStringLiteral("written-messages-exactly-once"),
                        where(device, write.conversation) + u" holds \"" + write.body
                            + u"\" under id " + field(entry, "id") + u", written as " + write.id);
                }
            }
        }
    }
}

void ChaosChecker::noUnknownMessages()
{
    QSet<QString> written;
    for (const WrittenMessage& write : m_record.writes) {
        written.insert(QString::number(write.conversation) + u'/' + write.body);
    }
    for (int device = 0; device < m_states.size(); ++device) {
        for (auto it = m_states[device].histories.begin(); it != m_states[device].histories.end();
             ++it) {
            for (const QJsonObject& entry : it.value()) {
                if (field(entry, "kind") == KindMessage
                    && !written.contains(QString::number(it.key()) + u'/' + field(entry, "body"))) {
                    report(QStringLiteral("no-unknown-messages"),
                        where(device, it.key()) + u" holds " + compact(entry)
                            + u", which nobody wrote there");
                }
            }
        }
    }
}

void ChaosChecker::senderOrderKept()
{
    for (int writer = 0; writer < m_scenario.devices.size(); ++writer) {
        for (int conversation = 0; conversation < m_conversationIds.size(); ++conversation) {
            QStringList writtenOrder;
            for (const WrittenMessage& write : m_record.writes) {
                if (write.device == writer && write.conversation == conversation && exists(write)) {
                    writtenOrder.append(write.body);
                }
            }
            if (writtenOrder.isEmpty()) {
                continue;
            }
            for (const int device : m_scenario.devicesOf(conversation)) {
                QStringList heldOrder;
                for (const QJsonObject& entry : historyOf(device, conversation)) {
                    if (writtenOrder.contains(field(entry, "body"))) {
                        heldOrder.append(field(entry, "body"));
                    }
                }
                // Missing or doubled messages are another check's finding.
                if (heldOrder.size() == writtenOrder.size() && heldOrder != writtenOrder) {
                    report(QStringLiteral("sender-order-kept"),
                        where(device, conversation) + u" shows " + m_deviceNames[writer]
                            + u"'s messages as [" + heldOrder.join(u", ") + u"], written as ["
                            + writtenOrder.join(u", ") + u']');
                }
            }
        }
    }
}

void ChaosChecker::readStateAgrees()
{
    for (int user = 0; user < m_scenario.users.size(); ++user) {
        QList<int> devices;
        for (int device = 0; device < m_scenario.devices.size(); ++device) {
            if (m_scenario.devices[device].user == user) {
                devices.append(device);
            }
        }
        for (const int conversation : m_scenario.conversationsOf(user)) {
            const int first = devices.first();
            const int unread
                = m_states[first].summaries.value(conversation).value(u"unread").toInt();
            const QStringList states = [&] {
                QStringList list;
                for (const QJsonObject& entry : historyOf(first, conversation)) {
                    list.append(field(entry, "state"));
                }
                return list;
            }();
            for (const int device : devices.mid(1)) {
                const int otherUnread
                    = m_states[device].summaries.value(conversation).value(u"unread").toInt();
                if (otherUnread != unread) {
                    report(QStringLiteral("read-state-agrees"),
                        where(device, conversation) + u" counts " + QString::number(otherUnread)
                            + u" unread, " + where(first, conversation) + u" "
                            + QString::number(unread));
                }
                QStringList otherStates;
                for (const QJsonObject& entry : historyOf(device, conversation)) {
                    otherStates.append(field(entry, "state"));
                }
                if (otherStates != states) {
                    report(QStringLiteral("read-state-agrees"),
                        where(device, conversation) + u" shows states [" + otherStates.join(u", ")
                            + u"], " + where(first, conversation) + u" [" + states.join(u", ")
                            + u']');
                }
            }
        }
    }
}

bool ChaosChecker::exists(const WrittenMessage& write) const
{
    return write.certain()
        || countBody(historyOf(write.device, write.conversation), write.body) > 0;
}

const QList<QJsonObject>& ChaosChecker::historyOf(int device, int conversation) const
{
    static const QList<QJsonObject> none;
    const auto found = m_states[device].histories.constFind(conversation);
    return found == m_states[device].histories.constEnd() ? none : found.value();
}

QString ChaosChecker::where(int device, int conversation) const
{
    return m_deviceNames[device] + u" in " + m_conversationIds.value(conversation);
}

void ChaosChecker::report(const QString& check, const QString& detail)
{
    m_violations.append({ check, detail });
}

} // namespace ferry::test::chaos
