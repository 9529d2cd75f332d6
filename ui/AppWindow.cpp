#include "ui/AppWindow.h"

#include "core/Logging.h"
#include "ui/ChatSession.h"

#include <QGuiApplication>
#include <QImage>
#include <QPalette>
#include <QQmlApplicationEngine>
#include <QQuickStyle>
#include <QQuickWindow>

namespace ferry::ui {

void useAppStyle()
{
    QQuickStyle::setStyle(QStringLiteral("Fusion"));
}

void useDarkPalette(QGuiApplication& app)
{
    QPalette dark;
    dark.setColor(QPalette::Window, QColor(0x1f, 0x22, 0x27));
    dark.setColor(QPalette::WindowText, QColor(0xe6, 0xe8, 0xeb));
    dark.setColor(QPalette::Base, QColor(0x17, 0x19, 0x1d));
    dark.setColor(QPalette::AlternateBase, QColor(0x2a, 0x2e, 0x35));
    dark.setColor(QPalette::Text, QColor(0xe6, 0xe8, 0xeb));
    dark.setColor(QPalette::Button, QColor(0x2c, 0x30, 0x37));
    dark.setColor(QPalette::ButtonText, QColor(0xe6, 0xe8, 0xeb));
    dark.setColor(QPalette::Highlight, QColor(0x3d, 0x7e, 0xdb));
    dark.setColor(QPalette::HighlightedText, Qt::white);
    dark.setColor(QPalette::PlaceholderText, QColor(0x8a, 0x90, 0x99));
    dark.setColor(QPalette::Mid, QColor(0x3a, 0x3f, 0x47));
    dark.setColor(QPalette::Dark, QColor(0x10, 0x12, 0x15));
    dark.setColor(QPalette::Light, QColor(0x40, 0x45, 0x4d));
    dark.setColor(QPalette::Midlight, QColor(0x35, 0x3a, 0x41));
    dark.setColor(QPalette::Shadow, Qt::black);
    dark.setColor(QPalette::ToolTipBase, QColor(0x2a, 0x2e, 0x35));
    dark.setColor(QPalette::ToolTipText, QColor(0xe6, 0xe8, 0xeb));
    app.setPalette(dark);
}

QQuickWindow* loadMainWindow(QQmlApplicationEngine& engine, ChatSession* session)
{
    engine.addImportPath(QStringLiteral("qrc:/qt/qml"));
    engine.setInitialProperties({ { QStringLiteral("session"), QVariant::fromValue(session) } });
    engine.load(QUrl(QStringLiteral("qrc:/qt/qml/Ferry/Ui/qml/Main.qml")));
    if (engine.rootObjects().isEmpty()) {
        qCWarning(lcUi) << "Could not load the main window: see the QML errors above";
        return nullptr;
    }
    auto* window = qobject_cast<QQuickWindow*>(engine.rootObjects().constFirst());
    if (window) {
        // Whether the person is looking at the window decides whether a message notifies.
        session->setWindowActive(window->isActive());
        QObject::connect(window, &QWindow::activeChanged, session,
            [session, window] { session->setWindowActive(window->isActive()); });
    }
    return window;
}

bool saveScreenshot(QQuickWindow* window, const QString& path)
{
    const QImage image = window->grabWindow();
    if (image.isNull() || !image.save(path)) {
        qCWarning(lcUi) << "Could not save a screenshot to" << path;
        return false;
    }
    qCInfo(lcUi) << "Saved a screenshot to" << path;
    return true;
}

} // namespace ferry::ui
