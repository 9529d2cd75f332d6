#pragma once

#include "core/ClientStore.h"

#include <QObject>
#include <QString>

#include <memory>

class QSystemTrayIcon;

namespace ferry::ui {

class ChatSession;

/// Whether an entry that has just arrived deserves a notification: a message from someone else,
/// in a conversation that is not on screen, or in any conversation while the window is not the
/// active one (the person is looking elsewhere).
bool shouldNotify(const StoredMessage& entry, const QString& selfName,
    const QString& conversationOnScreen, bool windowActive);

/// Shows the session's notifications on the desktop through a system tray icon, whose tooltip
/// also carries the unread count. Where the desktop has no system tray (or under the offscreen
/// platform) it does nothing and the window's own toast shows them instead.
class TrayNotifier : public QObject {
    Q_OBJECT
public:
    explicit TrayNotifier(ChatSession* session, QObject* parent = nullptr);
    ~TrayNotifier() override;

    /// True when the desktop shows the notifications (a system tray was available).
    bool isActive() const { return m_tray != nullptr; }

private:
    void updateToolTip();

    ChatSession* m_session;
    std::unique_ptr<QSystemTrayIcon> m_tray;
};

} // namespace ferry::ui
