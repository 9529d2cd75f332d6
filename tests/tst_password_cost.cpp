// The server's password cost setting: hashes made at minimal cost (for load tests only) and at
// the interactive cost both verify under either setting, because verification reads the cost
// from the hash itself; and each setting makes hashes of its own cost.

#include "server-stub/Credentials.h"

#include <QTest>

using namespace ferry::server;

class PasswordCostTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { QVERIFY(Credentials::initialise()); }

    void hashesCarryTheirCostAndVerifyUnderEitherSetting()
    {
        const QByteArray password = QByteArrayLiteral("correct horse battery");

        Credentials::setPasswordCost(Credentials::PasswordCost::Minimal);
        const QByteArray minimal = Credentials::hashPassword(password);
        Credentials::setPasswordCost(Credentials::PasswordCost::Interactive);
        const QByteArray interactive = Credentials::hashPassword(password);

        // Argon2id strings name their memory cost in KiB: libsodium's minimum is 8 KiB, its
        // interactive cost 64 MiB.
        QVERIFY2(minimal.contains("$m=8,"), minimal.constData());
        QVERIFY2(interactive.contains("$m=65536,"), interactive.constData());

        for (const auto cost :
            { Credentials::PasswordCost::Minimal, Credentials::PasswordCost::Interactive }) {
            Credentials::setPasswordCost(cost);
            QVERIFY(Credentials::verifyPassword(password, minimal));
            QVERIFY(Credentials::verifyPassword(password, interactive));
            QVERIFY(!Credentials::verifyPassword(QByteArrayLiteral("wrong password"), minimal));
        }
    }
};

QTEST_GUILESS_MAIN(PasswordCostTest)
#include "tst_password_cost.moc"
