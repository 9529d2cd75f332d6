#include "tests/chaos/ChaosScenario.h"

#include <array>
#include <random>

namespace ferry::test::chaos {

namespace {

    constexpr std::array<FaultKindInfo, 16> FaultTable { {
        { FaultKind::LinkCutBeforeSendAck, "link-cut-before-send-ack", true },
        { FaultKind::LinkCutAfterFrames, "link-cut-after-frames", true },
        { FaultKind::LinkStall, "link-stall", true },
        { FaultKind::LinkCutAfterSendAck, "link-cut-after-send-ack", true },
        { FaultKind::LinkDelayed, "link-delayed", true },
        { FaultKind::LinkDuplicatedSend, "link-duplicated-send", true },
        { FaultKind::LinkDuplicatedEvents, "link-duplicated-events", true },
        { FaultKind::LinkHandshakeRefused, "link-handshake-refused", true },
        { FaultKind::LinkClosedAtOnce, "link-closed-at-once", true },
        { FaultKind::ClientKilledDuringSend, "client-killed-during-send", false },
        { FaultKind::ClientKilledDuringSync, "client-killed-during-sync", false },
        { FaultKind::ClientKilledWhileListening, "client-killed-while-listening", false },
        { FaultKind::ServerKilled, "server-killed", false },
        { FaultKind::ServerTerminated, "server-terminated", false },
        { FaultKind::ServerKilledDuringCatchUp, "server-killed-during-catch-up", false },
        { FaultKind::ServerTerminatedDuringCatchUp, "server-terminated-during-catch-up", false },
    } };

    const QStringList UserNames = { QStringLiteral("alice"), QStringLiteral("bob"),
        QStringLiteral("carol"), QStringLiteral("dave") };

    /// The decisions of one run. std::mt19937_64's output is fixed by the C++ standard, and the
    /// ranges are cut by hand rather than by the standard distributions, whose results differ
    /// between standard libraries: a seed then means the same run everywhere.
    class Dice {
    public:
        explicit Dice(quint64 seed)
            : m_engine(seed)
        {
        }

        /// 0 to n - 1.
        int below(int n) { return static_cast<int>(m_engine() % static_cast<quint64>(n)); }
        int between(int low, int high) { return low + below(high - low + 1); }
        bool chance(int percent) { return below(100) < percent; }

        /// An index chosen with the given weights.
        int weighted(std::initializer_list<int> weights)
        {
            int total = 0;
            for (const int weight : weights) {
                total += weight;
            }
            int roll = below(total);
            int index = 0;
            for (const int weight : weights) {
                if (roll < weight) {
                    return index;
                }
                roll -= weight;
                ++index;
            }
            return index - 1;
        }

        template <typename T> const T& pick(const QList<T>& list)
        {
            return list[below(list.size())];
        }

    private:
        std::mt19937_64 m_engine;
    };

    /// A link fault, or none. Stalls are rarer: each costs a sync its whole timeout.
    LinkFault drawLinkFault(Dice& dice, int faultPercent)
    {
        if (!dice.chance(faultPercent)) {
            return {};
        }
        LinkFault fault;
        switch (dice.weighted({ 4, 4, 1, 3, 2, 2, 2, 1, 1 })) {
        case 0:
            fault.mode = LinkFault::Mode::CutBeforeSendAck;
            break;
        case 1:
            fault.mode = LinkFault::Mode::CutAfterFrames;
            fault.frames = dice.between(0, 6);
            break;
        case 2:
            fault.mode = LinkFault::Mode::Stall;
            break;
        case 3:
            fault.mode = LinkFault::Mode::CutAfterSendAck;
            fault.frames = dice.between(1, 3);
            break;
        case 4:
            fault.mode = LinkFault::Mode::Delay;
            fault.delayMs = dice.between(2, 30);
            fault.jitterMs = dice.between(0, 50);
            break;
        case 5:
            fault.mode = LinkFault::Mode::DuplicateSend;
            fault.frames = dice.between(1, 2);
            break;
        case 6:
            fault.mode = LinkFault::Mode::DuplicateEvents;
            fault.frames = dice.between(1, 2);
            break;
        case 7:
            fault.mode = LinkFault::Mode::RefuseHandshake;
            break;
        default:
            fault.mode = LinkFault::Mode::CloseAtOnce;
            break;
        }
        return fault;
    }

    QList<LinkFault> drawLinkFaults(Dice& dice)
    {
        QList<LinkFault> faults { drawLinkFault(dice, 50) };
        if (faults.first().isFault() && dice.chance(30)) {
            faults.append(drawLinkFault(dice, 100));
        }
        return faults;
    }

    void addUsersAndDevices(Scenario& scenario, Dice& dice)
    {
        const int userCount = dice.between(3, 4);
        for (int user = 0; user < userCount; ++user) {
            scenario.users.append(UserNames[user]);
            const int deviceCount = dice.between(2, 3);
            for (int device = 1; device <= deviceCount; ++device) {
                scenario.devices.append({ user, UserNames[user] + u'-' + QString::number(device) });
            }
        }
    }

    void addConversations(Scenario& scenario, Dice& dice)
    {
        const int userCount = static_cast<int>(scenario.users.size());
        for (int a = 0; a < userCount; ++a) {
            for (int b = a + 1; b < userCount; ++b) {
                // Every user keeps at least one direct conversation with the next one.
                if (b == a + 1 || dice.chance(50)) {
                    scenario.conversations.append({ false, { a, b }, {} });
                }
            }
        }
        // A group of three, created by a random one of them; sometimes one of everybody.
        QList<int> members;
        const int creator = dice.below(userCount);
        members.append(creator);
        while (members.size() < 3) {
            const int other = dice.below(userCount);
            if (!members.contains(other)) {
                members.append(other);
            }
        }
        scenario.conversations.append({ true, members, QStringLiteral("trio") });
        if (userCount > 3 && dice.chance(50)) {
            QList<int> everybody;
            for (int user = 0; user < userCount; ++user) {
                everybody.append((creator + 1 + user) % userCount);
            }
            scenario.conversations.append({ true, everybody, QStringLiteral("everybody") });
        }
    }

    void addSteps(Scenario& scenario, Dice& dice)
    {
        const int deviceCount = static_cast<int>(scenario.devices.size());
        QList<bool> listening(deviceCount, false);
        const int stepCount = dice.between(25, 40);
        while (scenario.steps.size() < stepCount) {
            Step step;
            step.device = dice.below(deviceCount);
            const QList<int> ownConversations
                = scenario.conversationsOf(scenario.devices[step.device].user);
            switch (dice.weighted({ 40, 18, 8, 6, 6, 5, 6, 4 })) {
            case 0:
                step.action = Step::Action::Send;
                step.conversation = dice.pick(ownConversations);
                step.messages = dice.between(1, 3);
                if (dice.chance(20)) {
                    step.hasProcessFault = true;
                    step.processFault = FaultKind::ClientKilledDuringSend;
                    step.delayMs = dice.between(0, 60);
                }
                break;
            case 1:
                // Mostly one syncing process per profile; sometimes a sync beside a listen, as
                // when a user runs `ferryctl sync` while the app is open.
                if (listening[step.device] && !dice.chance(25)) {
                    continue;
                }
                step.action = Step::Action::Sync;
                step.links = drawLinkFaults(dice);
                if (dice.chance(30)) {
                    step.hasProcessFault = true;
                    step.processFault = FaultKind::ClientKilledDuringSync;
                    step.delayMs = dice.between(0, 150);
                } else if (dice.chance(15)) {
                    step.hasProcessFault = true;
                    step.processFault = dice.chance(50) ? FaultKind::ServerKilledDuringCatchUp
                                                        : FaultKind::ServerTerminatedDuringCatchUp;
                    step.delayMs = dice.between(0, 150);
                    step.downMs = dice.between(100, 1000);
                }
                break;
            case 2:
                if (listening[step.device]) {
                    continue;
                }
                step.action = Step::Action::StartListening;
                step.links = drawLinkFaults(dice);
                listening[step.device] = true;
                break;
            case 3: {
                QList<int> listeners;
                for (int device = 0; device < deviceCount; ++device) {
                    if (listening[device]) {
                        listeners.append(device);
                    }
                }
                if (listeners.isEmpty()) {
                    continue;
                }
                step.action = Step::Action::StopListening;
                step.device = dice.pick(listeners);
                listening[step.device] = false;
                if (dice.chance(50)) {
                    step.hasProcessFault = true;
                    step.processFault = FaultKind::ClientKilledWhileListening;
                }
                break;
            }
            case 4:
                step.action = Step::Action::MarkRead;
                step.conversation = dice.pick(ownConversations);
                break;
            case 5:
                step.action = Step::Action::RestartServer;
                step.device = -1;
                step.hasProcessFault = true;
                step.processFault
                    = dice.chance(50) ? FaultKind::ServerKilled : FaultKind::ServerTerminated;
                step.downMs = dice.between(100, 1500);
                break;
            case 7:
                step.action = Step::Action::Cancel;
                break;
            default:
                step.action = Step::Action::Wait;
                step.device = -1;
                step.downMs = dice.between(200, 1500);
                break;
            }
            scenario.steps.append(step);
        }
    }

} // namespace

std::span<const FaultKindInfo> faultKinds() { return FaultTable; }

QString faultName(FaultKind kind)
{
    return QString::fromLatin1(FaultTable[static_cast<std::size_t>(kind)].name);
}

FaultKind LinkFault::kind() const
{
    switch (mode) {
    case Mode::CutBeforeSendAck:
        return FaultKind::LinkCutBeforeSendAck;
    case Mode::CutAfterFrames:
        return FaultKind::LinkCutAfterFrames;
    case Mode::CutAfterSendAck:
        return FaultKind::LinkCutAfterSendAck;
    case Mode::Delay:
        return FaultKind::LinkDelayed;
    case Mode::DuplicateSend:
        return FaultKind::LinkDuplicatedSend;
    case Mode::DuplicateEvents:
        return FaultKind::LinkDuplicatedEvents;
    case Mode::RefuseHandshake:
        return FaultKind::LinkHandshakeRefused;
    case Mode::CloseAtOnce:
        return FaultKind::LinkClosedAtOnce;
    case Mode::Stall:
    case Mode::Pass:
        break;
    }
    return FaultKind::LinkStall;
}

QString LinkFault::describe() const
{
    if (!isFault()) {
        return QStringLiteral("pass");
    }
    switch (mode) {
    case Mode::CutAfterFrames:
    case Mode::CutAfterSendAck:
    case Mode::DuplicateSend:
    case Mode::DuplicateEvents:
        return faultName(kind()) + u'(' + QString::number(frames) + u')';
    case Mode::Delay:
        return faultName(kind()) + u'(' + QString::number(delayMs) + u'+'
            + QString::number(jitterMs) + u" ms)";
    default:
        return faultName(kind());
    }
}

QString Step::describe(const QStringList& deviceNames) const
{
    static const char* const ActionNames[] = { "send", "sync", "listen", "stop-listening", "read",
        "cancel", "restart-server", "wait" };
    QString text = QString::fromLatin1(ActionNames[static_cast<int>(action)]);
    if (device >= 0) {
        text += u' ' + deviceNames.value(device);
    }
    if (conversation >= 0) {
        text += u" conversation " + QString::number(conversation);
    }
    if (action == Action::Send) {
        text += u" x" + QString::number(messages);
    }
    if (!links.isEmpty()) {
        QStringList linkText;
        for (const LinkFault& link : links) {
            linkText.append(link.describe());
        }
        text += u" links [" + linkText.join(u", ") + u']';
    }
    if (hasProcessFault) {
        text += u" + " + faultName(processFault) + u" at " + QString::number(delayMs) + u" ms";
    }
    if (downMs > 0) {
        text += u" for " + QString::number(downMs) + u" ms";
    }
    return text;
}

QStringList Scenario::deviceNames() const
{
    QStringList names;
    for (const DeviceSpec& device : devices) {
        names.append(device.name);
    }
    return names;
}

QList<int> Scenario::devicesOf(int conversation) const
{
    QList<int> found;
    for (int device = 0; device < devices.size(); ++device) {
        if (conversations[conversation].members.contains(devices[device].user)) {
            found.append(device);
        }
    }
    return found;
}

QList<int> Scenario::conversationsOf(int user) const
{
    QList<int> found;
    for (int conversation = 0; conversation < conversations.size(); ++conversation) {
        if (conversations[conversation].members.contains(user)) {
            found.append(conversation);
        }
    }
    return found;
}

Scenario generateScenario(quint64 seed)
{
    Dice dice(seed);
    Scenario scenario;
    scenario.seed = seed;
    scenario.syncBatch = dice.chance(50) ? dice.between(2, 8) : 0;
    addUsersAndDevices(scenario, dice);
    addConversations(scenario, dice);
    addSteps(scenario, dice);
    return scenario;
}

} // namespace ferry::test::chaos
