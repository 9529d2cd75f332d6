#pragma once

#include "core/ClientStore.h"

#include <QJsonObject>

namespace ferry::ctl {

/// One entry as a JSON object: id, conversation, sender, seq (null while queued), kind
/// ("message" or "membership"), body (for a membership change, the change in words), state,
/// server_time (ISO 8601, null while queued) and, for failed ones, failure.
QJsonObject messageToJson(const StoredMessage& message);

/// One message as a line of a transcript, the same on every device that holds it:
/// "#3  2026-12-04 10:15:02  alice: hello" (queued ones show "#-" and their state).
QString messageToLine(const StoredMessage& message);

} // namespace ferry::ctl
