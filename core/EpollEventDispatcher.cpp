#include "core/EpollEventDispatcher.h"

#include "core/Logging.h"

#include <QCoreApplication>
#include <QSocketNotifier>
#include <QThread>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace ferry {

namespace {

    /// Ready descriptors taken from the kernel in one wait. The rest stay ready (level-triggered)
    /// and come with the next pass, after posted events and timers have had their turn.
    constexpr int MaxReadyPerWait = 1024;

    constexpr qint64 NsPerMs = 1'000'000;

    constexpr std::array<quint32, 3> EventsOfType = { EPOLLIN, EPOLLOUT, EPOLLPRI };
    /// What the kernel may report for each type: errors and hang-ups wake a reader and a writer,
    /// which then find out by reading or writing, as they would with poll().
    constexpr std::array<quint32, 3> ReadyEventsOfType = {
        EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP,
        EPOLLOUT | EPOLLHUP | EPOLLERR,
        EPOLLPRI,
    };

    qint64 nowNs()
    {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

    /// The deadline of a timer started at `fromNs`, with Qt's timer types approximated: coarse
    /// timers are moved by at most 5 % of their interval onto the roundest nearby boundary, so
    /// that timers of similar intervals fall due together and wake the thread once.
    qint64 deadlineAfter(Qt::TimerType type, qint64 intervalMs, qint64 fromNs)
    {
        if (intervalMs == 0) {
            return fromNs;
        }
        if (type == Qt::CoarseTimer && intervalMs >= 20'000) {
            type = Qt::VeryCoarseTimer;
        }
        if (type == Qt::VeryCoarseTimer) {
            const qint64 seconds = std::max<qint64>(1, (intervalMs + 500) / 1000);
            const qint64 ideal = fromNs + seconds * 1000 * NsPerMs;
            const qint64 second = 1000 * NsPerMs;
            return (ideal + second / 2) / second * second;
        }
        const qint64 ideal = fromNs + intervalMs * NsPerMs;
        if (type == Qt::PreciseTimer || intervalMs < 20) {
            return ideal;
        }
        const qint64 slackMs = intervalMs / 20;
        for (const qint64 granularityMs : { 1000, 500, 250, 100, 50, 25, 10, 5, 2 }) {
            if (granularityMs <= slackMs) {
                const qint64 granularity = granularityMs * NsPerMs;
                return (ideal + granularity / 2) / granularity * granularity;
            }
        }
        return ideal;
    }

} // namespace

EpollEventDispatcher::EpollEventDispatcher(QObject* parent)
    : QAbstractEventDispatcher(parent)
    , m_readyEvents(MaxReadyPerWait)
{
    m_epollFd = epoll_create1(EPOLL_CLOEXEC);
    m_wakeUpFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m_epollFd < 0 || m_wakeUpFd < 0) {
        // Nothing can run without them; failing loudly beats a loop that never wakes.
        qFatal("EpollEventDispatcher: could not create the epoll or eventfd descriptor: %s",
            std::strerror(errno));
    }
    epoll_event wake {};
    wake.events = EPOLLIN;
    wake.data.fd = m_wakeUpFd;
    if (epoll_ctl(m_epollFd, EPOLL_CTL_ADD, m_wakeUpFd, &wake) != 0) {
        qFatal("EpollEventDispatcher: could not watch the wake-up descriptor: %s",
            std::strerror(errno));
    }
}

EpollEventDispatcher::~EpollEventDispatcher()
{
    ::close(m_wakeUpFd);
    ::close(m_epollFd);
}

// Waiting and dispatching -------------------------------------------------------------------

bool EpollEventDispatcher::processEvents(QEventLoop::ProcessEventsFlags flags)
{
    m_interrupted.store(false, std::memory_order_relaxed);
    Q_EMIT awake();
    QCoreApplication::sendPostedEvents();

    const bool includeTimers = !flags.testFlag(QEventLoop::X11ExcludeTimers);
    const bool includeNotifiers = !flags.testFlag(QEventLoop::ExcludeSocketNotifiers);
    const bool haveReadyWork = (includeNotifiers && (!m_pending.empty() || m_alwaysReadyCount > 0));
    const bool canWait = flags.testFlag(QEventLoop::WaitForMoreEvents) && !haveReadyWork
        && !m_interrupted.load(std::memory_order_relaxed);

    int timeoutMs = 0;
    if (canWait) {
        timeoutMs = includeTimers ? timeUntilFirstTimerMs() : -1;
        Q_EMIT aboutToBlock();
    }
    if (m_interrupted.load(std::memory_order_relaxed)) {
        return false;
    }

    int eventCount = 0;
    if (includeNotifiers) {
        const int ready = epoll_wait(m_epollFd, m_readyEvents.data(), MaxReadyPerWait, timeoutMs);
        if (ready < 0 && errno != EINTR) {
            qCWarning(lcEventLoop) << "Could not wait for events:" << std::strerror(errno);
        }
        for (int i = 0; i < ready; ++i) {
            const int fd = m_readyEvents[i].data.fd;
            if (fd == m_wakeUpFd) {
                drainWakeUp();
                ++eventCount;
            } else {
                markPending(fd, m_readyEvents[i].events);
            }
        }
        if (m_alwaysReadyCount > 0) {
            for (int fd = 0; fd < int(m_watches.size()); ++fd) {
                if (m_watches[fd].alwaysReady) {
                    markPending(fd, EPOLLIN | EPOLLOUT);
                }
            }
        }
        eventCount += activateSocketNotifiers();
    } else {
        // Sockets are not to be looked at: wait for a wake-up or the next timer only.
        pollfd wake { m_wakeUpFd, POLLIN, 0 };
        if (::poll(&wake, 1, timeoutMs) > 0) {
            drainWakeUp();
            ++eventCount;
        }
    }
    if (includeTimers) {
        eventCount += activateTimers();
    }
    return eventCount > 0;
}

void EpollEventDispatcher::drainWakeUp()
{
    // Read first, then cleared: a wakeUp() that found the flag still set skipped its write, but
    // its event was posted before that, hence before the next pass sends posted events. Cleared
    // first, a wakeUp() in between would write, have its write read here and leave the flag set
    // with nothing to read: every later wake-up would be lost.
    quint64 count = 0;
    [[maybe_unused]] const ssize_t ignored = ::read(m_wakeUpFd, &count, sizeof count);
    m_wakeUpPending.store(false, std::memory_order_release);
}

void EpollEventDispatcher::wakeUp()
{
    if (m_wakeUpPending.exchange(true, std::memory_order_acq_rel)) {
        return;
    }
    const quint64 one = 1;
    [[maybe_unused]] const ssize_t ignored = ::write(m_wakeUpFd, &one, sizeof one);
}

void EpollEventDispatcher::interrupt()
{
    m_interrupted.store(true, std::memory_order_relaxed);
    wakeUp();
}

// Socket notifiers ---------------------------------------------------------------------------

void EpollEventDispatcher::registerSocketNotifier(QSocketNotifier* notifier)
{
    const qintptr socket = notifier->socket();
    if (socket < 0 || socket > std::numeric_limits<int>::max()) {
        qCWarning(lcEventLoop) << "Could not watch an invalid descriptor" << socket;
        return;
    }
    const int fd = static_cast<int>(socket);
    if (fd >= int(m_watches.size())) {
        m_watches.resize(std::max<size_t>(size_t(fd) + 1, m_watches.size() * 2));
    }
    Watch& watch = m_watches[fd];
    QSocketNotifier*& slot = watch.notifiers[notifier->type()];
    if (slot && slot != notifier) {
        qCWarning(lcEventLoop) << "Several socket notifiers of one type on descriptor" << fd
                               << "; the newest wins";
    }
    slot = notifier;
    updateInterest(fd);
}

void EpollEventDispatcher::unregisterSocketNotifier(QSocketNotifier* notifier)
{
    const qintptr socket = notifier->socket();
    if (socket < 0 || socket >= qintptr(m_watches.size())) {
        return;
    }
    const int fd = static_cast<int>(socket);
    Watch& watch = m_watches[fd];
    const int type = notifier->type();
    if (watch.notifiers[type] != notifier) {
        return;
    }
    // A queued activation of this notifier is dropped with it: the notifier may be about to be
    // deleted, from within its own activation or another's.
    watch.notifiers[type] = nullptr;
    watch.pendingTypes &= ~(1u << type);
    updateInterest(fd);
}

void EpollEventDispatcher::updateInterest(int fd)
{
    Watch& watch = m_watches[fd];
    quint32 wanted = 0;
    for (int type = 0; type < 3; ++type) {
        if (watch.notifiers[type]) {
            wanted |= EventsOfType[type];
        }
    }

    if (watch.alwaysReady) {
        if (wanted == 0) {
            watch.alwaysReady = false;
            --m_alwaysReadyCount;
        }
        return;
    }
    if (wanted == watch.registeredEvents) {
        return;
    }
    epoll_event event {};
    event.events = wanted;
    event.data.fd = fd;
    if (wanted == 0) {
        // Fails harmlessly when the descriptor was closed first: the kernel dropped it then.
        epoll_ctl(m_epollFd, EPOLL_CTL_DEL, fd, &event);
        watch.registeredEvents = 0;
        return;
    }
    // The descriptor may have been closed and reused since it was added, or dropped by the
    // kernel on close; whichever of add or modify is wrong is corrected by the other.
    int result
        = epoll_ctl(m_epollFd, watch.registeredEvents ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event);
    if (result != 0 && errno == ENOENT) {
        result = epoll_ctl(m_epollFd, EPOLL_CTL_ADD, fd, &event);
    } else if (result != 0 && errno == EEXIST) {
        result = epoll_ctl(m_epollFd, EPOLL_CTL_MOD, fd, &event);
    }
    if (result == 0) {
        watch.registeredEvents = wanted;
    } else if (errno == EPERM) {
        // A regular file: poll() would call it ready at every pass, and so does this.
        watch.alwaysReady = true;
        watch.registeredEvents = 0;
        ++m_alwaysReadyCount;
    } else {
        qCWarning(lcEventLoop) << "Could not watch descriptor" << fd << ":" << std::strerror(errno);
    }
}

void EpollEventDispatcher::markPending(int fd, quint32 readyEvents)
{
    if (fd < 0 || fd >= int(m_watches.size())) {
        return;
    }
    Watch& watch = m_watches[fd];
    for (int type = 0; type < 3; ++type) {
        const quint8 bit = quint8(1u << type);
        if (watch.notifiers[type] && (readyEvents & ReadyEventsOfType[type])
            && !(watch.pendingTypes & bit)) {
            watch.pendingTypes |= bit;
            m_pending.emplace_back(fd, type);
        }
    }
}

int EpollEventDispatcher::activateSocketNotifiers()
{
    int activated = 0;
    // A notifier's handler may open a nested event loop, which takes from the same queue, or
    // unregister notifiers, which drops their queued activations.
    while (!m_pending.empty()) {
        const auto [fd, type] = m_pending.front();
        m_pending.pop_front();
        if (fd >= int(m_watches.size())) {
            continue;
        }
        Watch& watch = m_watches[fd];
        const quint8 bit = quint8(1u << type);
        if (!(watch.pendingTypes & bit)) {
            continue;
        }
        watch.pendingTypes &= ~bit;
        QSocketNotifier* notifier = watch.notifiers[type];
        if (!notifier) {
            continue;
        }
        QEvent event(QEvent::SockAct);
        QCoreApplication::sendEvent(notifier, &event);
        ++activated;
    }
    return activated;
}

// Timers -------------------------------------------------------------------------------------

void EpollEventDispatcher::registerTimer(
    int timerId, qint64 interval, Qt::TimerType timerType, QObject* object)
{
    if (timerId < 1 || interval < 0 || !object) {
        qCWarning(lcEventLoop) << "Could not register timer" << timerId << ": invalid arguments";
        return;
    }
    Timer& timer = m_timers[timerId];
    m_timerQueue.erase({ timer.deadlineNs, timerId });
    timer.object = object;
    timer.intervalMs = interval;
    timer.type = timerType;
    timer.inHandler = false;
    scheduleTimer(timerId, timer, nowNs());
}

void EpollEventDispatcher::scheduleTimer(int timerId, Timer& timer, qint64 fromNs)
{
    timer.deadlineNs = deadlineAfter(timer.type, timer.intervalMs, fromNs);
    m_timerQueue.emplace(timer.deadlineNs, timerId);
}

bool EpollEventDispatcher::unregisterTimer(int timerId)
{
    const auto found = m_timers.find(timerId);
    if (found == m_timers.end()) {
        return false;
    }
    m_timerQueue.erase({ found->second.deadlineNs, timerId });
    m_timers.erase(found);
    return true;
}

bool EpollEventDispatcher::unregisterTimers(QObject* object)
{
    bool any = false;
    for (auto it = m_timers.begin(); it != m_timers.end();) {
        if (it->second.object == object) {
            m_timerQueue.erase({ it->second.deadlineNs, it->first });
            it = m_timers.erase(it);
            any = true;
        } else {
            ++it;
        }
    }
    return any;
}

QList<QAbstractEventDispatcher::TimerInfo> EpollEventDispatcher::registeredTimers(
    QObject* object) const
{
    QList<TimerInfo> timers;
    for (const auto& [id, timer] : m_timers) {
        if (timer.object == object) {
            timers.append(TimerInfo(id, int(timer.intervalMs), timer.type));
        }
    }
    return timers;
}

int EpollEventDispatcher::remainingTime(int timerId)
{
    const auto found = m_timers.find(timerId);
    if (found == m_timers.end()) {
        return -1;
    }
    const qint64 remainingNs = found->second.deadlineNs - nowNs();
    return remainingNs <= 0 ? 0 : int((remainingNs + NsPerMs - 1) / NsPerMs);
}

int EpollEventDispatcher::timeUntilFirstTimerMs() const
{
    for (const auto& [deadlineNs, id] : m_timerQueue) {
        // A timer whose handler is running (and opened a nested loop) does not count: it will
        // not fire before its handler returns.
        if (m_timers.at(id).inHandler) {
            continue;
        }
        const qint64 waitNs = deadlineNs - nowNs();
        if (waitNs <= 0) {
            return 0;
        }
        const qint64 waitMs = (waitNs + NsPerMs - 1) / NsPerMs;
        return int(std::min<qint64>(waitMs, std::numeric_limits<int>::max()));
    }
    return -1;
}

int EpollEventDispatcher::activateTimers()
{
    const qint64 now = nowNs();
    // Only the timers due when the pass began: a timer of interval 0 fires once per pass, and a
    // handler that restarts timers does not keep this loop going.
    std::vector<int> due;
    for (const auto& [deadlineNs, id] : m_timerQueue) {
        if (deadlineNs > now) {
            break;
        }
        due.push_back(id);
    }

    int fired = 0;
    for (const int id : due) {
        auto found = m_timers.find(id);
        if (found == m_timers.end() || found->second.inHandler || found->second.deadlineNs > now) {
            continue;
        }
        Timer& timer = found->second;
        // The next deadline follows the previous one, so a repeating timer keeps its rhythm;
        // one that fell behind by a whole interval skips what it missed instead of catching up.
        m_timerQueue.erase({ timer.deadlineNs, id });
        const qint64 from
            = timer.deadlineNs + timer.intervalMs * NsPerMs > now ? timer.deadlineNs : now;
        scheduleTimer(id, timer, from);
        timer.inHandler = true;
        QObject* object = timer.object;

        QTimerEvent event(id);
        QCoreApplication::sendEvent(object, &event);
        ++fired;

        // The handler may have killed the timer, or killed it and started another that got the
        // same id; either way the entry found now is not in a handler.
        if (auto after = m_timers.find(id); after != m_timers.end()) {
            after->second.inHandler = false;
        }
    }
    return fired;
}

} // namespace ferry
