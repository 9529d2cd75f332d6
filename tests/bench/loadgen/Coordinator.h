#pragma once

#include <map>
#include <string>

namespace ferry::bench {

/// Command-line options as name -> value ("--steps 100,1000" gives steps -> "100,1000"; a flag
/// without a value gives "1").
using Options = std::map<std::string, std::string>;

/// Runs one scenario (idle, direct, group, soak) with worker processes it starts and stops
/// itself; prints the figures and writes <out>/<name>.json and <out>/<name>.tsv. Returns the
/// process exit code: 0 when the scenario ran, whatever its figures; 1 when it could not run.
int runScenario(const std::string& scenario, const Options& options);

} // namespace ferry::bench
