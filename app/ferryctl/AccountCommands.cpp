// ferryctl register, login and devices.

#include "app/ferryctl/CtlCommands.h"
#include "app/ferryctl/CtlSupport.h"
#include "core/ConversationId.h"
#include "sync/SyncEngine.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QSysInfo>

namespace ferry::ctl {

namespace {

    const QUrl DefaultServerUrl(QStringLiteral("ws://127.0.0.1:8765"));

    int signIn(const CtlOptions& options, bool createAccount)
    {
        if (options.arguments.size() != 1) {
            printError(createAccount ? QStringLiteral("usage: ferryctl register USER")
                                     : QStringLiteral("usage: ferryctl login USER"));
            return ExitUsage;
        }
        const QString userName = options.arguments[0];
        if (!isValidUserName(userName)) {
            printError(QStringLiteral(
                "a user name is 1 to 32 characters from a-z, 0-9, '.', '_' and '-'"));
            return ExitUsage;
        }
        int exitCode = ExitOk;
        std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
        if (!store) {
            return exitCode;
        }
        if (const auto account = store->account()) {
            printError(u"this profile already belongs to " + account->userName + u" (device "
                + QString::number(account->deviceId) + u"); use another --profile");
            return ExitError;
        }
        const QByteArray password = readPassword();
        if (password.isEmpty()) {
            printError(QStringLiteral("no password given (FERRY_PASSWORD or standard input)"));
            return ExitUsage;
        }

        const QString deviceName = options.deviceName.isEmpty()
            ? QSysInfo::machineHostName().left(64)
            : options.deviceName;
        CtlOptions withServer = options;
        if (withServer.serverUrls.isEmpty()) {
            withServer.serverUrls = { DefaultServerUrl };
        }
        std::unique_ptr<SyncEngine> engine = makeEngine(store.get(), withServer);
        QObject::connect(engine.get(), &SyncEngine::authenticated,
            [&](const QString& user, quint64 deviceId) {
                printOut((createAccount ? u"registered " : u"logged in as ") + user
                    + u", device " + QString::number(deviceId) + u" (" + deviceName + u')');
                QCoreApplication::exit(ExitOk);
            });
        return runEngine(*engine, withServer, false, [&] {
            engine->startWithPassword(userName, password, deviceName, createAccount);
        });
    }

    QString formatTime(qint64 unixMillis)
    {
        return QDateTime::fromMSecsSinceEpoch(unixMillis, Qt::UTC).toString(Qt::ISODate);
    }

} // namespace

int runRegister(const CtlOptions& options)
{
    return signIn(options, true);
}

int runLogin(const CtlOptions& options)
{
    return signIn(options, false);
}

int runDevices(const CtlOptions& options)
{
    const QStringList& args = options.arguments;
    const QString action = args.value(0, QStringLiteral("list"));
    bool idOk = false;
    const quint64 deviceId = args.value(1).toULongLong(&idOk);
    const bool valid = (action == u"list" && args.size() <= 1)
        || (action == u"rename" && args.size() == 3 && idOk)
        || (action == u"remove" && args.size() == 2 && idOk);
    if (!valid) {
        printError(QStringLiteral(
            "usage: ferryctl devices [list] | devices rename ID NAME | devices remove ID"));
        return ExitUsage;
    }
    int exitCode = ExitOk;
    std::unique_ptr<ClientStore> store = openStore(options, &exitCode);
    if (!store) {
        return exitCode;
    }
    std::unique_ptr<SyncEngine> engine = makeEngine(store.get(), options);

    if (action == u"list") {
        QObject::connect(engine.get(), &SyncEngine::devicesListed,
            [&](quint64, const QList<DeviceInfo>& devices) {
                for (const DeviceInfo& device : devices) {
                    if (options.json) {
                        QJsonObject object;
                        object[u"id"] = static_cast<qint64>(device.id);
                        object[u"name"] = device.name;
                        object[u"created"] = formatTime(device.createdMs);
                        object[u"current"] = device.current;
                        object[u"online"] = device.online;
                        printJson(object);
                    } else {
                        printOut(QString::number(device.id).leftJustified(6) + device.name
                            + (device.current ? QStringLiteral("  (this device)") : QString())
                            + (device.online ? QStringLiteral("  online") : QString()));
                    }
                }
            });
    }
    return runRequest(
        *engine, options,
        [&] {
            if (action == u"rename") {
                return engine->renameDevice(deviceId, args[2]);
            }
            if (action == u"remove") {
                return engine->removeDevice(deviceId);
            }
            return engine->listDevices();
        },
        [&](const QString& error) {
            if (!error.isEmpty()) {
                printError(u"the server refused: " + error);
                return int(ExitSomeFailed);
            }
            if (action == u"remove") {
                printOut(u"removed device " + QString::number(deviceId));
                // Removing this very device signs it out: the server closes the link at once.
                if (store->account() && store->account()->deviceId == deviceId) {
                    QCoreApplication::exit(ExitOk);
                }
            } else if (action == u"rename") {
                printOut(u"renamed device " + QString::number(deviceId));
            }
            return int(ExitOk);
        });
}

} // namespace ferry::ctl
