#include "Coordinator.h"

#include "Histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace ferry::bench {

namespace {

    // ---- Reading the server from outside ---------------------------------------------------

    /// VmRSS of a process in KiB, 0 if it is gone.
    long residentKiB(long pid)
    {
        std::ifstream status("/proc/" + std::to_string(pid) + "/status");
        std::string line;
        while (std::getline(status, line)) {
            if (line.rfind("VmRSS:", 0) == 0) {
                return std::stol(line.substr(6));
            }
        }
        return 0;
    }

    /// User plus system CPU seconds a process has used.
    double cpuSeconds(long pid)
    {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
        const size_t paren = text.rfind(')');
        if (paren == std::string::npos) {
            return 0;
        }
        std::istringstream fields(text.substr(paren + 2));
        std::string field;
        double ticks = 0;
        for (int i = 3; fields >> field; ++i) {
            if (i == 14 || i == 15) {
                ticks += std::stod(field);
            }
            if (i == 15) {
                break;
            }
        }
        return ticks / double(sysconf(_SC_CLK_TCK));
    }

    double monotonicSeconds()
    {
        timespec ts {};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
    }

    std::vector<double> numberList(const std::string& text)
    {
        std::vector<double> numbers;
        std::istringstream items(text);
        std::string item;
        while (std::getline(items, item, ',')) {
            if (!item.empty()) {
                numbers.push_back(std::stod(item));
            }
        }
        return numbers;
    }

    std::string fixed(double value, int decimals = 1)
    {
        char text[64];
        std::snprintf(text, sizeof text, "%.*f", decimals, value);
        return text;
    }

    // ---- Worker processes ------------------------------------------------------------------

    struct Worker {
        pid_t pid = -1;
        int toWorker = -1;
        int fromWorker = -1;
        std::string buffer;
        uint32_t firstIndex = 0;
    };

    /// A run's figures summed over workers, with merged histograms.
    struct RunResult {
        std::map<std::string, uint64_t> counts;
        std::map<std::string, uint64_t> errorCodes;
        std::map<std::string, uint64_t> closeCodes;
        Histogram ack;
        Histogram deliver;
        bool complete = true;

        uint64_t operator[](const std::string& name) const
        {
            const auto found = counts.find(name);
            return found == counts.end() ? 0 : found->second;
        }
    };

    void addCodes(std::map<std::string, uint64_t>& into, const std::string& text)
    {
        std::istringstream items(text);
        std::string item;
        while (std::getline(items, item, ',')) {
            const size_t colon = item.find(':');
            if (colon != std::string::npos) {
                into[item.substr(0, colon)] += std::stoull(item.substr(colon + 1));
            }
        }
    }

    std::string codesText(const std::map<std::string, uint64_t>& codes)
    {
        std::string text;
        for (const auto& [code, count] : codes) {
            text += (text.empty() ? "" : " ") + code + "x" + std::to_string(count);
        }
        return text.empty() ? "none" : text;
    }

    std::string percentilesJson(const Histogram& h)
    {
        auto ms = [](uint64_t ns) { return fixed(double(ns) / 1e6, 3); };
        return "{\"count\": " + std::to_string(h.count()) + ", \"p50_ms\": " + ms(h.percentile(0.5))
            + ", \"p90_ms\": " + ms(h.percentile(0.9)) + ", \"p99_ms\": " + ms(h.percentile(0.99))
            + ", \"p999_ms\": " + ms(h.percentile(0.999)) + ", \"max_ms\": " + ms(h.max()) + "}";
    }

    std::string percentilesText(const Histogram& h)
    {
        auto ms = [](uint64_t ns) { return fixed(double(ns) / 1e6, 3); };
        return "p50 " + ms(h.percentile(0.5)) + " p90 " + ms(h.percentile(0.9)) + " p99 "
            + ms(h.percentile(0.99)) + " p99.9 " + ms(h.percentile(0.999)) + " max " + ms(h.max())
            + " ms (n=" + std::to_string(h.count()) + ")";
    }

    class Fleet {
    public:
        Fleet(const Options& options, long serverPid)
            : m_options(options)
            , m_serverPid(serverPid)
        {
        }

        ~Fleet() { stop(); }

        std::string option(const std::string& name, const std::string& fallback) const
        {
            const auto found = m_options.find(name);
            return found == m_options.end() ? fallback : found->second;
        }

        /// Starts `count` workers; worker i plays users from i * stride on.
        bool start(int count, uint32_t stride, const std::string& prefix)
        {
            std::string url = option("url", "ws://127.0.0.1:8765");
            const size_t scheme = url.find("://");
            if (scheme != std::string::npos) {
                url.erase(0, scheme + 3);
            }
            const size_t colon = url.rfind(':');
            const std::string host = url.substr(0, colon);
            std::string port = url.substr(colon + 1);
            port = port.substr(0, port.find('/'));

            for (int i = 0; i < count; ++i) {
                int toWorker[2];
                int fromWorker[2];
                if (pipe2(toWorker, O_CLOEXEC) != 0 || pipe2(fromWorker, O_CLOEXEC) != 0) {
                    std::perror("ferry-load: pipe");
                    return false;
                }
                Worker worker;
                worker.firstIndex = uint32_t(i) * stride;
                std::vector<std::string> args = { "ferry-load", "worker", "--host", host, "--port",
                    port, "--first-index", std::to_string(worker.firstIndex), "--prefix", prefix,
                    "--sources", option("sources", "8"), "--setup-parallel",
                    option("setup-parallel", "64"), "--body-bytes", option("body-bytes", "100") };
                if (m_options.count("echo")) {
                    args.push_back("--echo");
                }
                std::vector<char*> argv;
                for (std::string& arg : args) {
                    argv.push_back(arg.data());
                }
                argv.push_back(nullptr);

                posix_spawn_file_actions_t actions;
                posix_spawn_file_actions_init(&actions);
                posix_spawn_file_actions_adddup2(&actions, toWorker[0], STDIN_FILENO);
                posix_spawn_file_actions_adddup2(&actions, fromWorker[1], STDOUT_FILENO);
                const int spawned = posix_spawn(
                    &worker.pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
                posix_spawn_file_actions_destroy(&actions);
                ::close(toWorker[0]);
                ::close(fromWorker[1]);
                if (spawned != 0) {
                    std::fprintf(stderr, "ferry-load: could not start a worker: %s\n",
                        std::strerror(spawned));
                    return false;
                }
                worker.toWorker = toWorker[1];
                worker.fromWorker = fromWorker[0];
                m_workers.push_back(std::move(worker));
            }
            return true;
        }

        void stop()
        {
            for (Worker& worker : m_workers) {
                if (worker.toWorker >= 0) {
                    const char quit[] = "quit\n";
                    (void)!::write(worker.toWorker, quit, sizeof quit - 1);
                    ::close(worker.toWorker);
                    worker.toWorker = -1;
                }
            }
            for (Worker& worker : m_workers) {
                if (worker.pid > 0) {
                    // Bounded: a worker that does not leave within 10 s is killed by its id.
                    int status = 0;
                    for (int i = 0; i < 100 && waitpid(worker.pid, &status, WNOHANG) == 0; ++i) {
                        usleep(100'000);
                    }
                    if (waitpid(worker.pid, &status, WNOHANG) == 0) {
                        kill(worker.pid, SIGKILL);
                        waitpid(worker.pid, &status, 0);
                    }
                    worker.pid = -1;
                }
                if (worker.fromWorker >= 0) {
                    ::close(worker.fromWorker);
                    worker.fromWorker = -1;
                }
            }
        }

        size_t size() const { return m_workers.size(); }
        const Worker& worker(size_t i) const { return m_workers[i]; }

        void send(size_t i, const std::string& command)
        {
            const std::string line = command + '\n';
            (void)!::write(m_workers[i].toWorker, line.data(), line.size());
        }

        void sendAll(const std::function<std::string(size_t)>& command)
        {
            for (size_t i = 0; i < m_workers.size(); ++i) {
                send(i, command(i));
            }
        }

        /// The next line from worker i, waiting at most `timeoutSeconds`; samples the server's
        /// RSS once a second meanwhile. Empty if none came.
        std::string readLine(size_t i, double timeoutSeconds)
        {
            Worker& worker = m_workers[i];
            const double deadline = monotonicSeconds() + timeoutSeconds;
            while (true) {
                const size_t newline = worker.buffer.find('\n');
                if (newline != std::string::npos) {
                    std::string line = worker.buffer.substr(0, newline);
                    worker.buffer.erase(0, newline + 1);
                    return line;
                }
                const double left = deadline - monotonicSeconds();
                if (left <= 0) {
                    return {};
                }
                pollfd fd { worker.fromWorker, POLLIN, 0 };
                const int ready = poll(&fd, 1, int(std::min(1000.0, left * 1000)) + 1);
                sampleServer();
                if (ready > 0) {
                    char chunk[65536];
                    const ssize_t n = ::read(worker.fromWorker, chunk, sizeof chunk);
                    if (n <= 0) {
                        return {};
                    }
                    worker.buffer.append(chunk, size_t(n));
                }
            }
        }

        /// Collects one run result from every worker.
        RunResult collect(double timeoutSeconds)
        {
            RunResult total;
            for (size_t i = 0; i < m_workers.size(); ++i) {
                bool ended = false;
                while (!ended) {
                    const std::string line = readLine(i, timeoutSeconds);
                    if (line.empty()) {
                        total.complete = false;
                        break;
                    }
                    std::istringstream words(line);
                    std::string kind;
                    words >> kind;
                    if (kind == "end") {
                        ended = true;
                    } else if (kind == "hist") {
                        std::string name;
                        std::string data;
                        words >> name >> data;
                        (name == "ack" ? total.ack : total.deliver)
                            .merge(Histogram::deserialize(data));
                    } else if (kind == "result") {
                        std::string pair;
                        while (words >> pair) {
                            const size_t eq = pair.find('=');
                            const std::string key = pair.substr(0, eq);
                            const std::string value = pair.substr(eq + 1);
                            if (key == "error_codes") {
                                addCodes(total.errorCodes, value);
                            } else if (key == "close_codes") {
                                addCodes(total.closeCodes, value);
                            } else if (!value.empty() && std::isdigit(uint8_t(value[0]))) {
                                total.counts[key] += std::stoull(value);
                            }
                        }
                    }
                }
            }
            return total;
        }

        /// Asks every worker to hold `counts[i]` connections; returns live, failed and the
        /// slowest worker's seconds.
        std::tuple<uint64_t, uint64_t, double> connect(const std::vector<uint64_t>& counts)
        {
            sendAll([&](size_t i) { return "connect " + std::to_string(counts[i]); });
            uint64_t live = 0;
            uint64_t failed = 0;
            double seconds = 0;
            for (size_t i = 0; i < m_workers.size(); ++i) {
                std::istringstream words(readLine(i, 330));
                std::string word;
                uint64_t l = 0;
                uint64_t f = 0;
                double s = 0;
                words >> word >> l >> f >> s;
                live += l;
                failed += f;
                seconds = std::max(seconds, s);
            }
            return { live, failed, seconds };
        }

        void sampleServer()
        {
            if (m_serverPid > 0) {
                m_peakRss = std::max(m_peakRss, residentKiB(m_serverPid));
            }
        }

        long peakRss() const { return m_peakRss; }
        void resetPeakRss() { m_peakRss = 0; }

    private:
        Options m_options;
        long m_serverPid;
        std::vector<Worker> m_workers;
        long m_peakRss = 0;
    };

    /// Splits `total` connections over `workers` in even shares (pairs never span workers);
    /// worker 0 takes what is left over.
    std::vector<uint64_t> split(uint64_t total, size_t workers)
    {
        std::vector<uint64_t> counts(workers, (total / workers) & ~uint64_t(1));
        uint64_t rest = total;
        for (size_t i = 1; i < workers; ++i) {
            rest -= counts[i];
        }
        counts[0] = rest;
        return counts;
    }

    bool serverAlive(long pid) { return pid <= 0 || kill(pid_t(pid), 0) == 0; }

    // ---- Output ----------------------------------------------------------------------------

    struct Output {
        std::string directory;
        std::string name;
        std::vector<std::string> jsonRows;
        std::vector<std::string> tsvRows;
        std::string tsvHeader;
        std::string summaryJson;

        void write(const std::string& scenario, const Options& options) const
        {
            if (directory.empty()) {
                return;
            }
            std::string command;
            for (const auto& [key, value] : options) {
                command += " --" + key + " " + value;
            }
            std::ofstream json(directory + "/" + name + ".json");
            json << "{\n  \"scenario\": \"" << scenario << "\",\n  \"options\": \""
                 << command.substr(command.empty() ? 0 : 1) << "\",\n  \"steps\": [\n";
            for (size_t i = 0; i < jsonRows.size(); ++i) {
                json << "    " << jsonRows[i] << (i + 1 < jsonRows.size() ? ",\n" : "\n");
            }
            json << "  ],\n  \"summary\": " << (summaryJson.empty() ? "{}" : summaryJson)
                 << "\n}\n";
            std::ofstream tsv(directory + "/" + name + ".tsv");
            tsv << "# " << tsvHeader << "\n";
            for (const std::string& row : tsvRows) {
                tsv << row << "\n";
            }
        }
    };

    // ---- Scenarios -------------------------------------------------------------------------

    int idleScenario(Fleet& fleet, long serverPid, Output& out)
    {
        const std::vector<double> steps
            = numberList(fleet.option("steps", "100,1000,5000,10000,19500"));
        const auto perWorker = uint64_t(std::stoul(fleet.option("per-worker", "5000")));
        const int rttSamples = std::stoi(fleet.option("rtt-samples", "1000"));
        const double settle = std::stod(fleet.option("settle", "3"));
        const auto largest = uint64_t(*std::max_element(steps.begin(), steps.end()));
        const size_t workers = size_t((largest + perWorker - 1) / perWorker);
        if (!fleet.start(int(workers), uint32_t(perWorker), fleet.option("prefix", "idle"))) {
            return 1;
        }

        const long baseRss = residentKiB(serverPid);
        const double baseCpu = cpuSeconds(serverPid);
        std::printf("idle: server RSS before any connection %ld KiB\n", baseRss);
        out.tsvHeader = "connections\tbytes_per_connection\tack_p50_ms\tack_p99_ms\t"
                        "deliver_p50_ms\tdeliver_p99_ms";
        Histogram firstAck;
        Histogram lastAck;
        Histogram firstDeliver;
        Histogram lastDeliver;
        for (size_t stepIndex = 0; stepIndex < steps.size(); ++stepIndex) {
            const double step = steps[stepIndex];
            const auto [live, failed, seconds] = fleet.connect(split(uint64_t(step), workers));
            // Let set-up work (password hashes, presence, first pings) die down before reading.
            usleep(useconds_t(settle * 1e6));
            const long rss = residentKiB(serverPid);
            const double idleCpuStart = cpuSeconds(serverPid);
            usleep(1'000'000);
            const double idleCpu = cpuSeconds(serverPid) - idleCpuStart;
            fleet.send(0, "rtt " + std::to_string(rttSamples));
            RunResult rtt;
            {
                // Only worker 0 answers an rtt command.
                Fleet* f = &fleet;
                RunResult total;
                bool ended = false;
                while (!ended) {
                    const std::string line = f->readLine(0, 90);
                    if (line.empty()) {
                        total.complete = false;
                        break;
                    }
                    std::istringstream words(line);
                    std::string kind;
                    words >> kind;
                    if (kind == "end") {
                        ended = true;
                    } else if (kind == "hist") {
                        std::string name;
                        std::string data;
                        words >> name >> data;
                        (name == "ack" ? total.ack : total.deliver)
                            .merge(Histogram::deserialize(data));
                    }
                }
                rtt = total;
            }
            const double perConnection
                = live > 0 ? double(rss - baseRss) * 1024.0 / double(live) : 0.0;
            std::printf(
                "idle %6.0f: %llu live, %llu failed, connected in %.1f s; server RSS %ld KiB,"
                " %.0f bytes/connection, idle CPU %.0f %%\n"
                "  send->ack     %s\n  send->deliver %s\n",
                step, (unsigned long long)live, (unsigned long long)failed, seconds, rss,
                perConnection, idleCpu * 100, percentilesText(rtt.ack).c_str(),
                percentilesText(rtt.deliver).c_str());
            std::fflush(stdout);
            out.jsonRows.push_back("{\"connections\": " + fixed(step, 0)
                + ", \"live\": " + std::to_string(live) + ", \"failed\": " + std::to_string(failed)
                + ", \"connect_seconds\": " + fixed(seconds, 2) + ", \"server_rss_kib\": "
                + std::to_string(rss) + ", \"server_rss_before_kib\": " + std::to_string(baseRss)
                + ", \"bytes_per_connection\": " + fixed(perConnection, 0)
                + ", \"server_idle_cpu_percent\": " + fixed(idleCpu * 100, 1)
                + ", \"send_to_ack\": " + percentilesJson(rtt.ack)
                + ", \"send_to_deliver\": " + percentilesJson(rtt.deliver) + "}");
            out.tsvRows.push_back(fixed(step, 0) + "\t" + fixed(perConnection, 0) + "\t"
                + fixed(double(rtt.ack.percentile(0.5)) / 1e6, 3) + "\t"
                + fixed(double(rtt.ack.percentile(0.99)) / 1e6, 3) + "\t"
                + fixed(double(rtt.deliver.percentile(0.5)) / 1e6, 3) + "\t"
                + fixed(double(rtt.deliver.percentile(0.99)) / 1e6, 3));
            if (stepIndex == 0) {
                firstAck = rtt.ack;
                firstDeliver = rtt.deliver;
            }
            lastAck = rtt.ack;
            lastDeliver = rtt.deliver;
            if (!serverAlive(serverPid)) {
                std::printf("idle: the server is gone\n");
                return 1;
            }
        }
        auto ratio = [](const Histogram& a, const Histogram& b, double p) {
            return b.percentile(p) > 0 ? double(a.percentile(p)) / double(b.percentile(p)) : 0.0;
        };
        std::printf("idle: round trip at %.0f vs %.0f connections: send->ack p50 x%.2f p99 x%.2f; "
                    "send->deliver p50 x%.2f p99 x%.2f (server CPU %.1f s in all)\n",
            steps.back(), steps.front(), ratio(lastAck, firstAck, 0.5),
            ratio(lastAck, firstAck, 0.99), ratio(lastDeliver, firstDeliver, 0.5),
            ratio(lastDeliver, firstDeliver, 0.99), cpuSeconds(serverPid) - baseCpu);
        out.summaryJson = "{\"ack_p50_ratio\": " + fixed(ratio(lastAck, firstAck, 0.5), 2)
            + ", \"ack_p99_ratio\": " + fixed(ratio(lastAck, firstAck, 0.99), 2)
            + ", \"deliver_p50_ratio\": " + fixed(ratio(lastDeliver, firstDeliver, 0.5), 2)
            + ", \"deliver_p99_ratio\": " + fixed(ratio(lastDeliver, firstDeliver, 0.99), 2) + "}";
        return 0;
    }

    /// One offered-rate step of the direct, echo or group scenario.
    RunResult runStep(Fleet& fleet, long serverPid, const std::string& mode, double rate,
        double seconds, const std::string& conversation, Output& out, const std::string& label,
        uint64_t fanOut)
    {
        const double cpuStart = cpuSeconds(serverPid);
        fleet.resetPeakRss();
        fleet.sendAll([&](size_t) {
            return "run " + mode + " " + fixed(rate / double(fleet.size()), 3) + " "
                + fixed(seconds, 3) + " " + conversation;
        });
        const RunResult r = fleet.collect(seconds + 60);
        const double cpu = cpuSeconds(serverPid) - cpuStart;
        const double ackedPerSecond = double(r["acked_window"]) / seconds;
        const double deliveredPerSecond = double(r["delivered_window"]) / seconds;
        std::printf("%s %s offered %.0f/s: acked %.0f/s, delivered %.0f/s (%llu sent, %llu skipped,"
                    " %llu unanswered, %llu errors [%s], %llu duplicates, %llu missing); server "
                    "CPU %.0f %%\n  send->ack     %s\n  send->deliver %s\n",
            label.c_str(), mode.c_str(), rate, ackedPerSecond, deliveredPerSecond,
            (unsigned long long)r["sent"], (unsigned long long)r["skipped"],
            (unsigned long long)r["unanswered"], (unsigned long long)r["errors"],
            codesText(r.errorCodes).c_str(), (unsigned long long)r["duplicates"],
            (unsigned long long)r["missing"], cpu / seconds * 100, percentilesText(r.ack).c_str(),
            percentilesText(r.deliver).c_str());
        std::fflush(stdout);
        out.jsonRows.push_back("{\"label\": \"" + label + "\", \"offered_per_second\": "
            + fixed(rate, 0) + ", \"seconds\": " + fixed(seconds, 1) + ", \"sent\": "
            + std::to_string(r["sent"]) + ", \"skipped\": " + std::to_string(r["skipped"])
            + ", \"acked_per_second\": " + fixed(ackedPerSecond, 1) + ", \"delivered_per_second\": "
            + fixed(deliveredPerSecond, 1) + ", \"expected_deliveries_per_message\": "
            + std::to_string(fanOut) + ", \"unanswered\": " + std::to_string(r["unanswered"])
            + ", \"errors\": " + std::to_string(r["errors"]) + ", \"duplicates\": "
            + std::to_string(r["duplicates"]) + ", \"missing\": " + std::to_string(r["missing"])
            + ", \"unexpected_closes\": " + std::to_string(r["closed"])
            + ", \"server_cpu_percent\": " + fixed(cpu / seconds * 100, 1)
            + ", \"server_peak_rss_kib\": " + std::to_string(fleet.peakRss())
            + ", \"send_to_ack\": " + percentilesJson(r.ack)
            + ", \"send_to_deliver\": " + percentilesJson(r.deliver) + "}");
        out.tsvRows.push_back(label + "\t" + fixed(rate, 0) + "\t" + fixed(ackedPerSecond, 1) + "\t"
            + fixed(deliveredPerSecond, 1) + "\t" + fixed(double(r.ack.percentile(0.5)) / 1e6, 3)
            + "\t" + fixed(double(r.ack.percentile(0.99)) / 1e6, 3) + "\t"
            + fixed(double(r.deliver.percentile(0.5)) / 1e6, 3) + "\t"
            + fixed(double(r.deliver.percentile(0.99)) / 1e6, 3));
        return r;
    }

    int rateScenario(const std::string& scenario, Fleet& fleet, long serverPid, Output& out)
    {
        const bool group = scenario == "group";
        const auto users = uint64_t(std::stoul(fleet.option(group ? "members" : "users", "1000")));
        const size_t workers = size_t(std::stoul(fleet.option("workers", "2")));
        const double seconds = std::stod(fleet.option("seconds", "10"));
        const std::vector<double> rates = numberList(
            fleet.option("rates", group ? "50,100,200,400,800" : "1000,2000,4000,8000,16000"));
        const double saturation = std::stod(fleet.option("saturation", "0.9"));
        const std::string mode
            = fleet.option("echo", "") == "1" ? "echo" : (group ? "group" : "direct");
        const std::vector<uint64_t> counts = split(users, workers);
        if (!fleet.start(int(workers), uint32_t(counts[0]), fleet.option("prefix", scenario))) {
            return 1;
        }
        const auto [live, failed, connectSeconds] = fleet.connect(counts);
        std::printf("%s: %llu of %llu users online (%llu failed) in %.1f s\n", scenario.c_str(),
            (unsigned long long)live, (unsigned long long)users, (unsigned long long)failed,
            connectSeconds);
        if (live < users) {
            return 1;
        }

        std::string conversation;
        uint64_t fanOut = 1;
        if (group) {
            char id[64];
            std::snprintf(id, sizeof id, "group:%08x-0000-4000-8000-%012llx", unsigned(getpid()),
                (unsigned long long)time(nullptr));
            conversation = id;
            fleet.send(0, "creategroup " + conversation + " " + std::to_string(users));
            const std::string answer = fleet.readLine(0, 70);
            if (answer != "group ok") {
                std::printf("group: could not create the group (%s)\n", answer.c_str());
                return 1;
            }
            fanOut = users - 1;
            usleep(2'000'000); // the membership event reaches every member first
        }

        out.tsvHeader = "label\toffered\tacked_per_s\tdelivered_per_s\tack_p50_ms\tack_p99_ms\t"
                        "deliver_p50_ms\tdeliver_p99_ms";
        double peak = 0;
        double peakDeliveries = 0;
        for (double rate : rates) {
            const RunResult r
                = runStep(fleet, serverPid, mode, rate, seconds, conversation, out, "step", fanOut);
            const double acked = double(r["acked_window"]) / seconds;
            const double delivered = double(r["delivered_window"]) / seconds;
            peak = std::max(peak, acked);
            peakDeliveries = std::max(peakDeliveries, delivered);
            if (!serverAlive(serverPid)) {
                std::printf("%s: the server is gone\n", scenario.c_str());
                return 1;
            }
            const bool keptUp = acked >= saturation * rate
                && delivered >= saturation * rate * double(fanOut)
                && r.ack.percentile(0.99) < uint64_t(1e9);
            if (!keptUp) {
                break; // saturated: further steps only queue more
            }
        }
        std::printf("%s: peak %.0f acknowledged messages/s, %.0f deliveries/s\n", scenario.c_str(),
            peak, peakDeliveries);
        RunResult half;
        if (!group && peak > 0) {
            half = runStep(
                fleet, serverPid, mode, peak / 2, seconds, conversation, out, "half-peak", fanOut);
        }
        out.summaryJson = "{\"peak_acked_per_second\": " + fixed(peak, 0)
            + ", \"peak_delivered_per_second\": " + fixed(peakDeliveries, 0)
            + (group ? std::string()
                     : ", \"half_peak_send_to_ack\": " + percentilesJson(half.ack)
                        + ", \"half_peak_send_to_deliver\": " + percentilesJson(half.deliver))
            + "}";
        return 0;
    }

    /// #6's load requirement: many authenticated connections, heartbeats, a trickle of
    /// messages, for a while; then whether everything is still as it should be.
    int soakScenario(Fleet& fleet, long serverPid, Output& out)
    {
        const auto connections = uint64_t(std::stoul(fleet.option("connections", "10000")));
        const auto perWorker = uint64_t(std::stoul(fleet.option("per-worker", "5000")));
        const double seconds = std::stod(fleet.option("seconds", "60"));
        const double rate = std::stod(fleet.option("rate", "100"));
        const size_t workers = size_t((connections + perWorker - 1) / perWorker);
        const std::vector<uint64_t> counts = split(connections, workers);
        if (!fleet.start(int(workers), uint32_t(counts[0]), fleet.option("prefix", "soak"))) {
            return 1;
        }
        const long baseRss = residentKiB(serverPid);
        const auto [live, failed, connectSeconds] = fleet.connect(counts);
        std::printf("soak: %llu of %llu connections authenticated (%llu failed) in %.1f s\n",
            (unsigned long long)live, (unsigned long long)connections, (unsigned long long)failed,
            connectSeconds);
        std::fflush(stdout);

        // The plateau is read once every connection has sent and received a message, so that
        // what a connection allocates on first use counts as part of the plateau.
        const double touchStart = monotonicSeconds();
        fleet.sendAll([](size_t) { return std::string("touch 16"); });
        const RunResult warm = fleet.collect(660);
        std::printf("soak: warm-up, one message from every connection: %llu acked in %.1f s, "
                    "%llu delivered, %llu unanswered\n  send->deliver %s\n",
            (unsigned long long)warm["acked"], monotonicSeconds() - touchStart,
            (unsigned long long)warm["delivered"], (unsigned long long)warm["unanswered"],
            percentilesText(warm.deliver).c_str());
        std::fflush(stdout);
        // Then the soak's own traffic for a while before the plateau is read: the server's
        // fixed-size caches (SQLite's page cache, the allocator's arenas) fill in the first
        // seconds of steady traffic, a few MiB whatever the number of connections.
        Output ignored;
        const double settle = std::stod(fleet.option("settle", "10"));
        const RunResult settled
            = runStep(fleet, serverPid, "direct", rate, settle, "", ignored, "settle", 1);
        const long plateauRss = residentKiB(serverPid);
        const RunResult r = runStep(fleet, serverPid, "direct", rate, seconds, "", out, "soak", 1);
        const long endRss = residentKiB(serverPid);
        const long peakRss = fleet.peakRss();

        fleet.sendAll([](size_t) { return std::string("probe"); });
        uint64_t answered = 0;
        uint64_t refused = 0;
        uint64_t liveAtEnd = 0;
        uint64_t closes = 0;
        uint64_t pings = 0;
        for (size_t i = 0; i < fleet.size(); ++i) {
            std::istringstream words(fleet.readLine(i, 90));
            std::string word;
            uint64_t a = 0, b = 0, l = 0, c = 0, p = 0;
            words >> word >> a >> b >> l >> c >> p;
            answered += a;
            refused += b;
            liveAtEnd += l;
            closes += c;
            pings += p;
        }
        const bool alive = serverAlive(serverPid);
        const std::string closeCodes = codesText(r.closeCodes);
        const uint64_t acked = warm["acked"] + settled["acked"] + r["acked"];
        const uint64_t duplicates = warm["duplicates"] + settled["duplicates"] + r["duplicates"];
        const uint64_t missing = warm["missing"] + settled["missing"] + r["missing"];
        const uint64_t unanswered = warm["unanswered"] + settled["unanswered"] + r["unanswered"];
        std::printf("soak: server %s; RSS before %ld KiB, plateau %ld KiB, end %ld KiB (%+.1f %%),"
                    " peak %ld KiB; %llu pings answered; at the end %llu live, %llu answered as "
                    "authenticated, %llu refused, %llu closed by the server; %llu acked, %llu "
                    "duplicates, %llu missing, %llu unanswered; close codes seen: %s\n",
            alive ? "up" : "GONE", baseRss, plateauRss, endRss,
            plateauRss > 0 ? (double(endRss) / double(plateauRss) - 1) * 100 : 0.0, peakRss,
            (unsigned long long)pings, (unsigned long long)liveAtEnd, (unsigned long long)answered,
            (unsigned long long)refused, (unsigned long long)closes, (unsigned long long)acked,
            (unsigned long long)duplicates, (unsigned long long)missing,
            (unsigned long long)unanswered, closeCodes.c_str());
        out.summaryJson = "{\"connections\": " + std::to_string(connections)
            + ", \"authenticated_at_start\": " + std::to_string(live) + ", \"failed_to_connect\": "
            + std::to_string(failed) + ", \"connect_seconds\": " + fixed(connectSeconds, 2)
            + ", \"seconds\": " + fixed(seconds, 1) + ", \"server_alive\": "
            + (alive ? "true" : "false") + ", \"rss_before_kib\": " + std::to_string(baseRss)
            + ", \"rss_plateau_kib\": " + std::to_string(plateauRss) + ", \"rss_end_kib\": "
            + std::to_string(endRss) + ", \"rss_peak_kib\": " + std::to_string(peakRss)
            + ", \"pings_answered\": " + std::to_string(pings) + ", \"live_at_end\": "
            + std::to_string(liveAtEnd) + ", \"authenticated_at_end\": " + std::to_string(answered)
            + ", \"refused_at_end\": " + std::to_string(refused)
            + ", \"closed_by_server\": " + std::to_string(closes) + ", \"close_codes\": \""
            + closeCodes + "\"" + ", \"acked\": " + std::to_string(acked) + ", \"delivered\": "
            + std::to_string(warm["delivered"] + settled["delivered"] + r["delivered"])
            + ", \"duplicates\": " + std::to_string(duplicates) + ", \"missing\": "
            + std::to_string(missing) + ", \"unanswered\": " + std::to_string(unanswered)
            + ", \"errors\": " + std::to_string(warm["errors"] + settled["errors"] + r["errors"])
            + ", \"send_to_deliver\": " + percentilesJson(r.deliver) + "}";
        std::printf("SOAK-SUMMARY %s\n", out.summaryJson.c_str());
        return 0;
    }

} // namespace

int runScenario(const std::string& scenario, const Options& options)
{
    signal(SIGPIPE, SIG_IGN);
    const auto pidOption = options.find("server-pid");
    const long serverPid = pidOption == options.end() ? 0 : std::stol(pidOption->second);
    Fleet fleet(options, serverPid);
    Output out;
    out.directory = fleet.option("out", "");
    out.name = fleet.option("name", scenario);

    int code = 1;
    if (scenario == "idle") {
        code = idleScenario(fleet, serverPid, out);
    } else if (scenario == "direct" || scenario == "group") {
        code = rateScenario(scenario, fleet, serverPid, out);
    } else if (scenario == "soak") {
        code = soakScenario(fleet, serverPid, out);
    }
    fleet.stop();
    out.write(scenario, options);
    return code;
}

} // namespace ferry::bench
