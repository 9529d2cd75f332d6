#pragma once

#include "Histogram.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace ferry::v1 {
class Envelope;
}

namespace ferry::bench {

/// What a worker is told on its command line: where the server is and which users it plays.
struct WorkerOptions {
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    bool echo = false; ///< the server is the echo baseline: no Hello, no accounts
    uint32_t firstIndex = 0; ///< global index of this worker's first user
    std::string prefix = "load"; ///< user names are <prefix>-<global index>
    int sourceAddresses = 8; ///< connections come from 127.0.0.2 .. 127.0.0.(1+n)
    int setupParallel = 64; ///< connections being set up at once
    int bodyBytes = 100;
    uint64_t maxOutstanding = 100'000; ///< unacknowledged sends before new ones are skipped
};

/// One load-generating process: many connections on one thread and one epoll set. It takes
/// line commands from the coordinator on stdin and answers on stdout (see Coordinator.cpp), and
/// answers the server's pings all along, so connections it is not using stay authenticated.
class LoadWorker {
public:
    explicit LoadWorker(WorkerOptions options);
    ~LoadWorker();

    /// Runs until the coordinator says quit or closes stdin. Returns the process exit code.
    int exec();

private:
    enum class State {
        Connecting,
        Upgrading,
        AwaitingWelcome,
        AwaitingAuth,
        AwaitingSync,
        Live,
        Closed
    };

    struct Connection {
        int fd = -1;
        State state = State::Connecting;
        uint32_t globalIndex = 0;
        int peer = -1; ///< local index of the partner in direct mode
        std::string name;
        std::string directConversation;
        std::string in; ///< bytes received and not yet parsed
        std::string out; ///< bytes not yet accepted by the kernel
        std::string message; ///< a fragmented message being put together
        uint64_t nextRequestId = 1;
        uint64_t authRequestId = 0;
        uint64_t syncRequestId = 0;
        uint64_t probeRequestId = 0;
        bool loginTried = false;
        bool wantWrite = false;
        uint32_t sentCounter = 0;
        std::vector<uint8_t> acked; ///< by this connection's counter
        std::vector<uint8_t> fromPeer; ///< the peer's counters received, for exactly-once
    };

    struct Pending {
        int64_t scheduledNs;
        uint32_t counter;
    };

    enum class Task { None, Connect, Run, Drain, Touch, Rtt, CreateGroup, Probe };

    // Connections
    void openConnections();
    void startConnection(int index);
    void handleEvent(int index, uint32_t events);
    void handleWritable(Connection& c, int index);
    void handleReadable(Connection& c, int index);
    void parseFrames(Connection& c, int index);
    void handleMessage(Connection& c, int index, std::string_view payload);
    void handleEnvelope(Connection& c, int index, const v1::Envelope& envelope);
    void becomeLive(Connection& c);
    void fail(Connection& c, int index, bool unexpected);
    void sendEnvelope(Connection& c, int index, const v1::Envelope& envelope);
    void sendFrame(Connection& c, int index, int opcode, std::string_view payload);
    void flush(Connection& c, int index);

    // Messages
    void sendMessage(int index, int64_t scheduledNs);
    void handleDelivery(Connection& c, std::string_view body, int64_t nowNs);
    void scheduleSends(int64_t nowNs);
    bool drained() const;

    // Commands and their answers
    void readCommands();
    void handleCommand(const std::string& line);
    void checkTask(int64_t nowNs);
    void reply(const std::string& line);
    void replyRunResult(const char* kind);
    void resetCounters();

    WorkerOptions m_options;
    int m_epoll = -1;
    std::vector<Connection> m_connections;
    std::string m_stdinBuffer;
    bool m_quit = false;
    std::unique_ptr<v1::Envelope> m_inEnvelope;
    std::string m_scratch;
    std::string m_readBuffer;
    uint64_t m_random = 0x9E3779B97F4A7C15ULL;

    // Connection set-up
    size_t m_target = 0;
    int m_settingUp = 0;
    uint64_t m_failed = 0;
    uint64_t m_unexpectedCloses = 0;
    std::map<int, uint64_t> m_closeCodes;
    int64_t m_connectStartNs = 0;

    // The current task
    Task m_task = Task::None;
    int64_t m_taskDeadlineNs = 0;
    std::string m_mode; ///< direct, group or echo
    std::string m_groupConversation;
    double m_rate = 0; ///< messages per second this worker offers
    int64_t m_runStartNs = 0;
    int64_t m_runEndNs = 0;
    int64_t m_lastDrainCheckNs = 0; ///< draining is checked every 20 ms, not every turn
    uint64_t m_scheduled = 0;
    size_t m_nextSender = 0;
    uint64_t m_groupRequestId = 0;
    int m_groupState = 0; ///< 0 waiting, 1 created, -1 failed
    int m_probeAnswered = 0;
    int m_probeRefused = 0;
    size_t m_nextTouch = 0; ///< next connection to send its one message in a touch
    size_t m_touchWindow = 0;
    int m_rttRemaining = 0;
    bool m_rttAckSeen = false;
    bool m_rttDeliverySeen = false;

    // What the current run measured
    std::unordered_map<uint64_t, Pending> m_pending; ///< (local index << 32 | request id)
    uint64_t m_sent = 0;
    uint64_t m_skipped = 0;
    uint64_t m_acked = 0;
    uint64_t m_ackedInWindow = 0;
    uint64_t m_delivered = 0;
    uint64_t m_deliveredInWindow = 0;
    uint64_t m_duplicates = 0;
    uint64_t m_errors = 0;
    uint64_t m_pingsAnswered = 0;
    std::map<int, uint64_t> m_errorCodes;
    Histogram m_ackLatency;
    Histogram m_deliverLatency;
};

} // namespace ferry::bench
