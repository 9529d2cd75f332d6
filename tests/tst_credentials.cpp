// Where the device token lives. The app moves it out of the profile into the system keychain
// where there is one; the engine then takes it from its owner. These tests check both halves
// that do not need a desktop session: the engine with a token handed to it (and without one),
// and the keychain wrapper where no keychain exists, as on a server or in CI.

#include "core/ClientStore.h"
#include "sync/SyncEngine.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"
#include "ui/CredentialVault.h"

#include <QDir>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

class TestCredentials : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_root.isValid());
        m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
        QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));
        const Ctl alice(m_root.filePath(u"alice"_s), m_server->url());
        const CtlRun registered = alice.registerUser(u"alice"_s, u"laptop"_s);
        QVERIFY2(registered.ok(), qPrintable(registered.describe()));
    }

    void anEngineTakesTheTokenFromItsOwnerWhenTheProfileHasNone()
    {
        Result<std::unique_ptr<ClientStore>> store = ClientStore::open(m_root.filePath(u"alice"_s));
        QVERIFY2(store, whyNot(store).constData());
        std::optional<AccountInfo> account = store.value()->account();
        QVERIFY(account && !account->deviceToken.isEmpty());

        // As the app does once the keychain holds the token: the profile keeps none.
        const QByteArray token = account->deviceToken;
        account->deviceToken.clear();
        QVERIFY(store.value()->saveAccount(*account));

        const std::unique_ptr<SyncEngine> engine = engineFor(*store.value());
        engine->setDeviceToken(token);
        QSignalSpy caughtUp(engine.get(), &SyncEngine::caughtUp);
        engine->start();
        QVERIFY(caughtUp.wait(10'000));
        QCOMPARE(engine->state(), SyncEngine::State::Live);
        engine->stop();

        account->deviceToken = token;
        QVERIFY(store.value()->saveAccount(*account));
    }

    void anEngineWithNoTokenAnywhereStopsAndSaysSignInAgain()
    {
        Result<std::unique_ptr<ClientStore>> store = ClientStore::open(m_root.filePath(u"alice"_s));
        QVERIFY2(store, whyNot(store).constData());
        std::optional<AccountInfo> account = store.value()->account();
        QVERIFY(account);
        const QByteArray token = account->deviceToken;
        account->deviceToken.clear();
        QVERIFY(store.value()->saveAccount(*account));

        const std::unique_ptr<SyncEngine> engine = engineFor(*store.value());
        QSignalSpy stopped(engine.get(), &SyncEngine::stoppedWithError);
        engine->start();
        QVERIFY(stopped.wait(10'000));
        QCOMPARE(stopped.first().at(0).toString(), u"no-token"_s);
        QVERIFY(stopped.first().at(1).toString().contains(u"sign in again"_s));
        QCOMPARE(engine->state(), SyncEngine::State::Offline);

        account->deviceToken = token;
        QVERIFY(store.value()->saveAccount(*account));
    }

    void withoutAKeychainTheVaultSaysSoAndTheTokenStaysInTheProfile()
    {
        // No secret service runs here (no desktop session): storing must fail quickly and
        // plainly, never fall back to a file of its own.
        if (qEnvironmentVariableIsSet("DBUS_SESSION_BUS_ADDRESS")) {
            QSKIP("a D-Bus session is present; a keychain may answer for real");
        }
        ui::CredentialVault vault;
        std::optional<bool> stored;
        vault.store(u"test-key"_s, "secret-token", [&](bool ok) { stored = ok; });
        QTRY_VERIFY_WITH_TIMEOUT(stored.has_value(), 10'000);
        QCOMPARE(*stored, false);

        std::optional<std::optional<QByteArray>> loaded;
        vault.load(u"test-key"_s, [&](std::optional<QByteArray> token) { loaded = token; });
        QTRY_VERIFY_WITH_TIMEOUT(loaded.has_value(), 10'000);
        QVERIFY(!loaded->has_value());
    }

    void cleanupTestCase()
    {
        if (m_server && m_server->isRunning()) {
            QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
        }
    }

private:
    /// An engine on the profile, pointed at the server, with the usual timings; the network
    /// is not watched, as nothing here changes it.
    std::unique_ptr<SyncEngine> engineFor(ClientStore& store) const
    {
        SyncEngine::Settings settings;
        settings.watchNetwork = false;
        auto engine = std::make_unique<SyncEngine>(&store, settings);
        engine->setServerUrl(m_server->url());
        return engine;
    }

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
};

QTEST_GUILESS_MAIN(TestCredentials)
#include "tst_credentials.moc"
