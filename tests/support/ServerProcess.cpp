#include "tests/support/ServerProcess.h"

#include <QDeadlineTimer>
#include <QDir>
#include <QFile>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QProcessEnvironment>
#include <QRegularExpression>
#include <QTest>

namespace ferry::test {

namespace {
    // Bounds for every wait on the server. On an idle machine it is ready in about 50 ms and
    // exits in less; the margin is for a CI runner busy with other tests.
    constexpr int ReadyTimeoutMs = 10'000;
    constexpr int ExitTimeoutMs = 10'000;

    const QByteArray ReadyMarker = QByteArrayLiteral("listening on ");
    const QByteArray MetricsMarker = QByteArrayLiteral("metrics on ");
    constexpr qsizetype LogTailChars = 3000;
}

ServerRun runServerBinary(const QStringList& arguments, int timeoutMs)
{
    ServerRun run;
    QProcess process;
    process.setProgram(QStringLiteral(FERRY_SERVER_BINARY));
    process.setArguments(arguments);
    process.setStandardInputFile(QProcess::nullDevice());
    process.start();
    if (!process.waitForStarted(timeoutMs)) {
        run.err = u"could not run the server: " + process.errorString();
        return run;
    }
    if (!process.waitForFinished(timeoutMs)) {
        process.kill();
        process.waitForFinished(timeoutMs);
        run.timedOut = true;
    }
    run.out = QString::fromUtf8(process.readAllStandardOutput());
    run.err = QString::fromUtf8(process.readAllStandardError());
    if (!run.timedOut && process.exitStatus() == QProcess::NormalExit) {
        run.exitCode = process.exitCode();
    }
    return run;
}

ServerProcess::ServerProcess(QString dataDir, QStringList extraArguments)
    : m_dataDir(std::move(dataDir))
    , m_extraArguments(std::move(extraArguments))
{
    // The log file lives in the data folder, which must exist before the first start.
    QDir().mkpath(m_dataDir);
}

ServerProcess::~ServerProcess()
{
    // A test that failed half-way must not leave a server behind for the next one.
    kill();
}

bool ServerProcess::start(quint16 port)
{
    if (isRunning()) {
        return fail(QStringLiteral("start() called while the server is running"));
    }
    m_url.clear();
    m_process = std::make_unique<QProcess>();
    m_process->setProgram(QStringLiteral(FERRY_SERVER_BINARY));
    m_process->setArguments(
        QStringList { QStringLiteral("--listen"), u"127.0.0.1:" + QString::number(port),
            QStringLiteral("--data"), m_dataDir }
        + m_extraArguments);
    m_process->setStandardErrorFile(
        QDir(m_dataDir).absoluteFilePath(QStringLiteral("server.log")), QIODevice::Append);
    m_process->setReadChannel(QProcess::StandardOutput);
    if (!m_loggingRules.isEmpty()) {
        QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
        environment.insert(QStringLiteral("QT_LOGGING_RULES"), m_loggingRules);
        m_process->setProcessEnvironment(environment);
    }
    m_process->start();
    if (!m_process->waitForStarted(ReadyTimeoutMs)) {
        return fail(u"could not run " + m_process->program() + u": " + m_process->errorString());
    }

    // The server prints one line once it accepts connections; waiting for it, rather than for
    // some fixed time, is both faster and never too early.
    QDeadlineTimer deadline(ReadyTimeoutMs);
    while (!deadline.hasExpired()) {
        if (m_process->canReadLine()) {
            const QByteArray line = m_process->readLine().trimmed();
            const qsizetype metrics = line.indexOf(MetricsMarker);
            if (metrics >= 0) {
                m_metricsUrl = QUrl(QString::fromUtf8(line.mid(metrics + MetricsMarker.size())));
                continue;
            }
            const qsizetype marker = line.indexOf(ReadyMarker);
            if (marker < 0) {
                continue;
            }
            m_url = QUrl(QString::fromUtf8(line.mid(marker + ReadyMarker.size())));
            if (!m_url.isValid() || m_url.port(0) == 0) {
                return fail(u"the server announced an address that is not ws://host:port: "
                    + QString::fromUtf8(line));
            }
            return true;
        }
        if (m_process->state() == QProcess::NotRunning) {
            return fail(u"the server exited with code " + QString::number(m_process->exitCode())
                + u" before it listened");
        }
        m_process->waitForReadyRead(static_cast<int>(deadline.remainingTime()));
    }
    kill();
    return fail(u"the server did not say it was listening within "
        + QString::number(ReadyTimeoutMs / 1000) + u" s");
}

qint64 ServerProcess::pid() const
{
    return isRunning() ? m_process->processId() : 0;
}

bool ServerProcess::restart()
{
    const quint16 previousPort = port();
    if (previousPort != 0 && start(previousPort)) {
        return true;
    }
    // Another test on this machine may have been given the port in the meantime. The clients
    // in these tests are told the server's address on every run, so a new port is no loss.
    return start(0);
}

bool ServerProcess::stop()
{
    if (!isRunning()) {
        return fail(QStringLiteral("stop() called while the server is not running"));
    }
    requestStop();
    return waitForExit();
}

void ServerProcess::requestStop()
{
    if (isRunning()) {
        m_process->terminate();
    }
}

bool ServerProcess::waitForExit()
{
    if (!m_process) {
        return fail(QStringLiteral("waitForExit() called before the server was started"));
    }
    if (isRunning() && !m_process->waitForFinished(ExitTimeoutMs)) {
        kill();
        return fail(u"the server did not exit within " + QString::number(ExitTimeoutMs / 1000)
            + u" s of SIGTERM");
    }
    if (m_process->exitStatus() != QProcess::NormalExit) {
        return fail(QStringLiteral("the server crashed on SIGTERM instead of exiting"));
    }
    if (m_process->exitCode() != 0) {
        return fail(u"the server exited with code " + QString::number(m_process->exitCode())
            + u" on SIGTERM, not 0");
    }
    return true;
}

void ServerProcess::kill()
{
    if (!isRunning()) {
        return;
    }
    m_process->kill();
    m_process->waitForFinished(ExitTimeoutMs);
}

bool ServerProcess::waitForStopped(int timeoutMs)
{
    if (!m_process) {
        return fail(QStringLiteral("waitForStopped() called before the server was started"));
    }
    if (!QTest::qWaitFor(
            [this] { return m_process->state() == QProcess::NotRunning; }, timeoutMs)) {
        kill();
        return fail(u"the server did not exit within " + QString::number(timeoutMs) + u" ms");
    }
    if (m_process->exitStatus() != QProcess::NormalExit || m_process->exitCode() != 0) {
        return fail(u"the server ended with status " + QString::number(m_process->exitStatus())
            + u" and code " + QString::number(m_process->exitCode()) + u", not a clean 0");
    }
    return true;
}

Result<double> ServerProcess::metric(const QString& name) const
{
    if (!m_metricsUrl.isValid()) {
        return Error { QStringLiteral("metrics"), QStringLiteral("the server named no /metrics") };
    }
    QNetworkAccessManager network;
    std::unique_ptr<QNetworkReply> reply(network.get(QNetworkRequest(m_metricsUrl)));
    if (!QTest::qWaitFor([&] { return reply->isFinished(); }, ExitTimeoutMs)) {
        return Error { QStringLiteral("metrics"), QStringLiteral("/metrics did not answer") };
    }
    if (reply->error() != QNetworkReply::NoError) {
        return Error { QStringLiteral("metrics"), reply->errorString() };
    }
    // One sample a line, `name value`; a labelled one (`name{code="9"} value`) is not looked up.
    const QString text = QString::fromUtf8(reply->readAll());
    const QRegularExpression sample(
        u'^' + QRegularExpression::escape(name) + QStringLiteral(" ([0-9.eE+-]+)$"),
        QRegularExpression::MultilineOption);
    const QRegularExpressionMatch match = sample.match(text);
    if (!match.hasMatch()) {
        return Error { QStringLiteral("metrics"), u"/metrics has no " + name };
    }
    return match.captured(1).toDouble();
}

bool ServerProcess::isRunning() const
{
    return m_process && m_process->state() != QProcess::NotRunning;
}

QString ServerProcess::log() const
{
    QFile file(QDir(m_dataDir).absoluteFilePath(QStringLiteral("server.log")));
    if (!file.open(QIODevice::ReadOnly)) {
        return {};
    }
    return QString::fromUtf8(file.readAll());
}

bool ServerProcess::fail(const QString& what)
{
    m_error = what + u"\n--- end of server.log ---\n" + log().right(LogTailChars);
    return false;
}

} // namespace ferry::test
