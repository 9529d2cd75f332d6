// A server told to stop the moment it says it is listening stops cleanly, with exit code 0.
//
// Found by tst_chaos (soak of 2026-12-04, seeds 1796416076756 and 1796416076811): ferry-server
// printed its "listening on" line before it installed its SIGTERM handler, so a SIGTERM sent as
// soon as the line arrived sometimes met the default action and killed the server by signal 15
// instead of closing every connection with 1001 and exiting 0. The window is microseconds wide,
// so this test sends the SIGTERM at once many times over, as a supervisor restarting a service
// in a loop would.

#include "tests/support/ServerProcess.h"

#include <QTemporaryDir>
#include <QTest>

using namespace ferry::test;
using namespace Qt::StringLiterals;

namespace {
constexpr int Cycles = 60;
}

class TestServerStopAtOnce : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void aServerStoppedAsSoonAsItListensExitsCleanly();
};

void TestServerStopAtOnce::aServerStoppedAsSoonAsItListensExitsCleanly()
{
    QTemporaryDir root;
    QVERIFY2(root.isValid(), qPrintable(root.errorString()));
    ServerProcess server(root.filePath(u"server"_s));
    for (int cycle = 1; cycle <= Cycles; ++cycle) {
        QVERIFY2(server.start(), qPrintable(server.errorString()));
        // No wait at all between the ready line and the signal.
        QVERIFY2(server.stop(),
            qPrintable(u"cycle "_s + QString::number(cycle) + u": "_s + server.errorString()));
    }
}

QTEST_GUILESS_MAIN(TestServerStopAtOnce)
#include "tst_server_stop_at_once.moc"
