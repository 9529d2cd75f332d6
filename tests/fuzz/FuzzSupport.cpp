#include "tests/fuzz/FuzzSupport.h"

#include <QCoreApplication>
#include <QDir>
#include <QLoggingCategory>
#include <QTemporaryDir>

#include <google/protobuf/stubs/logging.h>

#include <memory>

namespace ferry::fuzz {

namespace {
    void dropMessage(QtMsgType, const QMessageLogContext&, const QString&) { }
}

void initialiseQt()
{
    static int argc = 1;
    static char name[] = "ferry-fuzz";
    static char* argv[] = { name, nullptr };
    // Never destroyed: the stores and servers the targets keep in statics outlive main(), and
    // the application must outlive them.
    static QCoreApplication* app = nullptr;
    if (app) {
        return;
    }
    app = new QCoreApplication(argc, argv);
    // FERRY_FUZZ_VERBOSE=1 keeps the log, for reading what a reproducer does. Protobuf's own
    // complaint about invalid UTF-8 in a string field is the common case here, not news.
    if (qEnvironmentVariableIntValue("FERRY_FUZZ_VERBOSE") == 0) {
        QLoggingCategory::setFilterRules(QStringLiteral("*=false"));
        qInstallMessageHandler(dropMessage);
        google::protobuf::SetLogHandler(nullptr);
    }
}

QString scratchFolder(const QString& name)
{
    // Owned for the life of the process; QTemporaryDir removes the folder at exit.
    static std::vector<std::unique_ptr<QTemporaryDir>> folders;
    const QString base
        = QDir(QStringLiteral("/dev/shm")).exists() ? QStringLiteral("/dev/shm") : QDir::tempPath();
    folders.push_back(std::make_unique<QTemporaryDir>(base + u"/ferry-" + name + u"-XXXXXX"));
    return folders.back()->path();
}

} // namespace ferry::fuzz
