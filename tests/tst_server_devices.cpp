// An account's devices at the protocol level, against the real ferry-server on loopback: listing
// them (which is the caller, which are connected), renaming and removing them, a removed device
// losing its open connection at once, and no account reaching another account's devices.

#include "core/CloseCodes.h"
#include "ferry.pb.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/Requests.h"
#include "tests/support/ServerProcess.h"

#include <QDeadlineTimer>
#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {

v1::Envelope listDevices()
{
    v1::Envelope envelope;
    envelope.mutable_list_devices();
    return envelope;
}

/// The devices a connection's account lists, by id; empty when the answer was not a list.
QMap<quint64, v1::Device> devicesOf(ProtocolClient& client)
{
    QMap<quint64, v1::Device> devices;
    const v1::Envelope answer = client.request(listDevices());
    for (const v1::Device& device : answer.device_list().devices()) {
        devices.insert(device.device_id(), device);
    }
    return devices;
}

} // namespace

class TestServerDevices : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    void theListShowsTheAccountsDevicesWithTheCallerAndTheConnectedOnes();
    void renamingADevice_data();
    void renamingADevice();
    void removingAnotherConnectedDeviceClosesItsConnectionAtOnce();
    void aDeviceMayRemoveItselfAndHearsTheAnswerFirst();
    void noDeviceReachesAnotherAccountsDevices();

private:
    QString uniqueName() { return u"user"_s + QString::number(++m_userCounter); }

    QTemporaryDir m_root;
    std::unique_ptr<ServerProcess> m_server;
    // alice has a laptop and a phone, bob one device; all three stay connected throughout.
    QString m_alice;
    std::unique_ptr<ProtocolClient> m_aliceLaptop;
    std::unique_ptr<ProtocolClient> m_alicePhone;
    std::unique_ptr<ProtocolClient> m_bob;
    int m_userCounter = 0;
};

void TestServerDevices::initTestCase()
{
    QVERIFY2(m_root.isValid(), qPrintable(m_root.errorString()));
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s));
    QVERIFY2(m_server->start(), qPrintable(m_server->errorString()));

    m_alice = uniqueName();
    m_aliceLaptop = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_aliceLaptop->registerUser(m_alice) != 0);
    m_alicePhone = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_alicePhone->login(m_alice) != 0);
    m_bob = std::make_unique<ProtocolClient>(m_server->url());
    QVERIFY(m_bob->registerUser(uniqueName()) != 0);
}

void TestServerDevices::cleanupTestCase()
{
    if (m_server && m_server->isRunning()) {
        QVERIFY2(m_server->stop(), qPrintable(m_server->errorString()));
    }
}

void TestServerDevices::theListShowsTheAccountsDevicesWithTheCallerAndTheConnectedOnes()
{
    // A third device of alice's that signs in and goes away again.
    quint64 tabletId = 0;
    {
        ProtocolClient tablet(m_server->url());
        tabletId = tablet.login(m_alice);
        QVERIFY(tabletId != 0);
        QVERIFY(devicesOf(tablet).value(tabletId).online());
        tablet.socket().close();
        QVERIFY(tablet.waitClosed());
    }

    // The server learns of the close a moment after the client does.
    const quint64 laptopId = m_aliceLaptop->deviceId();
    const quint64 phoneId = m_alicePhone->deviceId();
    QMap<quint64, v1::Device> devices = devicesOf(*m_aliceLaptop);
    QDeadlineTimer deadline(5000);
    while (devices.value(tabletId).online() && !deadline.hasExpired()) {
        QTest::qWait(20);
        devices = devicesOf(*m_aliceLaptop);
    }

    QCOMPARE(devices.keys(), (QList<quint64> { laptopId, phoneId, tabletId }));
    QVERIFY(devices[laptopId].current());
    QVERIFY(!devices[phoneId].current());
    QVERIFY(!devices[tabletId].current());
    QVERIFY(devices[laptopId].online());
    QVERIFY(devices[phoneId].online());
    QVERIFY(!devices[tabletId].online());
    for (const v1::Device& device : std::as_const(devices)) {
        QVERIFY(device.created_ms() > 0);
        QVERIFY(!device.name().empty());
    }

    // Asked from the phone, the phone is the current one.
    const QMap<quint64, v1::Device> fromPhone = devicesOf(*m_alicePhone);
    QVERIFY(fromPhone.value(phoneId).current());
    QVERIFY(!fromPhone.value(laptopId).current());
}

void TestServerDevices::renamingADevice_data()
{
    QTest::addColumn<QString>("whose");
    QTest::addColumn<QString>("name");
    QTest::addColumn<int>("expectedCode"); // 0: renamed

    QTest::newRow("the caller's own device") << u"own"_s << u"laptop"_s << 0;
    QTest::newRow("another device of the account") << u"phone"_s << u"phone in the kitchen"_s << 0;
    QTest::newRow("a name of 64 characters") << u"phone"_s << QString(64, u'x') << 0;
    QTest::newRow("a name of 65 characters")
        << u"phone"_s << QString(65, u'x') << int(v1::BAD_REQUEST);
    QTest::newRow("an empty name") << u"phone"_s << QString() << int(v1::BAD_REQUEST);
    QTest::newRow("a name of blanks only") << u"phone"_s << u"   "_s << int(v1::BAD_REQUEST);
    QTest::newRow("another account's device") << u"bob"_s << u"hijacked"_s << int(v1::NOT_FOUND);
    QTest::newRow("a device id that does not exist")
        << u"none"_s << u"ghost"_s << int(v1::NOT_FOUND);
}

void TestServerDevices::renamingADevice()
{
    QFETCH(QString, whose);
    QFETCH(QString, name);
    QFETCH(int, expectedCode);

    quint64 deviceId = 9'999'999;
    if (whose == u"own") {
        deviceId = m_aliceLaptop->deviceId();
    } else if (whose == u"phone") {
        deviceId = m_alicePhone->deviceId();
    } else if (whose == u"bob") {
        deviceId = m_bob->deviceId();
    }
    const std::string nameBefore = devicesOf(*m_aliceLaptop).value(deviceId).name();
    const std::string bobsNameBefore = devicesOf(*m_bob).value(m_bob->deviceId()).name();

    const v1::Envelope answer = m_aliceLaptop->request(renameDeviceRequest(deviceId, name));
    if (expectedCode == 0) {
        QVERIFY2(answer.has_ok(), answer.DebugString().c_str());
        QCOMPARE(devicesOf(*m_aliceLaptop).value(deviceId).name(), name.toStdString());
        // Every device of the account sees the new name.
        QCOMPARE(devicesOf(*m_alicePhone).value(deviceId).name(), name.toStdString());
    } else {
        QVERIFY2(answer.has_error(), answer.DebugString().c_str());
        QCOMPARE(int(answer.error().code()), expectedCode);
        QCOMPARE(devicesOf(*m_aliceLaptop).value(deviceId).name(), nameBefore);
    }
    QCOMPARE(devicesOf(*m_bob).value(m_bob->deviceId()).name(), bobsNameBefore);
}

void TestServerDevices::removingAnotherConnectedDeviceClosesItsConnectionAtOnce()
{
    ProtocolClient oldPhone(m_server->url());
    const quint64 oldPhoneId = oldPhone.login(m_alice);
    QVERIFY(oldPhoneId != 0);

    QElapsedTimer sinceRemoval;
    sinceRemoval.start();
    const v1::Envelope answer = m_aliceLaptop->request(removeDeviceRequest(oldPhoneId));
    QVERIFY2(answer.has_ok(), answer.DebugString().c_str());
    QVERIFY(oldPhone.waitClosed(2000));
    QCOMPARE(int(oldPhone.socket().closeCode()), CloseCode::DeviceRemoved);
    qInfo(
        "The removed device's connection closed %lld ms after the request", sinceRemoval.elapsed());

    // The remover stays connected, and the removed device is gone from the list.
    QCOMPARE(m_aliceLaptop->socket().state(), QAbstractSocket::ConnectedState);
    const QMap<quint64, v1::Device> devices = devicesOf(*m_aliceLaptop);
    QVERIFY(!devices.contains(oldPhoneId));
    QVERIFY(devices.contains(m_alicePhone->deviceId()));

    // A removed device cannot be removed or renamed again.
    QCOMPARE(m_aliceLaptop->request(removeDeviceRequest(oldPhoneId)).error().code(), v1::NOT_FOUND);
    QCOMPARE(m_aliceLaptop->request(renameDeviceRequest(oldPhoneId, u"back"_s)).error().code(),
        v1::NOT_FOUND);
}

void TestServerDevices::aDeviceMayRemoveItselfAndHearsTheAnswerFirst()
{
    ProtocolClient spare(m_server->url());
    const quint64 spareId = spare.login(m_alice);
    QVERIFY(spareId != 0);

    const quint64 requestId = spare.send(removeDeviceRequest(spareId));
    v1::Envelope answer;
    QVERIFY(spare.reply(requestId, &answer));
    QVERIFY2(answer.has_ok(), answer.DebugString().c_str());
    QVERIFY(spare.waitClosed(2000));
    QCOMPARE(int(spare.socket().closeCode()), CloseCode::DeviceRemoved);
    QVERIFY(!devicesOf(*m_aliceLaptop).contains(spareId));
}

void TestServerDevices::noDeviceReachesAnotherAccountsDevices()
{
    const quint64 laptopId = m_aliceLaptop->deviceId();
    const quint64 phoneId = m_alicePhone->deviceId();

    // bob's list holds bob's device and nothing of alice's.
    const QMap<quint64, v1::Device> bobs = devicesOf(*m_bob);
    QCOMPARE(bobs.keys(), QList<quint64> { m_bob->deviceId() });

    // Neither renaming nor removing alice's devices gets through, and both answer as for a
    // device that does not exist, so bob learns nothing about which ids are in use.
    const v1::Envelope rename = m_bob->request(renameDeviceRequest(laptopId, u"mine now"_s));
    QCOMPARE(rename.error().code(), v1::NOT_FOUND);
    const v1::Envelope remove = m_bob->request(removeDeviceRequest(phoneId));
    QCOMPARE(remove.error().code(), v1::NOT_FOUND);
    const v1::Envelope removeMissing = m_bob->request(removeDeviceRequest(9'999'999));
    QCOMPARE(removeMissing.error().message(), remove.error().message());

    // alice's devices are as they were, and her phone is still connected.
    const QMap<quint64, v1::Device> alices = devicesOf(*m_aliceLaptop);
    QVERIFY(alices.contains(phoneId));
    QVERIFY(alices.value(phoneId).online());
    QVERIFY(alices.value(laptopId).name() != "mine now");
    QVERIFY(m_alicePhone->staysQuiet(100));
    QCOMPARE(m_alicePhone->socket().state(), QAbstractSocket::ConnectedState);
}

QTEST_GUILESS_MAIN(TestServerDevices)
#include "tst_server_devices.moc"
