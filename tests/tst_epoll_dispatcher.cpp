// The epoll event dispatcher the server runs on, installed in this test process the way
// ferry-server installs it: timers (order, punctuality, zero intervals, bookkeeping), socket
// notifiers (many loopback sockets, enabling and disabling, several on one descriptor, deletion
// from within an activation), wake-ups and interrupts from other threads, the event loop flags,
// nested event loops and a worker thread of its own. Time bounds are generous: the machine is
// shared, and a late timer under load is not what these tests are about; an early one is.

#include "core/EpollEventDispatcher.h"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QPointer>
#include <QSocketNotifier>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTest>
#include <QThread>
#include <QTimer>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace ferry;
using namespace std::chrono_literals;

namespace {

/// How late a timer may be on a busy shared machine before the test calls it wrong.
constexpr qint64 LatenessToleranceMs = 150;

/// A connected pair of Unix stream sockets, closed on destruction.
struct SocketPair {
    int fds[2] = { -1, -1 };
    SocketPair() { ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds); }
    ~SocketPair()
    {
        ::close(fds[0]);
        ::close(fds[1]);
    }
    bool isValid() const { return fds[0] >= 0 && fds[1] >= 0; }
    void writeByte(int side) const
    {
        const char byte = 'x';
        QCOMPARE_EQ(::write(fds[side], &byte, 1), 1);
    }
    int drain(int side) const
    {
        char buffer[256];
        const ssize_t read = ::read(fds[side], buffer, sizeof buffer);
        return read < 0 ? 0 : int(read);
    }
};

/// Runs the event loop until `condition` holds or `timeoutMs` passes.
bool spinUntil(const std::function<bool()>& condition, int timeoutMs = 5000)
{
    QElapsedTimer elapsed;
    elapsed.start();
    while (!condition()) {
        if (elapsed.elapsed() > timeoutMs) {
            return false;
        }
        QCoreApplication::processEvents(QEventLoop::WaitForMoreEvents, 50);
    }
    return true;
}

/// Runs the event loop for `ms` without waiting on any condition.
void spinFor(int ms)
{
    QElapsedTimer elapsed;
    elapsed.start();
    while (elapsed.elapsed() < ms) {
        QCoreApplication::processEvents(QEventLoop::WaitForMoreEvents, ms);
    }
}

} // namespace

class TestEpollDispatcher : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void theMainThreadRunsOnIt();

    // Timers.
    void preciseTimersFireInDeadlineOrderAndNeverEarly();
    void coarseTimersStayWithinFivePercent();
    void aZeroTimerFiresOncePerPassAndStarvesNothing();
    void aRepeatingTimerKeepsFiring();
    void registeredTimersAndRemainingTimeDescribeTheQueue();
    void aTimerKilledInItsOwnHandlerStops();

    // Socket notifiers.
    void manyLoopbackSocketsEchoConcurrently();
    void aDisabledNotifierIsNotActivatedAndAReenabledOneIs();
    void readAndWriteNotifiersShareOneDescriptor();
    void aNotifierDeletedInItsOwnActivationIsNotTouchedAgain();
    void aNotifierDeletedByAnotherActivationOfTheSamePassIsSkipped();
    void excludeSocketNotifiersLeavesReadySocketsForLater();

    // Waking, interrupting, nesting, threads.
    void wakeUpFromAnotherThreadEndsAWait();
    void aQueuedCallFromAnotherThreadIsDelivered();
    void interruptEndsAWait();
    void nestedEventLoopsKeepDispatching();
    void aWorkerThreadRunsOnItsOwnInstance();
};

void TestEpollDispatcher::theMainThreadRunsOnIt()
{
    QVERIFY(qobject_cast<EpollEventDispatcher*>(QAbstractEventDispatcher::instance()));
}

void TestEpollDispatcher::preciseTimersFireInDeadlineOrderAndNeverEarly()
{
    const QList<int> intervals = { 50, 10, 90, 30, 70, 20 };
    QList<int> fired;
    QList<qint64> firedAfterMs;
    QElapsedTimer clock;
    clock.start();
    for (const int interval : intervals) {
        QTimer::singleShot(interval, Qt::PreciseTimer, this, [&, interval] {
            fired.append(interval);
            firedAfterMs.append(clock.elapsed());
        });
    }

    QVERIFY(spinUntil([&] { return fired.size() == intervals.size(); }));
    QList<int> expected = intervals;
    std::sort(expected.begin(), expected.end());
    QCOMPARE(fired, expected);
    for (int i = 0; i < fired.size(); ++i) {
        QVERIFY2(firedAfterMs[i] >= fired[i], "a precise timer fired before its interval");
        QVERIFY2(firedAfterMs[i] <= fired[i] + LatenessToleranceMs, "a timer fired very late");
    }
}

void TestEpollDispatcher::coarseTimersStayWithinFivePercent()
{
    QElapsedTimer clock;
    clock.start();
    qint64 firedAfterMs = -1;
    QTimer::singleShot(400, Qt::CoarseTimer, this, [&] { firedAfterMs = clock.elapsed(); });

    QVERIFY(spinUntil([&] { return firedAfterMs >= 0; }));
    QVERIFY2(firedAfterMs >= 400 - 20, qPrintable(QString::number(firedAfterMs)));
    QVERIFY2(firedAfterMs <= 400 + LatenessToleranceMs, qPrintable(QString::number(firedAfterMs)));
}

void TestEpollDispatcher::aZeroTimerFiresOncePerPassAndStarvesNothing()
{
    int zeroFirings = 0;
    QTimer zero;
    zero.setInterval(0);
    connect(&zero, &QTimer::timeout, this, [&] { ++zeroFirings; });
    zero.start();

    bool laterTimerFired = false;
    bool queuedCallRan = false;
    QTimer::singleShot(30, this, [&] { laterTimerFired = true; });
    QMetaObject::invokeMethod(
        this, [&] { queuedCallRan = true; }, Qt::QueuedConnection);

    // One pass fires the zero timer once: it is due again at once, but only at the next pass.
    zeroFirings = 0;
    QCoreApplication::processEvents();
    QCOMPARE(zeroFirings, 1);

    QVERIFY(spinUntil([&] { return laterTimerFired && queuedCallRan; }));
    QVERIFY(zeroFirings > 1);
}

void TestEpollDispatcher::aRepeatingTimerKeepsFiring()
{
    QTimer timer;
    timer.setTimerType(Qt::PreciseTimer);
    timer.setInterval(20);
    int firings = 0;
    connect(&timer, &QTimer::timeout, this, [&] { ++firings; });
    QElapsedTimer clock;
    clock.start();
    timer.start();

    QVERIFY(spinUntil([&] { return firings >= 10; }));
    QVERIFY2(clock.elapsed() >= 200, "ten firings of a 20 ms timer took less than 200 ms");
}

void TestEpollDispatcher::registeredTimersAndRemainingTimeDescribeTheQueue()
{
    QObject owner;
    const int id = owner.startTimer(1000ms, Qt::PreciseTimer);
    QVERIFY(id > 0);
    auto* dispatcher = QAbstractEventDispatcher::instance();

    const QList<QAbstractEventDispatcher::TimerInfo> timers = dispatcher->registeredTimers(&owner);
    QCOMPARE(timers.size(), 1);
    QCOMPARE(timers.first().timerId, id);
    QCOMPARE(timers.first().interval, 1000);
    QCOMPARE(timers.first().timerType, Qt::PreciseTimer);

    const int remaining = dispatcher->remainingTime(id);
    QVERIFY2(remaining > 800 && remaining <= 1000, qPrintable(QString::number(remaining)));

    owner.killTimer(id);
    QCOMPARE(dispatcher->remainingTime(id), -1);
    QVERIFY(dispatcher->registeredTimers(&owner).isEmpty());
}

void TestEpollDispatcher::aTimerKilledInItsOwnHandlerStops()
{
    QTimer timer;
    timer.setInterval(5);
    int firings = 0;
    connect(&timer, &QTimer::timeout, this, [&] {
        ++firings;
        timer.stop();
    });
    timer.start();
    QVERIFY(spinUntil([&] { return firings == 1; }));
    spinFor(50);
    QCOMPARE(firings, 1);
}

void TestEpollDispatcher::manyLoopbackSocketsEchoConcurrently()
{
    constexpr int Connections = 300;
    QTcpServer server;
    server.setMaxPendingConnections(Connections);
    QVERIFY(server.listen(QHostAddress::LocalHost, 0));
    std::vector<std::unique_ptr<QTcpSocket>> accepted;
    connect(&server, &QTcpServer::newConnection, this, [&] {
        while (QTcpSocket* socket = server.nextPendingConnection()) {
            connect(socket, &QTcpSocket::readyRead, socket,
                [socket] { socket->write(socket->readAll()); });
            accepted.emplace_back(socket);
        }
    });

    std::vector<std::unique_ptr<QTcpSocket>> clients;
    int echoed = 0;
    for (int i = 0; i < Connections; ++i) {
        auto client = std::make_unique<QTcpSocket>();
        const QByteArray payload = QByteArray::number(i).rightJustified(8, '0');
        QTcpSocket* raw = client.get();
        connect(raw, &QTcpSocket::connected, raw, [raw, payload] { raw->write(payload); });
        connect(raw, &QTcpSocket::readyRead, raw, [raw, payload, &echoed] {
            if (raw->bytesAvailable() >= payload.size() && raw->read(payload.size()) == payload) {
                ++echoed;
            }
        });
        client->connectToHost(QHostAddress::LocalHost, server.serverPort());
        clients.push_back(std::move(client));
    }

    QVERIFY(spinUntil([&] { return echoed == Connections; }, 20'000));
    QCOMPARE(int(accepted.size()), Connections);
    clients.clear();
    accepted.clear();
}

void TestEpollDispatcher::aDisabledNotifierIsNotActivatedAndAReenabledOneIs()
{
    SocketPair pair;
    QVERIFY(pair.isValid());
    QSocketNotifier notifier(pair.fds[0], QSocketNotifier::Read);
    int activations = 0;
    connect(&notifier, &QSocketNotifier::activated, this, [&] { ++activations; });

    pair.writeByte(1);
    QVERIFY(spinUntil([&] { return activations > 0; }));

    // Level-triggered: the unread byte keeps the descriptor ready, but a disabled notifier is
    // not told.
    notifier.setEnabled(false);
    activations = 0;
    spinFor(60);
    QCOMPARE(activations, 0);

    notifier.setEnabled(true);
    QVERIFY(spinUntil([&] { return activations > 0; }));
    QCOMPARE(pair.drain(0), 1);

    // Read: no longer ready, so no more activations.
    QCoreApplication::processEvents();
    activations = 0;
    spinFor(60);
    QCOMPARE(activations, 0);
}

void TestEpollDispatcher::readAndWriteNotifiersShareOneDescriptor()
{
    SocketPair pair;
    QVERIFY(pair.isValid());
    QSocketNotifier reader(pair.fds[0], QSocketNotifier::Read);
    QSocketNotifier writer(pair.fds[0], QSocketNotifier::Write);
    int reads = 0;
    int writes = 0;
    connect(&reader, &QSocketNotifier::activated, this, [&] {
        ++reads;
        pair.drain(0);
    });
    connect(&writer, &QSocketNotifier::activated, this, [&] {
        ++writes;
        writer.setEnabled(false);
    });

    // An empty socket buffer is writable at once; nothing is readable yet.
    QVERIFY(spinUntil([&] { return writes == 1; }));
    QCOMPARE(reads, 0);

    // The write notifier went off; the read notifier on the same descriptor still works.
    pair.writeByte(1);
    QVERIFY(spinUntil([&] { return reads == 1; }));
    QCOMPARE(writes, 1);

    // And the write notifier comes back without disturbing the reader.
    writer.setEnabled(true);
    QVERIFY(spinUntil([&] { return writes == 2; }));
    pair.writeByte(1);
    QVERIFY(spinUntil([&] { return reads == 2; }));
}

void TestEpollDispatcher::aNotifierDeletedInItsOwnActivationIsNotTouchedAgain()
{
    SocketPair pair;
    QVERIFY(pair.isValid());
    QPointer<QSocketNotifier> notifier = new QSocketNotifier(pair.fds[0], QSocketNotifier::Read);
    int activations = 0;
    connect(notifier, &QSocketNotifier::activated, this, [&] {
        ++activations;
        delete notifier.data();
    });

    pair.writeByte(1);
    QVERIFY(spinUntil([&] { return activations == 1; }));
    QVERIFY(notifier.isNull());
    // The byte is still there, and nobody may be told about it any more.
    spinFor(60);
    QCOMPARE(activations, 1);
}

void TestEpollDispatcher::aNotifierDeletedByAnotherActivationOfTheSamePassIsSkipped()
{
    // Two descriptors ready in the same pass; whichever is activated first deletes the other's
    // notifier, whose queued activation must then be dropped (ASan would see a use after free).
    SocketPair first;
    SocketPair second;
    QVERIFY(first.isValid() && second.isValid());
    auto* a = new QSocketNotifier(first.fds[0], QSocketNotifier::Read);
    auto* b = new QSocketNotifier(second.fds[0], QSocketNotifier::Read);
    QPointer<QSocketNotifier> guardA = a;
    QPointer<QSocketNotifier> guardB = b;
    int activations = 0;
    connect(a, &QSocketNotifier::activated, this, [&] {
        ++activations;
        delete guardB.data();
        first.drain(0);
    });
    connect(b, &QSocketNotifier::activated, this, [&] {
        ++activations;
        delete guardA.data();
        second.drain(0);
    });

    first.writeByte(1);
    second.writeByte(1);
    QVERIFY(spinUntil([&] { return activations >= 1; }));
    spinFor(60);
    QCOMPARE(activations, 1);
    QVERIFY(guardA.isNull() != guardB.isNull());
    delete guardA.data();
    delete guardB.data();
}

void TestEpollDispatcher::excludeSocketNotifiersLeavesReadySocketsForLater()
{
    SocketPair pair;
    QVERIFY(pair.isValid());
    QSocketNotifier notifier(pair.fds[0], QSocketNotifier::Read);
    int activations = 0;
    connect(&notifier, &QSocketNotifier::activated, this, [&] {
        ++activations;
        pair.drain(0);
    });
    bool timerFired = false;
    QTimer::singleShot(20, this, [&] { timerFired = true; });

    pair.writeByte(1);
    QElapsedTimer clock;
    clock.start();
    while (!timerFired && clock.elapsed() < 2000) {
        QCoreApplication::processEvents(
            QEventLoop::ExcludeSocketNotifiers | QEventLoop::WaitForMoreEvents);
    }
    QVERIFY(timerFired);
    QCOMPARE(activations, 0);

    QVERIFY(spinUntil([&] { return activations == 1; }));
}

void TestEpollDispatcher::wakeUpFromAnotherThreadEndsAWait()
{
    auto* dispatcher = QAbstractEventDispatcher::instance();
    // Whatever earlier tests left posted or woken is dealt with first.
    QCoreApplication::processEvents();
    QCoreApplication::processEvents();
    QElapsedTimer clock;
    clock.start();
    std::thread waker([dispatcher] {
        std::this_thread::sleep_for(100ms);
        dispatcher->wakeUp();
    });
    // Nothing else is due for seconds: only the wake-up can end this wait.
    QTimer far;
    far.start(10'000);
    dispatcher->processEvents(QEventLoop::WaitForMoreEvents);
    const qint64 waitedMs = clock.elapsed();
    waker.join();
    QVERIFY2(waitedMs >= 90 && waitedMs < 5000, qPrintable(QString::number(waitedMs)));
}

void TestEpollDispatcher::aQueuedCallFromAnotherThreadIsDelivered()
{
    // The call is posted while the loop waits with nothing else due: the post must wake it.
    QEventLoop loop;
    bool ran = false;
    std::thread poster([&loop, &ran] {
        std::this_thread::sleep_for(50ms);
        QMetaObject::invokeMethod(
            &loop,
            [&loop, &ran] {
                ran = true;
                loop.quit();
            },
            Qt::QueuedConnection);
    });
    QTimer::singleShot(5000, &loop, &QEventLoop::quit);
    loop.exec();
    poster.join();
    QVERIFY(ran);
}

void TestEpollDispatcher::interruptEndsAWait()
{
    QEventLoop loop;
    std::thread stopper([&loop] {
        std::this_thread::sleep_for(80ms);
        // QEventLoop::exit is meant for this: it is safe from another thread and interrupts the
        // dispatcher's wait.
        loop.exit(7);
    });
    QTimer far;
    far.start(10'000);
    QElapsedTimer clock;
    clock.start();
    const int code = loop.exec();
    stopper.join();
    QCOMPARE(code, 7);
    QVERIFY(clock.elapsed() < 5000);
}

void TestEpollDispatcher::nestedEventLoopsKeepDispatching()
{
    // A repeating timer's handler opens a nested loop; inside it, sockets and other timers keep
    // working, and the outer timer does not fire again until its handler returns.
    SocketPair pair;
    QVERIFY(pair.isValid());
    QSocketNotifier reader(pair.fds[0], QSocketNotifier::Read);
    int reads = 0;
    connect(&reader, &QSocketNotifier::activated, this, [&] {
        ++reads;
        pair.drain(0);
    });

    QTimer outer;
    outer.setInterval(5);
    int outerDepth = 0;
    int outerMaxDepth = 0;
    int outerFirings = 0;
    bool innerTimerFired = false;
    connect(&outer, &QTimer::timeout, this, [&] {
        ++outerFirings;
        ++outerDepth;
        outerMaxDepth = std::max(outerMaxDepth, outerDepth);
        if (outerFirings == 1) {
            QEventLoop nested;
            QTimer::singleShot(10, this, [&] {
                innerTimerFired = true;
                pair.writeByte(1);
            });
            // Quits once the socket has been read inside the nested loop.
            QTimer poll;
            connect(&poll, &QTimer::timeout, &nested, [&] {
                if (reads > 0) {
                    nested.quit();
                }
            });
            poll.start(5);
            QTimer::singleShot(5000, &nested, &QEventLoop::quit);
            nested.exec();
        }
        --outerDepth;
    });
    outer.start();

    QVERIFY(spinUntil([&] { return outerFirings >= 3; }));
    QVERIFY(innerTimerFired);
    QCOMPARE(reads, 1);
    QCOMPARE(outerMaxDepth, 1);
}

void TestEpollDispatcher::aWorkerThreadRunsOnItsOwnInstance()
{
    QThread worker;
    auto* dispatcher = new EpollEventDispatcher;
    worker.setEventDispatcher(dispatcher);
    worker.start();

    QObject context;
    context.moveToThread(&worker);
    std::atomic<int> firings = 0;
    QAbstractEventDispatcher* seen = nullptr;
    QMetaObject::invokeMethod(&context, [&] {
        seen = QAbstractEventDispatcher::instance();
        auto* timer = new QTimer(&context);
        connect(timer, &QTimer::timeout, timer, [&] { ++firings; });
        timer->start(5);
    });

    QVERIFY(spinUntil([&] { return firings.load() >= 3; }));
    QMetaObject::invokeMethod(
        &context,
        [&] {
            qDeleteAll(context.children());
            context.moveToThread(QCoreApplication::instance()->thread());
        },
        Qt::BlockingQueuedConnection);
    worker.quit();
    QVERIFY(worker.wait(5000));
    QCOMPARE(seen, dispatcher);
}

int main(int argc, char* argv[])
{
    // As in ferry-server: the dispatcher is set before the application object exists.
    QCoreApplication::setEventDispatcher(new EpollEventDispatcher);
    QCoreApplication app(argc, argv);
    TestEpollDispatcher test;
    return QTest::qExec(&test, argc, argv);
}

#include "tst_epoll_dispatcher.moc"
