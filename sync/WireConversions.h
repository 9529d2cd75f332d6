#pragma once

#include "core/ClientStore.h"

// Conversions from wire events to what the store applies. Internal to the sync engine; the
// generated protocol header stays out of this one.
namespace ferry::v1 {
class MessageEvent;
class MembershipEvent;
}

namespace ferry {

IncomingMessage incomingMessage(quint64 offset, const v1::MessageEvent& message);
IncomingMessage incomingMembership(quint64 offset, const v1::MembershipEvent& change);

} // namespace ferry
