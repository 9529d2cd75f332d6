#include "tests/support/Ctl.h"

#include <QDir>
#include <QJsonDocument>
#include <QJsonValue>
#include <QProcessEnvironment>

namespace ferry::test {

namespace {
    // A sync allowed S seconds may take a moment longer to start and to exit.
    constexpr int SyncGraceMs = 10'000;

    QStringList splitLines(const QString& text) { return text.split(u'\n', Qt::SkipEmptyParts); }
}

QString CtlRun::describe() const
{
    QString text = u"`ferryctl " + command + u"` ";
    text += timedOut ? QStringLiteral("was killed after its time limit")
                     : u"exited with " + QString::number(exitCode);
    text += u"; stderr: " + (err.trimmed().isEmpty() ? QStringLiteral("(empty)") : err.trimmed());
    if (!out.trimmed().isEmpty()) {
        text += u"; stdout: " + out.trimmed();
    }
    return text;
}

Ctl::Ctl(QString profileDir, QUrl serverUrl)
    : m_profileDir(std::move(profileDir))
    , m_serverUrl(std::move(serverUrl))
{
}

QStringList Ctl::fullArguments(const QStringList& arguments) const
{
    QStringList full { QStringLiteral("--profile"), m_profileDir };
    if (m_serverUrl.isValid()) {
        full << QStringLiteral("--server") << m_serverUrl.toString();
    }
    return full + m_extraArguments + arguments;
}

std::unique_ptr<QProcess> Ctl::start(const QStringList& arguments) const
{
    auto process = std::make_unique<QProcess>();
    QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
    environment.insert(QStringLiteral("FERRY_PASSWORD"), m_password);
    // A profile named in the test's own environment must not stand in for --profile.
    environment.remove(QStringLiteral("FERRY_PROFILE"));
    process->setProcessEnvironment(environment);
    process->setProgram(QStringLiteral(FERRYCTL_BINARY));
    process->setArguments(fullArguments(arguments));
    // Nothing is ever typed: a ferryctl that wants a password it was not given must fail, not
    // wait for a terminal.
    process->setStandardInputFile(QProcess::nullDevice());
    process->start();
    return process;
}

CtlRun Ctl::run(const QStringList& arguments, int timeoutMs, WaitForExit waitForExit) const
{
    CtlRun result;
    result.command = u"--profile …/" + QDir(m_profileDir).dirName() + u' ' + arguments.join(u' ');
    std::unique_ptr<QProcess> process = start(arguments);
    if (!process->waitForStarted(timeoutMs)) {
        result.err = u"could not start ferryctl: " + process->errorString();
        return result;
    }
    const bool ended
        = waitForExit ? waitForExit(*process, timeoutMs) : process->waitForFinished(timeoutMs);
    if (!ended) {
        process->kill();
        process->waitForFinished(timeoutMs);
        result.timedOut = true;
    }
    result.out = QString::fromUtf8(process->readAllStandardOutput());
    result.err = QString::fromUtf8(process->readAllStandardError());
    if (!result.timedOut && process->exitStatus() == QProcess::NormalExit) {
        result.exitCode = process->exitCode();
    }
    return result;
}

CtlRun Ctl::registerUser(const QString& user, const QString& deviceName) const
{
    return run({ QStringLiteral("register"), user, QStringLiteral("--device-name"), deviceName });
}

CtlRun Ctl::login(const QString& user, const QString& deviceName) const
{
    return run({ QStringLiteral("login"), user, QStringLiteral("--device-name"), deviceName });
}

CtlRun Ctl::send(const QString& target, const QString& text) const
{
    return run({ QStringLiteral("send"), target, text });
}

CtlRun Ctl::sync(int timeoutSeconds) const
{
    return run(
        { QStringLiteral("sync"), QStringLiteral("--timeout"), QString::number(timeoutSeconds) },
        timeoutSeconds * 1000 + SyncGraceMs);
}

Result<QList<QJsonObject>> Ctl::history(const QString& target) const
{
    const CtlRun history = run({ QStringLiteral("history"), target, QStringLiteral("--json") });
    if (!history.ok()) {
        return Error { QStringLiteral("ferryctl"), history.describe() };
    }
    QList<QJsonObject> messages;
    for (const QString& line : splitLines(history.out)) {
        QJsonParseError parseError;
        const QJsonDocument document = QJsonDocument::fromJson(line.toUtf8(), &parseError);
        if (!document.isObject()) {
            return Error { QStringLiteral("json"),
                u"history printed a line that is not a JSON object (" + parseError.errorString()
                    + u"): " + line };
        }
        messages.append(document.object());
    }
    return messages;
}

Result<QJsonObject> Ctl::status() const
{
    const CtlRun status = run({ QStringLiteral("status"), QStringLiteral("--json") });
    if (!status.ok()) {
        return Error { QStringLiteral("ferryctl"), status.describe() };
    }
    const QJsonDocument document = QJsonDocument::fromJson(status.out.trimmed().toUtf8());
    if (!document.isObject()) {
        return Error { QStringLiteral("json"), u"status printed no JSON object: " + status.out };
    }
    return document.object();
}

QStringList fieldOf(const QList<QJsonObject>& messages, const QString& key)
{
    QStringList values;
    for (const QJsonObject& message : messages) {
        values.append(message.value(key).toString());
    }
    return values;
}

QString describeHistory(const QList<QJsonObject>& messages)
{
    if (messages.isEmpty()) {
        return QStringLiteral("(no messages)");
    }
    QStringList lines;
    for (const QJsonObject& message : messages) {
        lines.append(QString::fromUtf8(QJsonDocument(message).toJson(QJsonDocument::Compact)));
    }
    return lines.join(u'\n');
}

QList<qint64> seqsOf(const QList<QJsonObject>& messages)
{
    QList<qint64> seqs;
    for (const QJsonObject& message : messages) {
        const QJsonValue seq = message.value(QStringLiteral("seq"));
        seqs.append(seq.isNull() ? -1 : seq.toInteger());
    }
    return seqs;
}

} // namespace ferry::test
