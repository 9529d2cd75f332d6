#pragma once

#include <QByteArray>
#include <QList>

namespace ferry::v1 {
class MessageEvent;
}

namespace ferry::server {

/// An event a group commit has just appended to one user's log: its offset in that log, and the
/// message it carries, serialized once as a v1::MessageEvent for all of its recipients.
struct CommittedEvent {
    quint64 offset = 0;
    QByteArray messageEvent; ///< serialized v1::MessageEvent, shared by every recipient
    qsizetype bodyBytes = 0; ///< the message body's size, for the batch's byte budget
};

/// The serialized form of a message event, made once per message.
QByteArray serializeMessageEvent(const v1::MessageEvent& message);

/// The frame of a pushed EventBatch (request id 0) holding `count` events from `first`, with
/// last_offset the last one's offset. It is byte for byte what encodeFrame() makes of the same
/// Envelope, but copies each recipient's message bytes instead of encoding every field again:
/// a group message reaches a thousand members, and encoding it a thousand times was most of
/// the cost of pushing it.
QByteArray encodeEventPush(const CommittedEvent* first, qsizetype count, bool caughtUp);

} // namespace ferry::server
