#include "tests/support/EngineTestbed.h"

#include "core/MessageId.h"
#include "ferry.pb.h"
#include "tests/support/Checks.h"
#include "tests/support/ProtocolClient.h"

#include <QDir>
#include <QFileInfo>
#include <QMetaEnum>
#include <QTest>

using namespace Qt::StringLiterals;
using namespace std::chrono_literals;

namespace ferry::test {

namespace {

    const QByteArray Password = QByteArrayLiteral("a password long enough");

    /// A RAM-backed folder where there is one (see the class comment), else the usual one.
    QString memoryBackedTemplate(const QString& name)
    {
        const QFileInfo shm(u"/dev/shm"_s);
        const QString folder
            = shm.isDir() && shm.isWritable() ? shm.absoluteFilePath() : QDir::tempPath();
        return folder + u'/' + name + u"-XXXXXX";
    }

} // namespace

SyncEngine::Settings quickEngineSettings()
{
    SyncEngine::Settings settings;
    settings.backoff.base = 50ms;
    settings.backoff.cap = 500ms;
    settings.heartbeatInterval = 300ms;
    settings.heartbeatTimeout = 600ms;
    settings.watchNetwork = false;
    return settings;
}

SyncEngine::Settings signInEngineSettings()
{
    SyncEngine::Settings settings = quickEngineSettings();
    settings.heartbeatTimeout = 10s;
    return settings;
}

QString stateName(SyncEngine::State state)
{
    return QString::fromLatin1(
        QMetaEnum::fromType<SyncEngine::State>().valueToKey(static_cast<int>(state)));
}

QStringList statesSeen(const QSignalSpy& spy)
{
    QStringList names;
    for (const QList<QVariant>& arguments : spy) {
        names.append(stateName(arguments.at(0).value<SyncEngine::State>()));
    }
    return names;
}

QString describe(const StoredMessage& entry)
{
    return MessageId::fromBytes(entry.messageId)->toString() + u" seq "
        + (entry.seq ? QString::number(*entry.seq) : u"-"_s) + u' ' + entry.sender + u' '
        + messageStateName(entry.state) + u" \"" + QString::fromUtf8(entry.body) + u'"';
}

QByteArray describe(const QList<StoredMessage>& entries)
{
    QStringList lines;
    for (const StoredMessage& entry : entries) {
        lines.append(describe(entry));
    }
    return (lines.isEmpty() ? u"(no entries)"_s : lines.join(u'\n')).toUtf8();
}

QList<StoredMessage> withPrefix(const QList<StoredMessage>& entries, const QByteArray& prefix)
{
    QList<StoredMessage> found;
    for (const StoredMessage& entry : entries) {
        if (entry.body.startsWith(prefix)) {
            found.append(entry);
        }
    }
    return found;
}

EngineTestbed::EngineTestbed(const QString& name, int waitMs)
    : m_waitMs(waitMs)
    , m_root(memoryBackedTemplate(name))
{
}

bool EngineTestbed::start(const QStringList& serverArguments, const QList<SignIn>& devices)
{
    if (!m_root.isValid()) {
        return fail(u"no temporary folder: "_s + m_root.errorString());
    }
    m_server = std::make_unique<ServerProcess>(m_root.filePath(u"server"_s), serverArguments);
    if (!m_server->start()) {
        return fail(m_server->errorString());
    }
    for (const SignIn& device : devices) {
        const Result<Done> signedIn = signIn(device);
        if (!signedIn) {
            return fail(QString::fromUtf8(whyNot(signedIn)));
        }
    }
    return true;
}

bool EngineTestbed::ensureServerRunning()
{
    if (!m_server) {
        return fail(u"the server was never started"_s);
    }
    if (m_server->isRunning() || m_server->restart()) {
        return true;
    }
    return fail(m_server->errorString());
}

bool EngineTestbed::stopServer()
{
    if (!m_server || !m_server->isRunning() || m_server->stop()) {
        return true;
    }
    return fail(m_server->errorString());
}

bool EngineTestbed::fail(const QString& why)
{
    m_error = why;
    return false;
}

Result<Done> EngineTestbed::signIn(const SignIn& entry)
{
    Device device;
    device.profile = m_root.filePath(u"profiles/"_s + entry.device);
    Result<std::unique_ptr<ClientStore>> store = ClientStore::open(device.profile);
    if (!store) {
        return store.error();
    }
    device.store = std::move(store.value());

    SyncEngine engine(device.store.get(), signInEngineSettings());
    engine.setServerUrl(m_server->url());
    QString refusal;
    QObject::connect(&engine, &SyncEngine::stoppedWithError, &engine,
        [&](const QString& kind, const QString& message) { refusal = kind + u": " + message; });
    engine.startWithPassword(entry.user, Password, entry.device, entry.createAccount);
    const bool live = QTest::qWaitFor(
        [&] { return engine.state() == SyncEngine::State::Live || !refusal.isEmpty(); }, m_waitMs);
    engine.stop();
    if (!refusal.isEmpty() || !live) {
        return Error { u"sign-in"_s,
            u"could not sign " + entry.device + u" in as " + entry.user + u": "
                + (refusal.isEmpty() ? u"not live in time"_s : refusal) };
    }
    m_devices[entry.device] = std::move(device);
    return Done {};
}

std::unique_ptr<SyncEngine> EngineTestbed::engineFor(
    Device& device, SyncEngine::Settings settings, const QUrl& url)
{
    auto engine = std::make_unique<SyncEngine>(device.store.get(), settings);
    engine->setServerUrl(url.isValid() ? url : m_server->url());
    return engine;
}

Result<Done> EngineTestbed::syncOnce(Device& device, const QUrl& url)
{
    std::unique_ptr<SyncEngine> engine = engineFor(device, quickEngineSettings(), url);
    engine->start();
    const bool idle = QTest::qWaitFor([&] { return engine->isIdle(); }, m_waitMs);
    engine->stop();
    if (!idle) {
        return Error { u"sync"_s,
            u"the engine of " + device.profile + u" was not idle within "
                + QString::number(m_waitMs) + u" ms; it was " + stateName(engine->state())
                + u", last link error: " + engine->lastLinkError() };
    }
    return Done {};
}

Result<QByteArrayList> EngineTestbed::writeMessages(
    const Device& sender, const QString& conversation, const QByteArray& prefix, int count)
{
    const std::optional<AccountInfo> account = sender.store->account();
    if (!account) {
        return Error { u"write"_s, sender.profile + u" has no account" };
    }
    ProtocolClient client(m_server->url());
    if (!client.isConnected() || client.resume(account->deviceId, account->deviceToken) == 0) {
        return Error { u"write"_s, u"could not resume the sender's device"_s };
    }

    QByteArrayList ids;
    for (int i = 1; i <= count; ++i) {
        ids.append(MessageId::generate().bytes());
        v1::Envelope send;
        send.mutable_send()->set_message_id(toStd(ids.last()));
        send.mutable_send()->set_conversation_id(conversation.toStdString());
        send.mutable_send()->set_body(toStd(prefix + ' ' + QByteArray::number(i)));
        client.send(send);
    }
    for (int i = 0; i < count; ++i) {
        v1::Envelope ack;
        if (!client.nextWhere([](const v1::Envelope& e) { return e.has_send_ack(); }, &ack)
            || toBytes(ack.send_ack().message_id()) != ids.at(i)) {
            return Error { u"write"_s,
                u"message "_s + QString::number(i + 1) + u" was answered with "_s
                    + QString::fromStdString(ack.ShortDebugString()) };
        }
    }
    return ids;
}

Result<QByteArrayList> enqueueMessages(EngineTestbed::Device& device, const QString& conversation,
    const QByteArray& prefix, int count, SyncEngine* live)
{
    QByteArrayList ids;
    for (int i = 1; i <= count; ++i) {
        const Result<StoredMessage> written
            = device.store->enqueue(conversation, prefix + ' ' + QByteArray::number(i));
        if (!written) {
            return written.error();
        }
        ids.append(written->messageId);
        if (live) {
            live->flushOutbox();
        }
    }
    return ids;
}

QList<StoredMessage> historyWithPrefix(
    const EngineTestbed::Device& device, const QString& conversation, const QByteArray& prefix)
{
    const Result<QList<StoredMessage>> history = device.store->history(conversation);
    return history ? withPrefix(history.value(), prefix) : QList<StoredMessage>();
}

void verifyHoldsOnce(const EngineTestbed::Device& device, const QString& conversation,
    const QByteArray& prefix, const QByteArrayList& ids, const QList<MessageState>& states)
{
    const Result<QList<StoredMessage>> history = device.store->history(conversation);
    QVERIFY2(history, whyNot(history).constData());
    const QList<StoredMessage> entries = withPrefix(history.value(), prefix);
    const QByteArray holds = device.profile.toUtf8() + " holds:\n" + describe(entries);
    QVERIFY2(entries.size() == ids.size(), holds.constData());
    for (qsizetype i = 0; i < ids.size(); ++i) {
        const StoredMessage& entry = entries.at(i);
        QVERIFY2(entry.messageId == ids.at(i), holds.constData());
        QVERIFY2(entry.seq.has_value(), holds.constData());
        QVERIFY2(i == 0 || *entry.seq > *entries.at(i - 1).seq, holds.constData());
        QVERIFY2(states.contains(entry.state), holds.constData());
    }
    const Result<QList<SeqRange>> gaps = device.store->missingRanges(conversation);
    QVERIFY2(gaps && gaps->isEmpty(), "the history has gaps");
}

QList<quint64> seqsAt(
    const EngineTestbed::Device& device, const QString& conversation, const QByteArray& prefix)
{
    QList<quint64> seqs;
    for (const StoredMessage& entry : historyWithPrefix(device, conversation, prefix)) {
        seqs.append(entry.seq.value_or(0));
    }
    return seqs;
}

} // namespace ferry::test
