#pragma once

#include <QAbstractEventDispatcher>

#include <array>
#include <atomic>
#include <deque>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

struct epoll_event;

namespace ferry {

/// An event dispatcher for Linux that waits with epoll instead of poll(). Qt's own dispatchers
/// (glib's and Qt's poll-based one) hand every registered socket to the kernel on each wake-up,
/// so a server's cost per message grows with the number of open connections; epoll keeps the
/// interest list in the kernel and reports only the sockets that are ready.
///
/// It implements the whole of QAbstractEventDispatcher on public Qt API:
///  - socket notifiers as level-triggered epoll interest (EPOLLIN for Read, EPOLLOUT for Write,
///    EPOLLPRI for Exception), any of the three on one descriptor;
///  - timers in a queue ordered by deadline. Precise timers fire at their deadline (at most one
///    millisecond late: epoll's timeout is in milliseconds). Coarse timers get their deadline
///    moved by up to 5 % of their interval onto a round boundary, so timers of similar intervals
///    wake the thread together; those under 20 ms are precise. Very coarse timers run on whole
///    seconds. A timer never fires before its deadline, and not again while its own handler runs
///    (for a handler that opens a nested event loop);
///  - wakeUp() from any thread through an eventfd, interrupt(), posted events at the start of
///    each pass, and the flags WaitForMoreEvents, ExcludeSocketNotifiers and X11ExcludeTimers.
///    ExcludeUserInputEvents has nothing to exclude here: there is no window system.
///
/// Install it before the QCoreApplication (QCoreApplication::setEventDispatcher) or before a
/// QThread starts (QThread::setEventDispatcher). docs/design.md has the measurements.
class EpollEventDispatcher final : public QAbstractEventDispatcher {
    Q_OBJECT
public:
    explicit EpollEventDispatcher(QObject* parent = nullptr);
    ~EpollEventDispatcher() override;

    bool processEvents(QEventLoop::ProcessEventsFlags flags) override;

    void registerSocketNotifier(QSocketNotifier* notifier) override;
    void unregisterSocketNotifier(QSocketNotifier* notifier) override;

    void registerTimer(
        int timerId, qint64 interval, Qt::TimerType timerType, QObject* object) override;
    bool unregisterTimer(int timerId) override;
    bool unregisterTimers(QObject* object) override;
    QList<TimerInfo> registeredTimers(QObject* object) const override;
    int remainingTime(int timerId) override;

    void wakeUp() override;
    void interrupt() override;

private:
    struct Timer {
        QObject* object = nullptr;
        qint64 intervalMs = 0;
        Qt::TimerType type = Qt::CoarseTimer;
        qint64 deadlineNs = 0;
        bool inHandler = false; ///< its QTimerEvent is being delivered
    };

    /// The notifiers of one file descriptor, indexed by QSocketNotifier::Type.
    struct Watch {
        std::array<QSocketNotifier*, 3> notifiers {};
        quint32 registeredEvents = 0; ///< the epoll event mask the kernel holds, 0: not added
        quint8 pendingTypes = 0; ///< bit per type: an activation is queued in m_pending
        bool alwaysReady = false; ///< a regular file, which epoll refuses and poll() reports ready
    };

    void updateInterest(int fd);
    void markPending(int fd, quint32 readyEvents);
    int activateSocketNotifiers();
    int activateTimers();
    void drainWakeUp();
    /// Milliseconds until the first timer is due (rounded up), -1 when there is none.
    int timeUntilFirstTimerMs() const;
    void scheduleTimer(int timerId, Timer& timer, qint64 fromNs);

    int m_epollFd = -1;
    int m_wakeUpFd = -1;
    std::atomic<bool> m_wakeUpPending { false };
    std::atomic<bool> m_interrupted { false };

    std::vector<Watch> m_watches; ///< indexed by file descriptor
    int m_alwaysReadyCount = 0;
    /// Activations found ready and not yet delivered, as (fd, type). Shared by nested loops.
    std::deque<std::pair<int, int>> m_pending;
    std::vector<epoll_event> m_readyEvents;

    std::unordered_map<int, Timer> m_timers;
    std::set<std::pair<qint64, int>> m_timerQueue; ///< (deadline in ns, timer id)
};

} // namespace ferry
