#pragma once

#include "core/ClientStore.h"

// Conversions from wire events to what the store applies. Internal to the sync engine; the
// generated protocol header stays out of this one.
namespace ferry::v1 {
class EventBatch;
class HistoryPage;
class MessageEvent;
class MembershipEvent;
}

namespace ferry {

IncomingMessage incomingMessage(quint64 offset, const v1::MessageEvent& message);
IncomingMessage incomingMembership(quint64 offset, const v1::MembershipEvent& change);

/// The entries and receipts of one batch, in the batch's order.
struct IncomingEvents {
    QList<IncomingMessage> entries;
    QList<IncomingReceipt> receipts;
};

/// Converts every event of a batch; an event kind this version does not know is skipped (its
/// offset still counts, through the batch's last_offset).
IncomingEvents incomingEvents(const v1::EventBatch& batch);

/// The messages and membership changes of a history page; they carry no offset.
QList<IncomingMessage> incomingHistory(const v1::HistoryPage& page);

} // namespace ferry
