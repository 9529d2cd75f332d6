#pragma once

#include "core/MessageId.h"

#include <QByteArray>
#include <QList>
#include <QUrl>
#include <QWebSocket>

#include <functional>
#include <string>

namespace ferry::v1 {
class Envelope;
class Event;
}

namespace ferry::test {

/// One raw protocol connection to a server, for tests that check the server frame by frame:
/// it sends hand-made envelopes (request ids filled in) and hands back what the server answers,
/// in order. Every wait is bounded.
class ProtocolClient {
public:
    static constexpr int WaitMs = 10'000;

    explicit ProtocolClient(const QUrl& url);

    bool isConnected() const { return m_connected; }
    QWebSocket& socket() { return m_socket; }

    /// Sends an envelope with the next request id, which it returns.
    quint64 send(v1::Envelope envelope);

    /// The next frame from the server, decoded; false if none came in time or it did not decode.
    bool next(v1::Envelope* envelope, int timeoutMs = WaitMs);

    /// The next frame that answers `requestId`; frames pushed meanwhile (request id 0) are kept
    /// for next() in their order.
    bool reply(quint64 requestId, v1::Envelope* envelope, int timeoutMs = WaitMs);

    /// The next frame that `wanted` accepts; the frames it passes over stay queued for next()
    /// and reply() in their order.
    bool nextWhere(const std::function<bool(const v1::Envelope&)>& wanted, v1::Envelope* envelope,
        int timeoutMs = WaitMs);

    /// True when nothing arrives within `ms`.
    bool staysQuiet(int ms);

    /// Waits `ms`, then hands over every frame received and not yet taken, in order.
    QList<v1::Envelope> collect(int ms);

    /// Pulls this user's event log after `afterOffset` with sync requests of `maxEvents` until
    /// a batch is caught up (the connection is then live). False if a batch did not come.
    bool syncAll(QList<v1::Event>* events, quint64 afterOffset = 0, quint32 maxEvents = 0);

    /// Waits for the socket to close; true once it has.
    bool waitClosed(int timeoutMs = WaitMs);

    /// Sends Hello; true on Welcome.
    bool hello(quint32 version = 1);

    /// Hello, then Register with the given name; returns the new device id, 0 on failure. The
    /// device and session tokens are kept for deviceToken() and sessionToken().
    quint64 registerUser(const QString& name, const QString& password = defaultPassword());

    /// Hello, then Login as a new device; returns its id, 0 on failure.
    quint64 login(const QString& name, const QString& password = defaultPassword());

    /// Hello, then Resume as an existing device; returns its id, 0 on failure.
    quint64 resume(quint64 deviceId, const QByteArray& deviceToken);

    /// Sends a request and waits for its answer; an empty envelope if none came.
    v1::Envelope request(v1::Envelope envelope);

    /// Sends a message and returns the server's answer.
    v1::Envelope sendMessage(const QString& conversation, const QByteArray& body,
        const QByteArray& id = MessageId::generate().bytes());

    QByteArray deviceToken() const { return m_deviceToken; }
    QByteArray sessionToken() const { return m_sessionToken; }
    quint64 deviceId() const { return m_deviceId; }

    static QString defaultPassword() { return QStringLiteral("a-good-password"); }

private:
    quint64 authenticate(v1::Envelope envelope);

    QWebSocket m_socket;
    QList<QByteArray> m_received;
    quint64 m_nextRequestId = 1;
    bool m_connected = false;
    QByteArray m_deviceToken;
    QByteArray m_sessionToken;
    quint64 m_deviceId = 0;
};

/// Protobuf's bytes fields as std::string, and back.
std::string toStd(const QByteArray& value);
QByteArray toBytes(const std::string& value);

/// The id of the direct conversation between two users.
QString directId(const QString& a, const QString& b);

/// A new group's id, as a client makes one: "group:" and a random UUID.
QString newGroupId();

} // namespace ferry::test
