#pragma once

#include <QJsonObject>
#include <QString>
#include <QStringList>

namespace ferry::bench {

/// The figures of one scenario, written as <results>/<scenario>.json in the shape every Ferry
/// benchmark shares: scenario, machine, command, figures, baseline, ratios. Printing is the
/// caller's; this only keeps and writes what was measured.
struct BenchReport {
    QString scenario;
    QString command; ///< how the figures were taken, as run
    QJsonObject figures; ///< Ferry's own measurements
    QJsonObject baseline; ///< the ceiling measured in the same run, if any
    QJsonObject ratios; ///< Ferry's figure as a fraction of the baseline's

    /// Writes the report into `resultsDir`; false (with a message on stderr) if it could not.
    bool write(const QString& resultsDir) const;
};

/// The machine the figures were taken on: FERRY_BENCH_MACHINE when set (run.sh sets it), else
/// what Qt and /proc tell.
QString machineDescription();

/// The program's arguments as one shell-like line, for the report's "command".
QString commandLine(const QStringList& arguments);

} // namespace ferry::bench
