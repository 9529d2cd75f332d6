#include "tests/bench/client/BenchReport.h"

#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QSysInfo>
#include <QThread>

#include <cstdio>

namespace ferry::bench {

bool BenchReport::write(const QString& resultsDir) const
{
    QJsonObject root;
    root[u"scenario"] = scenario;
    root[u"machine"] = machineDescription();
    root[u"command"] = command;
    root[u"figures"] = figures;
    root[u"baseline"] = baseline;
    root[u"ratios"] = ratios;
    QDir().mkpath(resultsDir);
    QFile file(QDir(resultsDir).filePath(scenario + u".json"));
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate)
        || file.write(QJsonDocument(root).toJson()) < 0) {
        std::fprintf(stderr, "bench: could not write %s\n", qPrintable(file.fileName()));
        return false;
    }
    return true;
}

QString machineDescription()
{
    const QString fromEnvironment = qEnvironmentVariable("FERRY_BENCH_MACHINE");
    if (!fromEnvironment.isEmpty()) {
        return fromEnvironment;
    }
    return QString::number(QThread::idealThreadCount()) + u" CPUs, " + QSysInfo::prettyProductName()
        + u", kernel " + QSysInfo::kernelVersion();
}

QString commandLine(const QStringList& arguments)
{
    QStringList quoted;
    for (const QString& argument : arguments) {
        quoted.append(argument.contains(u' ') ? u'\'' + argument + u'\'' : argument);
    }
    return quoted.join(u' ');
}

} // namespace ferry::bench
