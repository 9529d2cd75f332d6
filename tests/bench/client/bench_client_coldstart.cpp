// Scenario 6, cold start: with a million messages in the local store, the time from process
// start to the conversation list on screen, and to the newest page of the biggest conversation
// on screen. The real app's QML (module Ferry.Ui) runs offscreen; "on screen" is the first
// frame swapped after the model holds the rows.
//
//   bench_client_coldstart build <profile-dir> <messages>
//       Fills a profile once (200 conversations, the biggest with a tenth of the messages, read
//       up to a few messages before each conversation's end); run.sh keeps it between runs.
//   bench_client_coldstart measure <profile-dir> <results-dir> <runs>
//       Starts this program <runs> times in "open" mode and reports the median and the worst.
//   bench_client_coldstart open <profile-dir> <conversation-id> <launched-at-ns>
//       One start of the app: prints the two times as a line of JSON.

#include "core/ClientStore.h"
#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "tests/bench/client/BenchReport.h"
#include "ui/AppWindow.h"
#include "ui/ChatSession.h"
#include "ui/ConversationListModel.h"
#include "ui/MessageListModel.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QGuiApplication>
#include <QJsonArray>
#include <QJsonDocument>
#include <QProcess>
#include <QQmlApplicationEngine>
#include <QQuickWindow>
#include <QtQml/qqmlextensionplugin.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

Q_IMPORT_QML_PLUGIN(Ferry_UiPlugin)

using namespace ferry;

namespace {

const QString Self = QStringLiteral("me");
constexpr int Conversations = 200;
const QString Biggest = directConversationId(Self, QStringLiteral("peer000"));

int fail(const QString& why)
{
    std::fprintf(stderr, "bench: %s\n", qPrintable(why));
    return 1;
}

qint64 realtimeNs()
{
    timespec now {};
    clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<qint64>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

QString peerName(int conversation)
{
    return u"peer" + QString::number(conversation).rightJustified(3, u'0');
}

int build(const QString& profileDir, int total)
{
    QDir(profileDir).removeRecursively();
    Result<std::unique_ptr<ClientStore>> opened = ClientStore::open(profileDir);
    if (!opened) {
        return fail(opened.error().message);
    }
    ClientStore& store = *opened.value();
    // An address where nothing listens: the app's engine keeps retrying in the background, as
    // it does on a train without network, and the figures are the local store's alone.
    if (!store.saveAccount(AccountInfo { QStringLiteral("ws://127.0.0.1:9"), Self, 1, "token" })) {
        return fail(QStringLiteral("could not save the account"));
    }
    // Messages arrive interleaved, as they do in life: one in ten to the biggest conversation,
    // the rest spread over the other 199; every third one written by this account.
    QList<quint64> lastSeq(Conversations, 0);
    QList<IncomingMessage> batch;
    constexpr int BatchSize = 10'000;
    QElapsedTimer timer;
    timer.start();
    int otherConversation = 0;
    for (int i = 0; i < total; ++i) {
        int conversation = 0;
        if (i % 10 != 0) {
            conversation = 1 + otherConversation;
            otherConversation = (otherConversation + 1) % (Conversations - 1);
        }
        IncomingMessage event;
        event.offset = static_cast<quint64>(i) + 1;
        event.messageId = MessageId::generate().bytes();
        event.conversationId = directConversationId(Self, peerName(conversation));
        event.seq = ++lastSeq[conversation];
        event.sender = i % 3 == 0 ? Self : peerName(conversation);
        event.body = "Message " + QByteArray::number(i)
            + " of the cold-start benchmark, about a hundred bytes long like a chat line.";
        event.serverTimeMs = 1'700'000'000'000 + static_cast<qint64>(i) * 1000;
        batch.append(event);
        if (batch.size() == BatchSize || i == total - 1) {
            if (auto applied = store.applyEvents(batch, batch.last().offset); !applied) {
                return fail(applied.error().message);
            }
            batch.clear();
        }
    }
    // Read up to a few messages before the end, as someone who keeps up with their chats.
    for (int conversation = 0; conversation < Conversations; ++conversation) {
        const quint64 unread = static_cast<quint64>(conversation % 7);
        if (lastSeq[conversation] > unread) {
            const QString id = directConversationId(Self, peerName(conversation));
            if (auto marked = store.markRead(id, lastSeq[conversation] - unread); !marked) {
                return fail(marked.error().message);
            }
        }
    }
    std::printf("built a profile of %d messages in %lld ms\n", total,
        static_cast<long long>(timer.elapsed()));
    QFile marker(QDir(profileDir).filePath(u"messages"_qs));
    if (!marker.open(QIODevice::WriteOnly) || marker.write(QByteArray::number(total)) < 0) {
        return fail(QStringLiteral("could not write the profile's size"));
    }
    return 0;
}

bool waitFor(const std::function<bool()>& condition, int timeoutMs = 60'000)
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

int open(int argc, char* argv[], const QString& profileDir, const QString& conversationId,
    qint64 launchedAtNs)
{
    QGuiApplication app(argc, argv);
    const auto sinceLaunchMs
        = [&] { return static_cast<double>(realtimeNs() - launchedAtNs) / 1e6; };
    const double mainMs = sinceLaunchMs();

    ui::useAppStyle();
    ui::ChatSession session(profileDir);
    QQmlApplicationEngine engine;
    QQuickWindow* window = ui::loadMainWindow(engine, &session);
    if (!window) {
        return fail(QStringLiteral("the window did not load"));
    }
    double firstFrameMs = 0;
    double listMs = 0;
    double pageMs = 0;
    int listRows = 0;
    int pageRows = 0;
    QObject::connect(window, &QQuickWindow::frameSwapped, window, [&] {
        if (firstFrameMs == 0) {
            firstFrameMs = sinceLaunchMs();
        }
        if (listMs == 0 && session.conversations()->rowCount() > 0) {
            listMs = sinceLaunchMs();
            listRows = session.conversations()->rowCount();
            // The user opens the biggest conversation as soon as the list shows.
            session.openConversation(conversationId);
        } else if (listMs > 0 && pageMs == 0 && session.messages()->rowCount() > 0) {
            pageMs = sinceLaunchMs();
            pageRows = session.messages()->rowCount();
        }
    });
    if (!waitFor([&] { return pageMs > 0; })) {
        return fail(QStringLiteral("no frame showed the conversation within 60 s"));
    }
    QJsonObject line;
    line[u"main_ms"] = mainMs;
    line[u"first_frame_ms"] = firstFrameMs;
    line[u"list_ms"] = listMs;
    line[u"page_ms"] = pageMs;
    line[u"list_rows"] = listRows;
    line[u"page_rows"] = pageRows;
    std::printf("%s\n", QJsonDocument(line).toJson(QJsonDocument::Compact).constData());
    std::fflush(stdout);
    // The engine is still trying to reach a server that is not there; nothing is left to wait
    // for, and a quick exit keeps the runs short.
    std::_Exit(0);
}

double median(QList<double> values)
{
    std::sort(values.begin(), values.end());
    return values.isEmpty() ? 0 : values.at(values.size() / 2);
}

int measure(const QString& program, const QString& profileDir, const QString& resultsDir, int runs,
    const QStringList& arguments)
{
    QFile marker(QDir(profileDir).filePath(u"messages"_qs));
    if (!marker.open(QIODevice::ReadOnly)) {
        return fail(u"no profile in "_qs + profileDir);
    }
    const qint64 total = marker.readAll().toLongLong();
    QList<double> mains, firstFrames, lists, pages;
    int listRows = 0;
    int pageRows = 0;
    for (int run = 0; run < runs; ++run) {
        QProcess child;
        child.setProcessChannelMode(QProcess::ForwardedErrorChannel);
        const qint64 launchedAt = realtimeNs();
        child.start(
            program, { QStringLiteral("open"), profileDir, Biggest, QString::number(launchedAt) });
        if (!child.waitForFinished(120'000) || child.exitCode() != 0) {
            child.kill();
            return fail(QStringLiteral("a start of the app failed"));
        }
        const QByteArray out = child.readAllStandardOutput().trimmed();
        const QJsonObject line
            = QJsonDocument::fromJson(out.mid(out.lastIndexOf('\n') + 1)).object();
        if (line.isEmpty()) {
            return fail(u"the app printed no figures: "_qs + QString::fromUtf8(out));
        }
        mains.append(line[u"main_ms"].toDouble());
        firstFrames.append(line[u"first_frame_ms"].toDouble());
        lists.append(line[u"list_ms"].toDouble());
        pages.append(line[u"page_ms"].toDouble());
        listRows = line[u"list_rows"].toInt();
        pageRows = line[u"page_rows"].toInt();
    }
    if (listRows != Conversations) {
        return fail(u"the list showed "_qs + QString::number(listRows) + u" conversations, not "
            + QString::number(Conversations));
    }
    const double list = median(lists);
    const double page = median(pages);
    const bool met = list < 500 && page < 500;
    std::printf("cold start: %lld messages in %d conversations (biggest %lld), %d starts\n",
        static_cast<long long>(total), Conversations, static_cast<long long>((total + 9) / 10),
        runs);
    std::printf("  process start to main():                  median %6.1f ms\n", median(mains));
    std::printf(
        "  process start to the window's first frame: median %6.1f ms\n", median(firstFrames));
    std::printf("  process start to conversation list shown: median %6.1f ms, worst %6.1f ms\n",
        list, *std::max_element(lists.cbegin(), lists.cend()));
    std::printf("  process start to newest page of biggest:  median %6.1f ms, worst %6.1f ms "
                "(%d rows)\n",
        page, *std::max_element(pages.cbegin(), pages.cend()), pageRows);
    std::printf("  target < 500 ms: %s\n", met ? "met" : "missed");

    bench::BenchReport report;
    report.scenario = QStringLiteral("cold-start");
    report.command = bench::commandLine(arguments);
    report.figures[u"messages"] = total;
    report.figures[u"conversations"] = Conversations;
    report.figures[u"biggest_conversation_messages"] = (total + 9) / 10;
    report.figures[u"starts"] = runs;
    report.figures[u"main_ms_median"] = median(mains);
    report.figures[u"first_frame_ms_median"] = median(firstFrames);
    report.figures[u"list_ms_median"] = list;
    report.figures[u"list_ms_worst"] = *std::max_element(lists.cbegin(), lists.cend());
    report.figures[u"page_ms_median"] = page;
    report.figures[u"page_ms_worst"] = *std::max_element(pages.cbegin(), pages.cend());
    report.figures[u"page_rows"] = pageRows;
    report.figures[u"target_ms"] = 500;
    report.figures[u"target_met"] = met;
    return report.write(resultsDir) ? 0 : 1;
}

} // namespace

int main(int argc, char* argv[])
{
    const QStringList arguments = [&] {
        QStringList list;
        for (int i = 0; i < argc; ++i) {
            list.append(QString::fromLocal8Bit(argv[i]));
        }
        return list;
    }();
    if (arguments.size() >= 5 && arguments.at(1) == u"open") {
        return open(argc, argv, arguments.at(2), arguments.at(3), arguments.at(4).toLongLong());
    }
    if (arguments.size() >= 4 && arguments.at(1) == u"build") {
        QCoreApplication app(argc, argv);
        return build(arguments.at(2), std::max(Conversations, arguments.at(3).toInt()));
    }
    if (arguments.size() >= 5 && arguments.at(1) == u"measure") {
        QCoreApplication app(argc, argv);
        return measure(QCoreApplication::applicationFilePath(), arguments.at(2), arguments.at(3),
            std::max(1, arguments.at(4).toInt()), arguments);
    }
    std::fprintf(stderr,
        "usage: bench_client_coldstart build <profile-dir> <messages>\n"
        "       bench_client_coldstart measure <profile-dir> <results-dir> <runs>\n"
        "       bench_client_coldstart open <profile-dir> <conversation-id> <launched-at-ns>\n");
    return 2;
}
