#include "tests/chaos/ChaosExecutor.h"

#include "core/ConversationId.h"
#include "tests/support/FaultProxy.h"
#include "tests/support/ServerProcess.h"

#include <QDir>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QJsonDocument>
#include <QTimer>

namespace ferry::test::chaos {

Q_LOGGING_CATEGORY(lcChaos, "ferry.chaos", QtInfoMsg)

namespace {

    // A sync that meets a stalled link gives up after this; any other sync has time to wait out
    // a server restart and a few backoff delays.
    constexpr int StalledSyncTimeoutS = 4;
    constexpr int SyncTimeoutS = 15;
    // How long a process may take beyond its own timeout before the executor kills it.
    constexpr int ProcessGraceMs = 15'000;
    // Final syncs: three rounds let a message written last reach everyone, the delivered
    // receipts for it go back, and those receipts reach the writer's other devices.
    constexpr int SettleRounds = 3;
    constexpr int SyncAttempts = 3;
    // All final syncs together take seconds; a server that stopped answering must not make
    // them take 3 rounds x 12 devices x 3 attempts x the sync timeout.
    constexpr int SettleBudgetMs = 120'000;

    QList<QJsonObject> jsonLines(const QString& text)
    {
        QList<QJsonObject> objects;
        for (const QString& line : text.split(u'\n', Qt::SkipEmptyParts)) {
            const QJsonDocument document = QJsonDocument::fromJson(line.toUtf8());
            if (document.isObject()) {
                objects.append(document.object());
            }
        }
        return objects;
    }

    ProxyFault toProxyFault(const LinkFault& link)
    {
        switch (link.mode) {
        case LinkFault::Mode::CutBeforeSendAck:
            return ProxyFault::cutBeforeSendAck();
        case LinkFault::Mode::CutAfterFrames:
            return ProxyFault::cutAfterFrames(link.frames);
        case LinkFault::Mode::Stall:
            return ProxyFault::stall();
        case LinkFault::Mode::CutAfterSendAck:
            return ProxyFault::cutAfterSendAck(link.frames);
        case LinkFault::Mode::Delay:
            return ProxyFault::delay(link.delayMs, link.jitterMs);
        case LinkFault::Mode::DuplicateSend:
            return ProxyFault::duplicateClientFrame(QStringLiteral("send"), link.frames);
        case LinkFault::Mode::DuplicateEvents:
            return ProxyFault::duplicateServerFrame(QStringLiteral("events"), link.frames);
        case LinkFault::Mode::RefuseHandshake:
            return ProxyFault::refuseHandshake(503);
        case LinkFault::Mode::CloseAtOnce:
            return ProxyFault::closeAtOnce();
        case LinkFault::Mode::Pass:
            break;
        }
        return ProxyFault::pass();
    }

    /// Waits `delayMs` for the process, then kills it if it is still running; true if the kill
    /// hit a running process.
    bool killAfter(QProcess& process, int delayMs)
    {
        if (waitTurningEvents(process, delayMs)) {
            return false;
        }
        process.kill();
        waitTurningEvents(process, ProcessGraceMs);
        return true;
    }

} // namespace

bool waitTurningEvents(QProcess& process, int timeoutMs)
{
    if (process.state() == QProcess::NotRunning) {
        return true;
    }
    QEventLoop loop;
    QTimer deadline;
    deadline.setSingleShot(true);
    QObject::connect(&process, &QProcess::finished, &loop, &QEventLoop::quit);
    QObject::connect(&process, &QProcess::errorOccurred, &loop, &QEventLoop::quit);
    QObject::connect(&deadline, &QTimer::timeout, &loop, &QEventLoop::quit);
    deadline.start(timeoutMs);
    // The process may have ended between the check above and the connections.
    if (process.state() != QProcess::NotRunning) {
        loop.exec();
    }
    return process.state() == QProcess::NotRunning;
}

void pauseTurningEvents(int ms)
{
    QEventLoop loop;
    QTimer::singleShot(ms, &loop, &QEventLoop::quit);
    loop.exec();
}

struct ChaosExecutor::Device {
    Device(const DeviceSpec& spec, const QString& profileDir, quint16 serverPort)
        : spec(spec)
        , ctl(profileDir)
        , proxy(serverPort)
    {
    }

    DeviceSpec spec;
    Ctl ctl;
    FaultProxy proxy;
    std::unique_ptr<QProcess> listen;
    QList<LinkFault> plannedLinks;
    int acceptedWhenPlanned = 0;
};

ChaosExecutor::ChaosExecutor(const Scenario& scenario, QString rootDir)
    : m_scenario(scenario)
    , m_rootDir(std::move(rootDir))
{
}

ChaosExecutor::~ChaosExecutor()
{
    for (const std::unique_ptr<Device>& device : m_devices) {
        if (device->listen) {
            device->listen->kill();
            device->listen->waitForFinished(ProcessGraceMs);
        }
    }
}

RunRecord ChaosExecutor::run()
{
    const Result<Done> ready = setUp();
    if (!ready) {
        m_record.setupError = ready.error().message;
        return m_record;
    }
    const QStringList names = m_scenario.deviceNames();
    QElapsedTimer elapsed;
    elapsed.start();
    for (const Step& step : m_scenario.steps) {
        qCDebug(lcChaos, "%6lld ms: %s", elapsed.elapsed(), qPrintable(step.describe(names)));
        execute(step);
    }
    settle();
    return m_record;
}

Result<Done> ChaosExecutor::setUp()
{
    QStringList serverOptions;
    if (m_scenario.syncBatch > 0) {
        serverOptions << QStringLiteral("--sync-batch") << QString::number(m_scenario.syncBatch);
    }
    m_server = std::make_unique<ServerProcess>(
        QDir(m_rootDir).filePath(QStringLiteral("server")), serverOptions);
    if (!m_server->start()) {
        return Error { QStringLiteral("server"), m_server->errorString() };
    }

    // Accounts and groups are made directly with the server, before any fault: they are the
    // stage, not the play.
    QList<bool> registered(m_scenario.users.size(), false);
    for (const DeviceSpec& spec : m_scenario.devices) {
        auto device
            = std::make_unique<Device>(spec, QDir(m_rootDir).filePath(spec.name), m_server->port());
        device->ctl.setServerUrl(m_server->url());
        const QString user = m_scenario.users[spec.user];
        const CtlRun joined = registered[spec.user] ? device->ctl.login(user, spec.name)
                                                    : device->ctl.registerUser(user, spec.name);
        if (!joined.ok()) {
            return Error { QStringLiteral("ferryctl"), joined.describe() };
        }
        registered[spec.user] = true;
        m_devices.push_back(std::move(device));
    }

    for (const ConversationSpec& conversation : m_scenario.conversations) {
        QStringList members;
        for (const int user : conversation.members) {
            members.append(m_scenario.users[user]);
        }
        if (!conversation.group) {
            m_conversationIds.append(directConversationId(members[0], members[1]));
            continue;
        }
        const auto creator = std::find_if(m_devices.begin(), m_devices.end(),
            [&](const auto& device) { return device->spec.user == conversation.members[0]; });
        const CtlRun created
            = (*creator)->ctl.run({ QStringLiteral("group"), QStringLiteral("create"),
                conversation.title, QStringLiteral("--members"), members.mid(1).join(u',') });
        if (!created.ok()) {
            return Error { QStringLiteral("ferryctl"), created.describe() };
        }
        m_conversationIds.append(created.out.trimmed());
    }

    // Every device learns of the groups before it writes to them.
    for (const std::unique_ptr<Device>& device : m_devices) {
        const CtlRun synced = device->ctl.sync(SyncTimeoutS);
        if (!synced.ok()) {
            return Error { QStringLiteral("ferryctl"), synced.describe() };
        }
    }

    for (const std::unique_ptr<Device>& device : m_devices) {
        if (!device->proxy.listen()) {
            return Error { QStringLiteral("proxy"), device->proxy.errorString() };
        }
        device->ctl.setServerUrl(device->proxy.url());
    }
    return Done {};
}

void ChaosExecutor::execute(const Step& step)
{
    switch (step.action) {
    case Step::Action::Send:
        send(step);
        break;
    case Step::Action::Sync:
        sync(step);
        break;
    case Step::Action::StartListening:
        startListening(step);
        break;
    case Step::Action::StopListening:
        stopListening(step);
        break;
    case Step::Action::MarkRead:
        markRead(step);
        break;
    case Step::Action::Cancel:
        cancel(step);
        break;
    case Step::Action::RestartServer:
        restartServer(step.processFault, step.downMs);
        break;
    case Step::Action::Wait:
        pauseTurningEvents(step.downMs);
        break;
    }
}

void ChaosExecutor::send(const Step& step)
{
    for (int i = 1; i <= step.messages; ++i) {
        sendOne(step, step.hasProcessFault && i == step.messages);
    }
}

void ChaosExecutor::sendOne(const Step& step, bool killed)
{
    Device& device = *m_devices[step.device];
    WrittenMessage message;
    message.device = step.device;
    message.conversation = step.conversation;
    message.body = u"m" + QString::number(m_scenario.seed) + u'-' + QString::number(m_nextBody++)
        + u" from " + device.spec.name;

    std::unique_ptr<QProcess> process = device.ctl.start({ QStringLiteral("--json"),
        QStringLiteral("send"), m_conversationIds[step.conversation], message.body });
    const bool hit = killed && killAfter(*process, step.delayMs);
    if (hit) {
        countFault(FaultKind::ClientKilledDuringSend);
    }
    if (!waitTurningEvents(*process, ProcessGraceMs)) {
        process->kill();
        process->waitForFinished(ProcessGraceMs);
    }
    if (process->exitStatus() == QProcess::NormalExit && process->exitCode() == 0) {
        const QList<QJsonObject> printed
            = jsonLines(QString::fromUtf8(process->readAllStandardOutput()));
        if (!printed.isEmpty()) {
            message.id = printed.first().value(QStringLiteral("id")).toString();
        }
    }
    if (!hit && !message.confirmed()) {
        m_record.failedSends.append(device.spec.name + u": send \"" + message.body
            + u"\" exited with " + QString::number(process->exitCode()) + u": "
            + QString::fromUtf8(process->readAllStandardError()).trimmed());
    }
    m_record.writes.append(message);
}

void ChaosExecutor::sync(const Step& step)
{
    Device& device = *m_devices[step.device];
    planLinks(device, step.links);
    const bool stalls = std::any_of(step.links.begin(), step.links.end(),
        [](const LinkFault& link) { return link.mode == LinkFault::Mode::Stall; });
    const int timeoutS = stalls ? StalledSyncTimeoutS : SyncTimeoutS;

    std::unique_ptr<QProcess> process = device.ctl.start(
        { QStringLiteral("sync"), QStringLiteral("--timeout"), QString::number(timeoutS) });
    if (step.hasProcessFault && step.processFault == FaultKind::ClientKilledDuringSync) {
        if (killAfter(*process, step.delayMs)) {
            countFault(FaultKind::ClientKilledDuringSync);
        }
    } else if (step.hasProcessFault) {
        // The server goes down while this device catches up, if it still does by then.
        const bool caughtUpAlready = waitTurningEvents(*process, step.delayMs);
        const bool kill = step.processFault == FaultKind::ServerKilledDuringCatchUp;
        FaultKind hit = step.processFault;
        if (caughtUpAlready) {
            hit = kill ? FaultKind::ServerKilled : FaultKind::ServerTerminated;
        }
        restartServer(hit, step.downMs);
    }
    if (!waitTurningEvents(*process, timeoutS * 1000 + ProcessGraceMs)) {
        qCWarning(lcChaos, "%s: sync did not end within its timeout; killed",
            qPrintable(device.spec.name));
        process->kill();
        process->waitForFinished(ProcessGraceMs);
    }
}

void ChaosExecutor::startListening(const Step& step)
{
    Device& device = *m_devices[step.device];
    planLinks(device, step.links);
    device.listen = device.ctl.start({ QStringLiteral("listen") });
}

void ChaosExecutor::stopListening(const Step& step)
{
    Device& device = *m_devices[step.device];
    if (!device.listen) {
        return;
    }
    const bool running = device.listen->state() != QProcess::NotRunning;
    if (step.hasProcessFault) {
        device.listen->kill();
        if (running) {
            countFault(FaultKind::ClientKilledWhileListening);
        }
    } else {
        device.listen->terminate();
    }
    if (!waitTurningEvents(*device.listen, ProcessGraceMs)) {
        device.listen->kill();
        device.listen->waitForFinished(ProcessGraceMs);
    }
    device.listen.reset();
}

void ChaosExecutor::markRead(const Step& step)
{
    const Device& device = *m_devices[step.device];
    const CtlRun read
        = device.ctl.run({ QStringLiteral("read"), m_conversationIds[step.conversation] },
            ProcessGraceMs, waitTurningEvents);
    // A device that holds nothing of the conversation yet has nothing to mark.
    if (read.ok()) {
        ++m_record.readMarks;
    }
}

void ChaosExecutor::cancel(const Step& step)
{
    for (auto write = m_record.writes.rbegin(); write != m_record.writes.rend(); ++write) {
        if (write->device != step.device || !write->confirmed()) {
            continue;
        }
        if (write->cancelled) {
            return;
        }
        const CtlRun cancelled = m_devices[step.device]->ctl.run(
            { QStringLiteral("outbox"), QStringLiteral("cancel"), write->id }, ProcessGraceMs,
            waitTurningEvents);
        // Exit 2: no longer queued, it was sent already and stays.
        if (cancelled.ok()) {
            write->cancelled = true;
            ++m_record.cancels;
        }
        return;
    }
}

void ChaosExecutor::restartServer(FaultKind how, int downMs)
{
    if (!m_server->isRunning()) {
        ensureServerRunning();
        return;
    }
    countFault(how);
    if (how == FaultKind::ServerKilled || how == FaultKind::ServerKilledDuringCatchUp) {
        m_server->kill();
    } else {
        m_server->requestStop();
        // Turning events: clients behind the proxies answer the server's close frames.
        if (!m_server->waitForStopped()) {
            m_record.uncleanServerStops.append(m_server->errorString());
        }
    }
    pauseTurningEvents(downMs);
    ensureServerRunning();
}

bool ChaosExecutor::ensureServerRunning()
{
    if (m_server->isRunning()) {
        return true;
    }
    if (!m_server->restart()) {
        qCWarning(lcChaos, "server restart: %s", qPrintable(m_server->errorString()));
        return false;
    }
    ++m_record.serverRestarts;
    for (const std::unique_ptr<Device>& device : m_devices) {
        device->proxy.setServerPort(m_server->port());
    }
    return true;
}

void ChaosExecutor::planLinks(Device& device, const QList<LinkFault>& links)
{
    countTakenLinkFaults(device);
    QList<ProxyFault> plan;
    for (const LinkFault& link : links) {
        plan.append(toProxyFault(link));
    }
    device.proxy.planConnections(plan);
    device.plannedLinks = links;
    device.acceptedWhenPlanned = device.proxy.acceptedCount();
}

void ChaosExecutor::countTakenLinkFaults(Device& device)
{
    const int taken = std::min(static_cast<int>(device.plannedLinks.size()),
        device.proxy.acceptedCount() - device.acceptedWhenPlanned);
    for (int i = 0; i < taken; ++i) {
        if (device.plannedLinks[i].isFault()) {
            countFault(device.plannedLinks[i].kind());
        }
    }
    device.plannedLinks.clear();
    device.acceptedWhenPlanned = device.proxy.acceptedCount();
}

void ChaosExecutor::settle()
{
    for (const std::unique_ptr<Device>& device : m_devices) {
        if (device->listen) {
            device->listen->terminate();
            if (!waitTurningEvents(*device->listen, ProcessGraceMs)) {
                device->listen->kill();
                device->listen->waitForFinished(ProcessGraceMs);
            }
            device->listen.reset();
        }
        planLinks(*device, {});
    }
    if (!ensureServerRunning()) {
        m_record.setupError = u"the server did not start again: " + m_server->errorString();
        return;
    }

    QElapsedTimer settling;
    settling.start();
    for (int round = 1; round <= SettleRounds; ++round) {
        for (int index = 0; index < static_cast<int>(m_devices.size()); ++index) {
            const Device& device = *m_devices[index];
            CtlRun synced;
            synced.err = QStringLiteral("not tried: the final syncs ran out of time");
            for (int attempt = 1;
                 attempt <= SyncAttempts && !synced.ok() && settling.elapsed() < SettleBudgetMs;
                 ++attempt) {
                synced = device.ctl.run({ QStringLiteral("sync"), QStringLiteral("--timeout"),
                                            QString::number(SyncTimeoutS) },
                    SyncTimeoutS * 1000 + ProcessGraceMs, waitTurningEvents);
            }
            if (!synced.ok()) {
                m_record.unsyncedDevices.insert(
                    index, u"round " + QString::number(round) + u": " + synced.describe());
            }
        }
    }
}

QList<DeviceState> ChaosExecutor::collect() const
{
    QList<DeviceState> states;
    for (const std::unique_ptr<Device>& device : m_devices) {
        DeviceState state;
        for (const int conversation : m_scenario.conversationsOf(device->spec.user)) {
            const Result<QList<QJsonObject>> history
                = device->ctl.history(m_conversationIds[conversation]);
            if (!history) {
                state.readError += history.error().message + u'\n';
                continue;
            }
            state.histories.insert(conversation, history.value());
        }

        const CtlRun summaries
            = device->ctl.run({ QStringLiteral("--json"), QStringLiteral("conversations") });
        const CtlRun outbox
            = device->ctl.run({ QStringLiteral("--json"), QStringLiteral("outbox") });
        if (!summaries.ok() || !outbox.ok()) {
            state.readError += (summaries.ok() ? outbox : summaries).describe() + u'\n';
        }
        for (const QJsonObject& summary : jsonLines(summaries.out)) {
            const qsizetype conversation = m_conversationIds.indexOf(
                summary.value(QStringLiteral("conversation")).toString());
            if (conversation >= 0) {
                state.summaries.insert(static_cast<int>(conversation), summary);
            }
        }
        state.outbox = jsonLines(outbox.out);
        states.append(state);
    }
    return states;
}

} // namespace ferry::test::chaos
