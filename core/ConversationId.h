#pragma once

#include <QString>
#include <QStringList>

namespace ferry {

/// User names are the stable, public handle of an account: 1 to 32 characters from a-z, 0-9,
/// '.', '_' and '-'. Keeping ':' out of them lets conversation ids embed names unambiguously.
bool isValidUserName(const QString& name);

/// A direct conversation's id is derived from its two members' names, so that a client can write
/// to someone it has never talked to while offline, and both sides arrive at the same id:
/// "direct:<first>:<second>" with the names in ascending order.
QString directConversationId(const QString& userA, const QString& userB);

/// The two member names of a direct conversation id, or an empty list when the id is not one.
QStringList directConversationMembers(const QString& conversationId);

/// The member of a direct conversation that is not `self`, or an empty string.
QString directConversationPeer(const QString& conversationId, const QString& self);

} // namespace ferry
