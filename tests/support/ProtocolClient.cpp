#include "tests/support/ProtocolClient.h"

#include "core/FrameCodec.h"

#include <QDeadlineTimer>
#include <QSignalSpy>
#include <QTest>
#include <QUuid>

#include "ferry.pb.h"

namespace ferry::test {

std::string toStd(const QByteArray& value)
{
    return std::string(value.constData(), static_cast<size_t>(value.size()));
}

QByteArray toBytes(const std::string& value)
{
    return QByteArray(value.data(), static_cast<qsizetype>(value.size()));
}

QString directId(const QString& a, const QString& b)
{
    return a < b ? u"direct:" + a + u':' + b : u"direct:" + b + u':' + a;
}

QString newGroupId() { return u"group:" + QUuid::createUuid().toString(QUuid::WithoutBraces); }

ProtocolClient::ProtocolClient(const QUrl& url)
{
    QObject::connect(&m_socket, &QWebSocket::binaryMessageReceived, &m_socket,
        [this](const QByteArray& frame) { m_received.append(frame); });
    QSignalSpy connected(&m_socket, &QWebSocket::connected);
    m_socket.open(url);
    m_connected = connected.wait(WaitMs);
}

quint64 ProtocolClient::send(v1::Envelope envelope)
{
    envelope.set_request_id(m_nextRequestId++);
    m_socket.sendBinaryMessage(encodeFrame(envelope));
    return envelope.request_id();
}

bool ProtocolClient::next(v1::Envelope* envelope, int timeoutMs)
{
    QDeadlineTimer deadline(timeoutMs);
    while (m_received.isEmpty() && !deadline.hasExpired()
        && m_socket.state() != QAbstractSocket::UnconnectedState) {
        QTest::qWait(5);
    }
    if (m_received.isEmpty()) {
        return false;
    }
    return decodeFrame(m_received.takeFirst(), envelope);
}

bool ProtocolClient::reply(quint64 requestId, v1::Envelope* envelope, int timeoutMs)
{
    QDeadlineTimer deadline(timeoutMs);
    for (;;) {
        for (qsizetype i = 0; i < m_received.size(); ++i) {
            v1::Envelope candidate;
            if (decodeFrame(m_received[i], &candidate) && candidate.request_id() == requestId) {
                m_received.removeAt(i);
                *envelope = candidate;
                return true;
            }
        }
        if (deadline.hasExpired() || m_socket.state() == QAbstractSocket::UnconnectedState) {
            return false;
        }
        QTest::qWait(5);
    }
}

bool ProtocolClient::nextWhere(
    const std::function<bool(const v1::Envelope&)>& wanted, v1::Envelope* envelope, int timeoutMs)
{
    QDeadlineTimer deadline(timeoutMs);
    for (;;) {
        for (qsizetype i = 0; i < m_received.size(); ++i) {
            v1::Envelope candidate;
            if (decodeFrame(m_received[i], &candidate) && wanted(candidate)) {
                m_received.removeAt(i);
                *envelope = candidate;
                return true;
            }
        }
        if (deadline.hasExpired() || m_socket.state() == QAbstractSocket::UnconnectedState) {
            return false;
        }
        QTest::qWait(5);
    }
}

bool ProtocolClient::staysQuiet(int ms)
{
    QTest::qWait(ms);
    return m_received.isEmpty();
}

QList<v1::Envelope> ProtocolClient::collect(int ms)
{
    QTest::qWait(ms);
    QList<v1::Envelope> envelopes;
    for (const QByteArray& frame : std::as_const(m_received)) {
        v1::Envelope envelope;
        if (decodeFrame(frame, &envelope)) {
            envelopes.append(envelope);
        }
    }
    m_received.clear();
    return envelopes;
}

bool ProtocolClient::syncAll(QList<v1::Event>* events, quint64 afterOffset, quint32 maxEvents)
{
    for (;;) {
        v1::Envelope sync;
        sync.mutable_sync()->set_after_offset(afterOffset);
        sync.mutable_sync()->set_max_events(maxEvents);
        v1::Envelope batch;
        if (!reply(send(sync), &batch) || !batch.has_events()) {
            return false;
        }
        for (const v1::Event& event : batch.events().events()) {
            events->append(event);
        }
        afterOffset = batch.events().last_offset();
        if (batch.events().caught_up()) {
            return true;
        }
    }
}

bool ProtocolClient::waitClosed(int timeoutMs)
{
    if (m_socket.state() == QAbstractSocket::UnconnectedState) {
        return true;
    }
    QSignalSpy disconnected(&m_socket, &QWebSocket::disconnected);
    return disconnected.wait(timeoutMs);
}

bool ProtocolClient::hello(quint32 version)
{
    v1::Envelope envelope;
    envelope.mutable_hello()->set_protocol_version(version);
    v1::Envelope answer;
    return reply(send(envelope), &answer) && answer.has_welcome();
}

quint64 ProtocolClient::authenticate(v1::Envelope envelope)
{
    v1::Envelope answer;
    if (!reply(send(envelope), &answer) || !answer.has_authenticated()) {
        return 0;
    }
    if (!answer.authenticated().device_token().empty()) {
        m_deviceToken = toBytes(answer.authenticated().device_token());
    }
    if (!answer.authenticated().session_token().empty()) {
        m_sessionToken = toBytes(answer.authenticated().session_token());
    }
    m_deviceId = answer.authenticated().device_id();
    return m_deviceId;
}

quint64 ProtocolClient::registerUser(const QString& name, const QString& password)
{
    if (!hello()) {
        return 0;
    }
    v1::Envelope envelope;
    envelope.mutable_register_()->set_user_name(name.toStdString());
    envelope.mutable_register_()->set_password(password.toStdString());
    envelope.mutable_register_()->set_device_name("test");
    return authenticate(envelope);
}

quint64 ProtocolClient::login(const QString& name, const QString& password)
{
    if (!hello()) {
        return 0;
    }
    v1::Envelope envelope;
    envelope.mutable_login()->set_user_name(name.toStdString());
    envelope.mutable_login()->set_password(password.toStdString());
    envelope.mutable_login()->set_device_name("test");
    return authenticate(envelope);
}

quint64 ProtocolClient::resume(quint64 deviceId, const QByteArray& deviceToken)
{
    if (!hello()) {
        return 0;
    }
    v1::Envelope envelope;
    envelope.mutable_resume()->set_device_id(deviceId);
    envelope.mutable_resume()->set_device_token(toStd(deviceToken));
    return authenticate(envelope);
}

v1::Envelope ProtocolClient::request(v1::Envelope envelope)
{
    v1::Envelope answer;
    reply(send(envelope), &answer);
    return answer;
}

v1::Envelope ProtocolClient::sendMessage(
    const QString& conversation, const QByteArray& body, const QByteArray& id)
{
    v1::Envelope envelope;
    envelope.mutable_send()->set_message_id(toStd(id));
    envelope.mutable_send()->set_conversation_id(conversation.toStdString());
    envelope.mutable_send()->set_body(toStd(body));
    return request(envelope);
}

} // namespace ferry::test
