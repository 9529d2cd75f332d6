#include "ui/Notifier.h"

#include "core/Logging.h"
#include "ui/ChatSession.h"

#include <QGuiApplication>
#include <QIcon>
#include <QPainter>
#include <QPixmap>
#include <QSystemTrayIcon>
#include <QWindow>

namespace ferry::ui {

namespace {

    /// The app has no icon file yet; a drawn one keeps the tray entry recognisable.
    QIcon drawnIcon()
    {
        QPixmap pixmap(64, 64);
        pixmap.fill(Qt::transparent);
        QPainter painter(&pixmap);
        painter.setRenderHint(QPainter::Antialiasing);
        painter.setBrush(QColor(0x3d, 0x7e, 0xdb));
        painter.setPen(Qt::NoPen);
        painter.drawEllipse(pixmap.rect().adjusted(2, 2, -2, -2));
        painter.setPen(Qt::white);
        QFont font = painter.font();
        font.setPixelSize(38);
        font.setBold(true);
        painter.setFont(font);
        painter.drawText(pixmap.rect(), Qt::AlignCenter, QStringLiteral("F"));
        return QIcon(pixmap);
    }

} // namespace

bool shouldNotify(const StoredMessage& entry, const QString& selfName,
    const QString& conversationOnScreen, bool windowActive)
{
    if (entry.kind != EntryKind::Message || entry.sender == selfName) {
        return false;
    }
    return entry.conversationId != conversationOnScreen || !windowActive;
}

TrayNotifier::TrayNotifier(ChatSession* session, QObject* parent)
    : QObject(parent)
    , m_session(session)
{
    // QSystemTrayIcon needs a QApplication (widgets); a QGuiApplication-only test has none.
    if (!QCoreApplication::instance()->inherits("QApplication")
        || !QSystemTrayIcon::isSystemTrayAvailable()) {
        qCInfo(lcUi) << "No system tray: notifications stay in the window";
        return;
    }

    m_tray = std::make_unique<QSystemTrayIcon>(drawnIcon());
    connect(m_session, &ChatSession::notificationPosted, this,
        [this](const QString& title, const QString& text) {
            m_tray->showMessage(title, text, QSystemTrayIcon::Information);
        });
    connect(m_session->conversations(), &ConversationListModel::unreadTotalChanged, this,
        &TrayNotifier::updateToolTip);
    connect(m_tray.get(), &QSystemTrayIcon::activated, this, [] {
        // A click on the icon brings the window forward.
        const QWindowList windows = QGuiApplication::topLevelWindows();
        for (QWindow* window : windows) {
            window->show();
            window->raise();
            window->requestActivate();
        }
    });
    updateToolTip();
    m_tray->show();
    session->setDesktopNotifications(true);
    qCInfo(lcUi) << "Notifications go to the system tray";
}

TrayNotifier::~TrayNotifier() = default;

void TrayNotifier::updateToolTip()
{
    const int unread = m_session->conversations()->unreadTotal();
    m_tray->setToolTip(unread > 0 ? tr("Ferry: %n unread message(s)", nullptr, unread)
                                  : tr("Ferry"));
}

} // namespace ferry::ui
