// Benchmark, not a test: fills a profile with 100,000 messages in one conversation, then opens
// the app's window on it (offscreen) and prints the time to the first frame that shows the
// conversation, and how long each older page takes to arrive. Run it by hand:
//   QT_QPA_PLATFORM=offscreen build/ui/bench/bench_message_paging [messages]

#include "core/ClientStore.h"
#include "core/MessageId.h"
#include "ui/AppWindow.h"
#include "ui/ChatSession.h"

#include <QElapsedTimer>
#include <QGuiApplication>
#include <QQmlApplicationEngine>
#include <QQuickWindow>
#include <QTemporaryDir>
#include <QtQml/qqmlextensionplugin.h>

#include <algorithm>
#include <cstdio>

Q_IMPORT_QML_PLUGIN(Ferry_UiPlugin)

using namespace ferry;

namespace {

const QString Conversation = QStringLiteral("direct:alice:bob");

bool fill(const QString& profile, int total)
{
    Result<std::unique_ptr<ClientStore>> store = ClientStore::open(profile);
    if (!store) {
        return false;
    }
    AccountInfo account { QStringLiteral("ws://127.0.0.1:9"), QStringLiteral("alice"), 1, "t" };
    if (!store.value()->saveAccount(account)) {
        return false;
    }
    constexpr int Batch = 5000;
    for (int first = 1; first <= total; first += Batch) {
        QList<IncomingMessage> events;
        const int last = std::min(total, first + Batch - 1);
        for (int seq = first; seq <= last; ++seq) {
            IncomingMessage event;
            event.offset = static_cast<quint64>(seq);
            event.messageId = MessageId::generate().bytes();
            event.conversationId = Conversation;
            event.seq = static_cast<quint64>(seq);
            event.sender = seq % 3 == 0 ? QStringLiteral("alice") : QStringLiteral("bob");
            event.body = "Message number " + QByteArray::number(seq) + " of the benchmark";
            event.serverTimeMs = 1'700'000'000'000 + static_cast<qint64>(seq) * 60'000;
            events.append(event);
        }
        if (!store.value()->applyEvents(events, static_cast<quint64>(last))) {
            return false;
        }
    }
    return true;
}

bool waitFor(const std::function<bool()>& condition, int timeoutMs = 30'000)
{
    QElapsedTimer timer;
    timer.start();
    while (!condition()) {
        if (timer.elapsed() > timeoutMs) {
            return false;
        }
        QCoreApplication::processEvents(QEventLoop::AllEvents, 5);
    }
    return true;
}

} // namespace

int main(int argc, char* argv[])
{
    QGuiApplication app(argc, argv);
    const int total = argc > 1 ? std::max(1, QByteArray(argv[1]).toInt()) : 100'000;
    QTemporaryDir dir;

    QElapsedTimer timer;
    timer.start();
    if (!fill(dir.path(), total)) {
        std::fprintf(stderr, "bench: could not fill the store\n");
        return 1;
    }
    std::printf("filled %d messages in %lld ms\n", total, static_cast<long long>(timer.elapsed()));

    // From nothing to a frame showing the newest page: the session opens the store on its
    // worker thread, the window loads, the conversation opens and its first page is drawn.
    timer.restart();
    ui::useAppStyle();
    ui::ChatSession session(dir.path());
    QQmlApplicationEngine engine;
    QQuickWindow* window = ui::loadMainWindow(engine, &session);
    if (!window) {
        return 1;
    }
    ui::MessageListModel* messages = session.messages();
    if (!waitFor([&] { return session.phase() == ui::ChatSession::Phase::SignedIn; })) {
        return 1;
    }
    session.openConversation(Conversation);
    bool framed = false;
    QObject::connect(window, &QQuickWindow::frameSwapped, window,
        [&] { framed = messages->rowCount() > 0; });
    if (!waitFor([&] { return framed; })) {
        std::fprintf(stderr, "bench: no frame showed the conversation\n");
        return 1;
    }
    std::printf("time to first frame with the conversation: %lld ms (%d rows)\n",
        static_cast<long long>(timer.elapsed()), messages->rowCount());

    // Older pages, one at a time, as scrolling up asks for them.
    constexpr int Pages = 40;
    QList<qint64> times;
    for (int page = 0; page < Pages && messages->canFetchMore({}); ++page) {
        const int before = messages->rowCount();
        QElapsedTimer pageTimer;
        pageTimer.start();
        messages->loadOlder();
        if (!waitFor([&] { return messages->rowCount() > before; })) {
            return 1;
        }
        times.append(pageTimer.nsecsElapsed() / 1000);
    }
    std::sort(times.begin(), times.end());
    std::printf("older pages of %d: %lld loaded; median %lld us, p90 %lld us, max %lld us\n",
        ui::MessageListModel::DefaultPageSize, static_cast<long long>(times.size()),
        static_cast<long long>(times.at(times.size() / 2)),
        static_cast<long long>(times.at(times.size() * 9 / 10)),
        static_cast<long long>(times.last()));
    return 0;
}
