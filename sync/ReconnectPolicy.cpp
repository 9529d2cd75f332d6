#include "sync/ReconnectPolicy.h"

#include <QRandomGenerator>

#include <algorithm>
#include <cmath>

namespace ferry {

ReconnectPolicy::ReconnectPolicy(Settings settings, RandomSource random)
    : m_settings(settings)
    , m_random(std::move(random))
{
    if (!m_random) {
        m_random = [] { return QRandomGenerator::global()->generateDouble(); };
    }
}

std::chrono::milliseconds ReconnectPolicy::ceiling(int failures) const
{
    // Computed in floating point and clamped before converting, so a long outage cannot
    // overflow the exponent into a negative or zero delay.
    const double raw = static_cast<double>(m_settings.base.count())
        * std::pow(m_settings.factor, static_cast<double>(std::max(failures, 0)));
    const double capped = std::min(raw, static_cast<double>(m_settings.cap.count()));
    return std::chrono::milliseconds(static_cast<long long>(capped));
}

std::chrono::milliseconds ReconnectPolicy::nextDelay()
{
    const auto upper = ceiling(m_failures);
    ++m_failures;
    const double fraction = std::clamp(m_random(), 0.0, 1.0);
    return std::chrono::milliseconds(
        static_cast<long long>(fraction * static_cast<double>(upper.count())));
}

} // namespace ferry
