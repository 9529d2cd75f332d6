// ferry: the Qt Quick chat app. One window per device profile; two can run side by side with
// different --profile folders.

#include "core/Logging.h"
#include "ui/AppWindow.h"
#include "ui/ChatSession.h"
#include "ui/Notifier.h"

#include <QCommandLineParser>
#include <QDir>
#include <QApplication>
#include <QQmlApplicationEngine>
#include <QQuickWindow>
#include <QStandardPaths>
#include <QTimer>
#include <QtQml/qqmlextensionplugin.h>

#include <cstdio>
#include <optional>

Q_IMPORT_QML_PLUGIN(Ferry_UiPlugin)

namespace {

struct Options {
    QString profileDir;
    QUrl server;
    QString screenshot;
    int screenshotDelayMs = 3000;
    QSize size;
    std::optional<QPoint> position;
    QString openTarget;
    QString page;
    bool dark = false;
};

Options parseOptions(const QApplication& app)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Ferry: offline-first chat."));
    parser.addHelpOption();
    parser.addVersionOption();
    const QCommandLineOption profile(QStringLiteral("profile"),
        QStringLiteral("The device profile folder (default: the user's data folder)."),
        QStringLiteral("dir"));
    const QCommandLineOption server(QStringLiteral("server"),
        QStringLiteral("The server to use instead of the one stored with the account."),
        QStringLiteral("url"));
    const QCommandLineOption size(QStringLiteral("size"),
        QStringLiteral("The window's size, e.g. 390x844."), QStringLiteral("WxH"));
    const QCommandLineOption position(QStringLiteral("position"),
        QStringLiteral("Where the window's top left corner goes, e.g. 40,60."),
        QStringLiteral("X,Y"));
    const QCommandLineOption open(QStringLiteral("open"),
        QStringLiteral("Open the direct conversation with this user at start."),
        QStringLiteral("user"));
    const QCommandLineOption page(QStringLiteral("page"),
        QStringLiteral("Show a page at start: devices or new-conversation."),
        QStringLiteral("name"));
    const QCommandLineOption dark(
        QStringLiteral("dark"), QStringLiteral("Use a dark palette whatever the system says."));
    const QCommandLineOption screenshot(QStringLiteral("screenshot"),
        QStringLiteral("Save the window as a PNG after --screenshot-delay ms, then quit."),
        QStringLiteral("file"));
    const QCommandLineOption delay(QStringLiteral("screenshot-delay"),
        QStringLiteral("Milliseconds to wait before the screenshot (default 3000)."),
        QStringLiteral("ms"));
    parser.addOptions({ profile, server, size, position, open, page, dark, screenshot, delay });
    parser.process(app);

    Options options;
    options.profileDir = parser.value(profile);
    if (options.profileDir.isEmpty()) {
        options.profileDir
            = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + u"/default";
    }
    if (parser.isSet(server)) {
        options.server = QUrl(parser.value(server));
    }
    const QStringList dimensions = parser.value(size).split(u'x');
    if (dimensions.size() == 2) {
        options.size = QSize(dimensions.at(0).toInt(), dimensions.at(1).toInt());
    }
    const QStringList corner = parser.value(position).split(u',');
    if (corner.size() == 2) {
        options.position = QPoint(corner.at(0).toInt(), corner.at(1).toInt());
    }
    options.openTarget = parser.value(open);
    options.page = parser.value(page);
    options.dark = parser.isSet(dark);
    options.screenshot = parser.value(screenshot);
    if (parser.isSet(delay)) {
        options.screenshotDelayMs = parser.value(delay).toInt();
    }
    return options;
}

} // namespace

int main(int argc, char* argv[])
{
    // A QApplication (not only a QGuiApplication) for QSystemTrayIcon; the UI is all QML.
    QApplication app(argc, argv);
    QGuiApplication::setApplicationName(QStringLiteral("ferry"));
    QGuiApplication::setApplicationDisplayName(QStringLiteral("Ferry"));
    QGuiApplication::setApplicationVersion(QStringLiteral(FERRY_VERSION));
    QGuiApplication::setDesktopFileName(QStringLiteral("ferry"));
    const Options options = parseOptions(app);

    if (!QDir().mkpath(options.profileDir)) {
        std::fprintf(stderr, "ferry: could not create the profile folder %s\n",
            qPrintable(options.profileDir));
        return 1;
    }
    if (options.dark) {
        ferry::ui::useDarkPalette(app);
    }
    ferry::ui::useAppStyle();

    // The session outlives the engine's root objects: the engine is declared after it and so
    // destroyed first.
    ferry::ui::ChatSession session(options.profileDir, options.server);
    QQmlApplicationEngine engine;
    QQuickWindow* window = ferry::ui::loadMainWindow(engine, &session);
    if (!window) {
        return 1;
    }
    ferry::ui::TrayNotifier notifier(&session);
    if (options.size.isValid()) {
        window->resize(options.size);
    }
    if (options.position) {
        window->setPosition(*options.position);
    }

    if (!options.openTarget.isEmpty()) {
        // The conversation list must be loaded first, so that the title and read mark are known.
        QObject::connect(&session, &ferry::ui::ChatSession::phaseChanged, &session, [&] {
            if (session.phase() == ferry::ui::ChatSession::Phase::SignedIn) {
                QTimer::singleShot(300, &session, [&] { session.startDirect(options.openTarget); });
            }
        });
    }
    if (!options.page.isEmpty()) {
        // For screenshots of pages that are otherwise a click away.
        QObject::connect(&session, &ferry::ui::ChatSession::phaseChanged, window, [&] {
            if (session.phase() != ferry::ui::ChatSession::Phase::SignedIn) {
                return;
            }
            if (options.page == u"devices") {
                window->setProperty("showDevices", true);
                session.refreshDevices();
            } else if (options.page == u"new-conversation") {
                QObject* dialog = window->findChild<QObject*>(u"newConversationDialog"_qs);
                if (dialog) {
                    QMetaObject::invokeMethod(dialog, "open");
                }
            }
        });
    }
    if (!options.screenshot.isEmpty()) {
        QTimer::singleShot(options.screenshotDelayMs, window, [&] {
            const bool saved = ferry::ui::saveScreenshot(window, options.screenshot);
            QCoreApplication::exit(saved ? 0 : 1);
        });
    }
    return QApplication::exec();
}
