#pragma once

#include <QByteArray>
#include <QString>
#include <QUrl>

#include <optional>

namespace ferry::test {

/// What one HTTP GET answered.
struct HttpAnswer {
    int status = 0; ///< 0 when no answer came
    QByteArray body;
    QString error; ///< why there was no answer, empty otherwise
};

/// GETs `url` (the server's /healthz or /metrics on 127.0.0.1), waiting at most `timeoutMs`.
HttpAnswer httpGet(const QUrl& url, int timeoutMs = 10'000);

/// The value of one series in a Prometheus text exposition, e.g. `ferry_frames_in_total` or
/// `ferry_closes_total{code="4001"}`; nothing when the series is absent.
std::optional<double> metricValue(const QByteArray& exposition, const QString& series);

/// Scrapes /metrics and reads one series; 0 when the series is absent (a counter that has not
/// counted yet is not printed), nothing when the scrape failed.
std::optional<double> scrapeMetric(const QUrl& metricsUrl, const QString& series);

} // namespace ferry::test
