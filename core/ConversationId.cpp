#include "core/ConversationId.h"

namespace ferry {

namespace {
    constexpr QStringView DirectPrefix = u"direct:";
}

bool isValidUserName(const QString& name)
{
    if (name.isEmpty() || name.size() > 32) {
        return false;
    }
    for (const QChar c : name) {
        const bool allowed = (c >= u'a' && c <= u'z') || (c >= u'0' && c <= u'9') || c == u'.'
            || c == u'_' || c == u'-';
        if (!allowed) {
            return false;
        }
    }
    return true;
}

QString directConversationId(const QString& userA, const QString& userB)
{
    const bool inOrder = userA <= userB;
    return DirectPrefix + (inOrder ? userA : userB) + u':' + (inOrder ? userB : userA);
}

QStringList directConversationMembers(const QString& conversationId)
{
    if (!conversationId.startsWith(DirectPrefix)) {
        return {};
    }
    const QStringList names = conversationId.mid(DirectPrefix.size()).split(u':');
    if (names.size() != 2 || !isValidUserName(names[0]) || !isValidUserName(names[1])
        || names[0] >= names[1]) {
        return {};
    }
    return names;
}

QString directConversationPeer(const QString& conversationId, const QString& self)
{
    const QStringList members = directConversationMembers(conversationId);
    if (members.size() != 2 || !members.contains(self)) {
        return {};
    }
    return members[0] == self ? members[1] : members[0];
}

} // namespace ferry
