#include "sync/WireConversions.h"

#include "core/ProtocolText.h"

#include <QCryptographicHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#include "ferry.pb.h"

namespace ferry {

IncomingMessage incomingMessage(quint64 offset, const v1::MessageEvent& message)
{
    IncomingMessage entry;
    entry.offset = offset;
    entry.messageId = toBytes(message.message_id());
    entry.conversationId = toQString(message.conversation_id());
    entry.seq = message.seq();
    entry.sender = toQString(message.sender());
    entry.body = toBytes(message.body());
    entry.serverTimeMs = message.server_time_ms();
    return entry;
}

IncomingMessage incomingMembership(quint64 offset, const v1::MembershipEvent& change)
{
    // Stored as the server describes it; ClientStore::describeEntry turns it into words.
    QJsonObject body;
    static const char* const Actions[] = { "", "created", "added", "removed", "left" };
    const int action = static_cast<int>(change.action());
    body[u"action"] = QString::fromLatin1(action >= 1 && action <= 4 ? Actions[action] : "");
    body[u"actor"] = toQString(change.actor());
    QStringList subjects;
    for (const std::string& subject : change.subjects()) {
        subjects.append(toQString(subject));
    }
    body[u"subjects"] = QJsonArray::fromStringList(subjects);
    body[u"title"] = toQString(change.title());

    IncomingMessage entry;
    entry.offset = offset;
    entry.conversationId = toQString(change.conversation_id());
    entry.seq = change.seq();
    entry.sender = toQString(change.actor());
    entry.body = QJsonDocument(body).toJson(QJsonDocument::Compact);
    entry.serverTimeMs = change.server_time_ms();
    entry.kind = EntryKind::Membership;
    entry.title = toQString(change.title());
    for (const std::string& member : change.members()) {
        entry.members.append(toQString(member));
    }
    // Membership changes have no client-chosen id; one derived from the conversation and
    // seq is the same on every device, which is what deduplication needs.
    entry.messageId = QCryptographicHash::hash(
        (entry.conversationId + u'#' + QString::number(entry.seq)).toUtf8(),
        QCryptographicHash::Md5);
    return entry;
}

IncomingEvents incomingEvents(const v1::EventBatch& batch)
{
    IncomingEvents incoming;
    incoming.entries.reserve(batch.events_size());
    for (const v1::Event& event : batch.events()) {
        if (event.has_message()) {
            incoming.entries.append(incomingMessage(event.offset(), event.message()));
        } else if (event.has_membership()) {
            incoming.entries.append(incomingMembership(event.offset(), event.membership()));
        } else if (event.has_receipt()) {
            const v1::ReceiptEvent& receipt = event.receipt();
            incoming.receipts.append(IncomingReceipt { event.offset(),
                toQString(receipt.conversation_id()), toQString(receipt.user_name()),
                receipt.kind() == v1::READ ? ReceiptKind::Read : ReceiptKind::Delivered,
                receipt.up_to_seq() });
        }
    }
    return incoming;
}

QList<IncomingMessage> incomingHistory(const v1::HistoryPage& page)
{
    QList<IncomingMessage> entries;
    for (const v1::MessageEvent& message : page.messages()) {
        entries.append(incomingMessage(0, message));
    }
    for (const v1::MembershipEvent& change : page.memberships()) {
        entries.append(incomingMembership(0, change));
    }
    return entries;
}

} // namespace ferry
