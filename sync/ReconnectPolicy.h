#pragma once

#include <chrono>
#include <functional>

namespace ferry {

/// The shape of a reconnect schedule; the defaults are 0.5 s doubling up to 30 s.
struct BackoffSettings {
    std::chrono::milliseconds base { 500 };
    double factor = 2.0;
    std::chrono::milliseconds cap { 30'000 };
};

/// When to try connecting again after a failure: exponential backoff with full jitter. The n-th
/// consecutive failure waits a uniformly random time between zero and min(cap, base * factor^n),
/// so a crowd of clients that lost the same server do not all come back in the same instant.
/// Pure logic with an injectable random source, so its schedule can be tested exactly.
class ReconnectPolicy {
public:
    using Settings = BackoffSettings;

    /// Returns a value in [0, 1).
    using RandomSource = std::function<double()>;

    explicit ReconnectPolicy(Settings settings = {}, RandomSource random = {});

    /// The upper bound of the delay after `failures` consecutive failures (0 for the first).
    std::chrono::milliseconds ceiling(int failures) const;

    /// The delay before the next try; counts one more failure.
    std::chrono::milliseconds nextDelay();

    /// Forgets past failures, after a connection stayed healthy long enough.
    void reset() { m_failures = 0; }

    int failures() const { return m_failures; }
    const Settings& settings() const { return m_settings; }

private:
    Settings m_settings;
    RandomSource m_random;
    int m_failures = 0;
};

} // namespace ferry
