// The ferry app end to end under the offscreen platform: its QML window over a ChatSession,
// against the real ferry-server on loopback. Sign-in errors are shown in words; a message
// written in the window appears at once as queued and turns sent; stopping the server brings
// up the offline banner.

#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"
#include "ui/AppWindow.h"
#include "ui/ChatSession.h"

#include <QQmlApplicationEngine>
#include <QQuickItem>
#include <QQuickWindow>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <QtQml/qqmlextensionplugin.h>

Q_IMPORT_QML_PLUGIN(Ferry_UiPlugin)

using namespace ferry;
using namespace ferry::test;
using namespace ferry::ui;

class TestAppGui : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void signInSendAndGoOffline();

private:
    QTemporaryDir m_dir;
};

void TestAppGui::initTestCase()
{
    QVERIFY(m_dir.isValid());
    useAppStyle();
}

void TestAppGui::signInSendAndGoOffline()
{
    ServerProcess server(m_dir.filePath(QStringLiteral("server")));
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    const QString url = server.url().toString();
    const QString password = Ctl::defaultPassword();

    Ctl bob(m_dir.filePath(QStringLiteral("bob")), server.url());
    const CtlRun registered = bob.registerUser(QStringLiteral("bob"), QStringLiteral("desk"));
    QVERIFY2(registered.ok(), qPrintable(registered.describe()));

    ChatSession session(m_dir.filePath(QStringLiteral("alice")), server.url());
    QQmlApplicationEngine engine;
    QQuickWindow* window = loadMainWindow(engine, &session);
    QVERIFY(window);
    QTRY_COMPARE(session.phase(), ChatSession::Phase::SignedOut);
    QCOMPARE(session.serverUrl(), url);

    // A taken name and a wrong password are told apart, in words.
    session.signIn(url, QStringLiteral("bob"), password, QStringLiteral("laptop"), true);
    QTRY_COMPARE_WITH_TIMEOUT(session.phase(), ChatSession::Phase::SignedOut, 20'000);
    QTRY_VERIFY_WITH_TIMEOUT(session.signInError().contains(u"taken"), 20'000);
    session.signIn(url, QStringLiteral("bob"), QStringLiteral("wrong password"),
        QStringLiteral("laptop"), false);
    QTRY_VERIFY_WITH_TIMEOUT(session.signInError().contains(u"Wrong"), 20'000);

    session.signIn(url, QStringLiteral("alice"), password, QStringLiteral("laptop"), true);
    QTRY_COMPARE_WITH_TIMEOUT(session.phase(), ChatSession::Phase::SignedIn, 20'000);
    QTRY_COMPARE_WITH_TIMEOUT(session.connectionState(), QStringLiteral("Live"), 20'000);

    // Offscreen there is no system keychain: the device page says the profile folder keeps it.
    auto* credentials = window->findChild<QQuickItem*>(QStringLiteral("credentialsNote"));
    QVERIFY(credentials);
    QVERIFY2(credentials->property("text").toString().contains(u"profile's folder"),
        qPrintable(credentials->property("text").toString()));

    auto* banner = window->findChild<QQuickItem*>(QStringLiteral("connectionBanner"));
    QVERIFY(banner);
    QVERIFY(!banner->isVisible());

    // Written in the window: the row appears queued at once, then turns sent.
    QCOMPARE(session.startDirect(QStringLiteral("bob")), QString());
    MessageListModel* messages = session.messages();
    QTRY_VERIFY(messages->isComplete());
    QStringList statesSeen;
    connect(messages, &QAbstractItemModel::rowsInserted, this, [&](const QModelIndex&, int first) {
        statesSeen.append(messages->data(messages->index(first), MessageListModel::StateRole)
                              .toString());
    });
    QSignalSpy reset(messages, &QAbstractItemModel::modelReset);
    auto* input = window->findChild<QQuickItem*>(QStringLiteral("composerInput"));
    QVERIFY(input);
    input->setProperty("text", QStringLiteral("Hello from the app"));
    input->forceActiveFocus();
    QTest::keyClick(window, Qt::Key_Return);

    QTRY_COMPARE(messages->rowCount(), 1);
    QCOMPARE(statesSeen, QStringList { QStringLiteral("queued") });
    QTRY_VERIFY_WITH_TIMEOUT(
        messages->data(messages->index(0), MessageListModel::StateRole).toString() != u"queued",
        20'000);
    const QString state
        = messages->data(messages->index(0), MessageListModel::StateRole).toString();
    QVERIFY2(state == u"sent" || state == u"delivered", qPrintable(state));
    QCOMPARE(input->property("text").toString(), QString());
    QCOMPARE(reset.size(), 0);
    QTRY_COMPARE(session.conversations()->rowCount(), 1);

    // The server goes away: the banner comes up and says so.
    QVERIFY(server.stop());
    QTRY_VERIFY_WITH_TIMEOUT(banner->isVisible(), 20'000);
    QTRY_VERIFY_WITH_TIMEOUT(session.bannerText().startsWith(u"Offline")
            || session.bannerText().startsWith(u"Connecting"),
        20'000);
    auto* bannerText = window->findChild<QQuickItem*>(QStringLiteral("bannerText"));
    QVERIFY(bannerText);
    QCOMPARE(bannerText->property("text").toString(), session.bannerText());
}

QTEST_MAIN(TestAppGui)
#include "tst_app_gui.moc"
