#pragma once

#include <QString>

class QGuiApplication;
class QQmlApplicationEngine;
class QQuickWindow;

namespace ferry::ui {

class ChatSession;

/// Sets the Qt Quick Controls style the app is designed for (Fusion, which follows the system
/// palette, light or dark). Must run before any QML is loaded.
void useAppStyle();

/// Gives the application a dark palette, for people whose system does not say, and for the
/// screenshots of the dark look.
void useDarkPalette(QGuiApplication& app);

/// Loads the app's main window (Ferry.Ui's Main.qml) for `session` into `engine`; the window,
/// or nullptr with the reason logged when it could not be loaded.
QQuickWindow* loadMainWindow(QQmlApplicationEngine& engine, ChatSession* session);

/// Saves what `window` shows now as a PNG; false with a warning logged when it could not.
bool saveScreenshot(QQuickWindow* window, const QString& path);

} // namespace ferry::ui
