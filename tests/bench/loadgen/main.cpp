// ferry-load: Ferry's load generator. `ferry-load <scenario> --url ws://127.0.0.1:PORT ...`
// starts worker processes (each `ferry-load worker ...`, one thread and one epoll set holding
// thousands of connections), drives them through the scenario, merges their latency histograms
// and writes the figures. docs/benchmarks.md lists the scenarios and their options.

#include "Coordinator.h"
#include "LoadWorker.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace ferry::bench;

namespace {

int usage()
{
    std::fprintf(stderr,
        "usage: ferry-load idle|direct|group|soak --url ws://127.0.0.1:PORT [--server-pid PID]\n"
        "       [--out DIR] [--name NAME] [scenario options]; see docs/benchmarks.md\n");
    return 2;
}

Options parseOptions(int argc, char* argv[], int first)
{
    Options options;
    for (int i = first; i < argc; ++i) {
        if (std::strncmp(argv[i], "--", 2) != 0) {
            continue;
        }
        const std::string name = argv[i] + 2;
        const bool hasValue = i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0;
        options.insert_or_assign(name, std::string(hasValue ? argv[++i] : "1"));
    }
    return options;
}

} // namespace

int main(int argc, char* argv[])
{
    if (argc < 2) {
        return usage();
    }
    const std::string scenario = argv[1];
    const Options options = parseOptions(argc, argv, 2);

    if (scenario == "worker") {
        WorkerOptions worker;
        auto value = [&](const char* name, const char* fallback) {
            const auto found = options.find(name);
            return found == options.end() ? std::string(fallback) : found->second;
        };
        worker.host = value("host", "127.0.0.1");
        worker.port = static_cast<uint16_t>(std::stoi(value("port", "0")));
        worker.echo = options.count("echo") != 0;
        worker.firstIndex = static_cast<uint32_t>(std::stoul(value("first-index", "0")));
        worker.prefix = value("prefix", "load");
        worker.sourceAddresses = std::stoi(value("sources", "8"));
        worker.setupParallel = std::stoi(value("setup-parallel", "64"));
        worker.bodyBytes = std::stoi(value("body-bytes", "100"));
        return LoadWorker(worker).exec();
    }
    if (scenario != "idle" && scenario != "direct" && scenario != "group" && scenario != "soak") {
        return usage();
    }
    return runScenario(scenario, options);
}
