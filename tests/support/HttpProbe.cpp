#include "tests/support/HttpProbe.h"

#include <QNetworkAccessManager>
#include <QNetworkProxy>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QSignalSpy>

#include <memory>

namespace ferry::test {

HttpAnswer httpGet(const QUrl& url, int timeoutMs)
{
    HttpAnswer answer;
    // The tests talk to a server on loopback only; a proxy from the environment must not
    // stand between them.
    QNetworkAccessManager network;
    network.setProxy(QNetworkProxy::NoProxy);
    QNetworkRequest request(url);
    request.setTransferTimeout(timeoutMs);
    std::unique_ptr<QNetworkReply> reply(network.get(request));
    QSignalSpy finished(reply.get(), &QNetworkReply::finished);
    if (!reply->isFinished() && !finished.wait(timeoutMs)) {
        answer.error = u"no answer from " + url.toString() + u" within "
            + QString::number(timeoutMs) + u" ms";
        return answer;
    }
    answer.status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    answer.body = reply->readAll();
    if (answer.status == 0) {
        answer.error = reply->errorString();
    }
    return answer;
}

std::optional<double> metricValue(const QByteArray& exposition, const QString& series)
{
    const QByteArray prefix = series.toUtf8() + ' ';
    for (const QByteArray& line : exposition.split('\n')) {
        if (line.startsWith(prefix)) {
            bool ok = false;
            const double value = line.mid(prefix.size()).trimmed().toDouble(&ok);
            if (ok) {
                return value;
            }
        }
    }
    return std::nullopt;
}

std::optional<double> scrapeMetric(const QUrl& metricsUrl, const QString& series)
{
    const HttpAnswer answer = httpGet(metricsUrl);
    if (answer.status != 200) {
        return std::nullopt;
    }
    return metricValue(answer.body, series).value_or(0.0);
}

} // namespace ferry::test
