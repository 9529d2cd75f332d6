#pragma once

#include <QObject>

class QSocketNotifier;

namespace ferry {

/// Turns SIGTERM and SIGINT into a Qt signal delivered on the event loop, so a process can stop
/// cleanly (finish what it is writing, close its sockets) instead of dying mid-write. The signal
/// handler only writes a byte to a pipe, the one thing that is safe to do there.
class UnixSignalWatcher : public QObject {
    Q_OBJECT
public:
    explicit UnixSignalWatcher(QObject* parent = nullptr);
    ~UnixSignalWatcher() override;

Q_SIGNALS:
    /// A termination signal arrived; `signalNumber` is SIGTERM or SIGINT.
    void terminationRequested(int signalNumber);

private:
    void handleReadable();

    QSocketNotifier* m_notifier = nullptr;
};

} // namespace ferry
