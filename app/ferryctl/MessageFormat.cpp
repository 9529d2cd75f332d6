#include "app/ferryctl/MessageFormat.h"

#include "core/MessageId.h"

#include <QDateTime>

namespace ferry::ctl {

namespace {
    QString formatTime(qint64 unixMillis)
    {
        return QDateTime::fromMSecsSinceEpoch(unixMillis, Qt::UTC).toString(Qt::ISODateWithMs);
    }
}

QJsonObject messageToJson(const StoredMessage& message)
{
    QJsonObject object;
    object[u"id"] = MessageId::fromBytes(message.messageId)->toString();
    object[u"conversation"] = message.conversationId;
    object[u"sender"] = message.sender;
    object[u"seq"] = message.seq ? QJsonValue(static_cast<qint64>(*message.seq)) : QJsonValue();
    object[u"kind"] = message.kind == EntryKind::Membership ? QStringLiteral("membership")
                                                            : QStringLiteral("message");
    object[u"body"] = describeEntry(message);
    object[u"state"] = messageStateName(message.state);
    object[u"server_time"]
        = message.serverTimeMs ? QJsonValue(formatTime(*message.serverTimeMs)) : QJsonValue();
    if (message.state == MessageState::Failed) {
        object[u"failure"] = message.failureReason;
    }
    return object;
}

QString messageToLine(const StoredMessage& message)
{
    const QString seq = message.seq ? QString::number(*message.seq) : QStringLiteral("-");
    const QString time = message.serverTimeMs
        ? QDateTime::fromMSecsSinceEpoch(*message.serverTimeMs, Qt::UTC)
              .toString(QStringLiteral("yyyy-MM-dd hh:mm:ss"))
        : QStringLiteral("(not yet sent)     ");
    QString line = u'#' + seq.leftJustified(4) + u' ' + time + u"  "
        + (message.kind == EntryKind::Membership
                ? QString(u"* " + describeEntry(message))
                : QString(message.sender + u": " + describeEntry(message)));
    if (message.state == MessageState::Queued || message.state == MessageState::Failed) {
        line += u"  [" + messageStateName(message.state)
            + (message.failureReason.isEmpty() ? QString() : u": " + message.failureReason)
            + u']';
    }
    return line;
}

} // namespace ferry::ctl
