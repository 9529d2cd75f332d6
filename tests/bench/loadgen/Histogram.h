#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace ferry::bench {

/// A latency histogram in log-spaced buckets, in the spirit of HdrHistogram: 32 buckets per
/// power of two, so every recorded value is known to about 3 % at any magnitude from nanoseconds
/// to minutes, in constant memory. Histograms from several processes merge by adding counts,
/// which averages of averages cannot do.
class Histogram {
public:
    static constexpr int SubBucketBits = 5;
    static constexpr int SubBuckets = 1 << SubBucketBits;
    static constexpr int Linear = 2 * SubBuckets; // values below this have a bucket each
    static constexpr int BucketCount = Linear + (64 - SubBucketBits - 1) * SubBuckets;

    void record(int64_t value)
    {
        const uint64_t v = value < 0 ? 0 : static_cast<uint64_t>(value);
        ++m_counts[indexOf(v)];
        ++m_total;
        m_max = std::max(m_max, v);
    }

    void merge(const Histogram& other)
    {
        for (int i = 0; i < BucketCount; ++i) {
            m_counts[i] += other.m_counts[i];
        }
        m_total += other.m_total;
        m_max = std::max(m_max, other.m_max);
    }

    uint64_t count() const { return m_total; }
    uint64_t max() const { return m_max; }

    /// The value at `fraction` (0.5 for the median): the upper edge of the bucket holding it,
    /// never above the largest value seen.
    uint64_t percentile(double fraction) const
    {
        if (m_total == 0) {
            return 0;
        }
        const auto rank = static_cast<uint64_t>(std::max(1.0, fraction * double(m_total) + 0.5));
        uint64_t seen = 0;
        for (int i = 0; i < BucketCount; ++i) {
            seen += m_counts[i];
            if (seen >= std::min(rank, m_total)) {
                return std::min(upperEdge(i), m_max);
            }
        }
        return m_max;
    }

    /// "max;index:count,index:count" with only the buckets in use, for the worker pipe.
    std::string serialize() const
    {
        std::string text = std::to_string(m_max) + ';';
        for (int i = 0; i < BucketCount; ++i) {
            if (m_counts[i] != 0) {
                text += std::to_string(i) + ':' + std::to_string(m_counts[i]) + ',';
            }
        }
        return text;
    }

    static Histogram deserialize(std::string_view text)
    {
        Histogram h;
        const size_t semicolon = text.find(';');
        if (semicolon == std::string_view::npos) {
            return h;
        }
        h.m_max = std::stoull(std::string(text.substr(0, semicolon)));
        size_t at = semicolon + 1;
        while (at < text.size()) {
            const size_t colon = text.find(':', at);
            const size_t comma = text.find(',', at);
            if (colon == std::string_view::npos || comma == std::string_view::npos) {
                break;
            }
            const int index = std::stoi(std::string(text.substr(at, colon - at)));
            const uint64_t n = std::stoull(std::string(text.substr(colon + 1, comma - colon - 1)));
            if (index >= 0 && index < BucketCount) {
                h.m_counts[index] += n;
                h.m_total += n;
            }
            at = comma + 1;
        }
        return h;
    }

private:
    static int indexOf(uint64_t v)
    {
        if (v < Linear) {
            return static_cast<int>(v);
        }
        const int exponent = 63 - __builtin_clzll(v); // >= SubBucketBits + 1
        const int shift = exponent - SubBucketBits;
        const int sub = static_cast<int>((v >> shift) & (SubBuckets - 1));
        return Linear + (exponent - SubBucketBits - 1) * SubBuckets + sub;
    }

    static uint64_t upperEdge(int index)
    {
        if (index < Linear) {
            return static_cast<uint64_t>(index);
        }
        const int exponent = (index - Linear) / SubBuckets + SubBucketBits + 1;
        const int sub = (index - Linear) % SubBuckets;
        const int shift = exponent - SubBucketBits;
        const uint64_t low = (uint64_t(1) << exponent) | (uint64_t(sub) << shift);
        return low + (uint64_t(1) << shift) - 1;
    }

    std::array<uint64_t, BucketCount> m_counts {};
    uint64_t m_total = 0;
    uint64_t m_max = 0;
};

} // namespace ferry::bench
