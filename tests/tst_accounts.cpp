// Accounts and devices, end to end: the real ferry-server on loopback and real ferryctl
// processes. Registering, a second device, refused credentials and names, and a profile that
// already has an account.

#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"
#include "tests/support/TestFiles.h"

#include <QDir>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

class TestAccounts : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void registerCreatesTheAccountAndTheProfilesDevice();
    void loginFromAnotherProfileCreatesAnotherDevice();
    void aRefusedLoginExitsWithFourAndSavesNothing_data();
    void aRefusedLoginExitsWithFourAndSavesNothing();
    void registeringATakenNameIsRefused();
    void registeringIntoAProfileThatHasAnAccountLeavesItUntouched();

private:
    /// A ferryctl on a fresh profile folder, pointed at the server.
    Ctl newProfile(const QString& name) const;

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    std::unique_ptr<Ctl> m_alice;
    CtlRun m_aliceRegistration;
};

Ctl TestAccounts::newProfile(const QString& name) const
{
    return Ctl(m_root.filePath(u"profiles/"_s + name), m_server->url());
}

void TestAccounts::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    // Registering costs a deliberately slow password hash, so alice registers once here and
    // the tests below share her; the first one checks what this registration did.
    m_alice = std::make_unique<Ctl>(newProfile(u"alice-laptop"_s));
    m_aliceRegistration = m_alice->registerUser(u"alice"_s, u"laptop"_s);
}

void TestAccounts::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

void TestAccounts::registerCreatesTheAccountAndTheProfilesDevice()
{
    QVERIFY2(m_aliceRegistration.ok(), qPrintable(m_aliceRegistration.describe()));
    const QRegularExpressionMatch said
        = QRegularExpression(u"^registered alice, device (\\d+) \\(laptop\\)$"_s)
              .match(m_aliceRegistration.out.trimmed());
    QVERIFY2(said.hasMatch(), qPrintable(m_aliceRegistration.describe()));

    const Result<QJsonObject> status = m_alice->status();
    QVERIFY2(status, whyNot(status).constData());
    QCOMPARE(status->value(u"user"_s).toString(), u"alice"_s);
    QCOMPARE(status->value(u"device"_s).toInteger(), said.captured(1).toLongLong());
    QCOMPARE(status->value(u"server"_s).toString(), m_server->url().toString());
    QCOMPARE(status->value(u"offset"_s).toInteger(), qint64(0));
    QCOMPARE(status->value(u"outbox"_s).toInteger(), qint64(0));
}

void TestAccounts::loginFromAnotherProfileCreatesAnotherDevice()
{
    const Ctl phone = newProfile(u"alice-phone"_s);
    const CtlRun login = phone.login(u"alice"_s, u"phone"_s);
    QVERIFY2(login.ok(), qPrintable(login.describe()));
    QVERIFY2(login.out.startsWith(u"logged in as alice, device "_s), qPrintable(login.describe()));

    const Result<QJsonObject> laptopStatus = m_alice->status();
    const Result<QJsonObject> phoneStatus = phone.status();
    QVERIFY2(laptopStatus, whyNot(laptopStatus).constData());
    QVERIFY2(phoneStatus, whyNot(phoneStatus).constData());
    QCOMPARE(phoneStatus->value(u"user"_s).toString(), u"alice"_s);
    const qint64 laptopDevice = laptopStatus->value(u"device"_s).toInteger();
    const qint64 phoneDevice = phoneStatus->value(u"device"_s).toInteger();
    QVERIFY2(laptopDevice > 0 && phoneDevice > 0 && laptopDevice != phoneDevice,
        qPrintable(u"laptop is device "_s + QString::number(laptopDevice) + u", phone device "_s
            + QString::number(phoneDevice)));

    // The new device is a working one: it can connect and sync with the token it was given.
    const CtlRun sync = phone.sync();
    QVERIFY2(sync.ok(), qPrintable(sync.describe()));
}

void TestAccounts::aRefusedLoginExitsWithFourAndSavesNothing_data()
{
    QTest::addColumn<QString>("user");
    QTest::addColumn<QString>("password");

    QTest::newRow("wrong password") << u"alice"_s << u"not alice's password"_s;
    // Refused in the same words, so that nobody can learn which names exist.
    QTest::newRow("unknown user") << u"nobody"_s << Ctl::defaultPassword();
}

void TestAccounts::aRefusedLoginExitsWithFourAndSavesNothing()
{
    QFETCH(QString, user);
    QFETCH(QString, password);

    Ctl stranger = newProfile(u"refused-"_s + user);
    stranger.setPassword(password);
    const CtlRun login = stranger.login(user, u"stolen laptop"_s);
    QVERIFY2(login.exitCode == 4, qPrintable(login.describe()));
    QVERIFY2(login.err.contains(u"wrong user name or password"_s), qPrintable(login.describe()));
    QVERIFY2(!login.err.contains(u"unknown"_s, Qt::CaseInsensitive)
            && !login.err.contains(u"no such"_s, Qt::CaseInsensitive),
        qPrintable(login.describe()));
    QVERIFY2(login.out.isEmpty(), qPrintable(login.describe()));

    const Result<QJsonObject> status = stranger.status();
    QVERIFY2(status, whyNot(status).constData());
    QVERIFY2(status->value(u"user"_s).isNull() && status->value(u"device"_s).isNull(),
        "a refused login left an account in the profile");
}

void TestAccounts::registeringATakenNameIsRefused()
{
    const Ctl impostor = newProfile(u"impostor"_s);
    const CtlRun registration = impostor.registerUser(u"alice"_s, u"impostor"_s);
    QVERIFY2(registration.exitCode == 4, qPrintable(registration.describe()));
    QVERIFY2(registration.err.contains(u"taken"_s), qPrintable(registration.describe()));

    const Result<QJsonObject> status = impostor.status();
    QVERIFY2(status, whyNot(status).constData());
    QVERIFY2(status->value(u"user"_s).isNull(), "a refused registration left an account");

    // The real alice is unaffected: her device still connects.
    const CtlRun sync = m_alice->sync();
    QVERIFY2(sync.ok(), qPrintable(sync.describe()));
}

void TestAccounts::registeringIntoAProfileThatHasAnAccountLeavesItUntouched()
{
    const Result<QJsonObject> before = m_alice->status();
    QVERIFY2(before, whyNot(before).constData());
    const QString database = QDir(m_alice->profileDir()).filePath(u"ferry.db"_s);
    const Result<QByteArray> bytesBefore = readFileBytes(database);
    QVERIFY2(bytesBefore, whyNot(bytesBefore).constData());

    const CtlRun registration = m_alice->registerUser(u"mallory"_s, u"laptop"_s);
    QVERIFY2(registration.exitCode == 1, qPrintable(registration.describe()));
    QVERIFY2(registration.err.contains(u"already belongs to alice"_s),
        qPrintable(registration.describe()));

    const Result<QJsonObject> after = m_alice->status();
    QVERIFY2(after, whyNot(after).constData());
    QCOMPARE(after.value(), before.value());
    const Result<QByteArray> bytesAfter = readFileBytes(database);
    QVERIFY2(bytesAfter, whyNot(bytesAfter).constData());
    QVERIFY2(bytesAfter.value() == bytesBefore.value(), "the profile's database was written to");

    // Nothing reached the server either: there is no account mallory to log in to.
    const CtlRun login = newProfile(u"mallory"_s).login(u"mallory"_s, u"laptop"_s);
    QVERIFY2(login.exitCode == 4, qPrintable(login.describe()));
}

QTEST_GUILESS_MAIN(TestAccounts)
#include "tst_accounts.moc"
