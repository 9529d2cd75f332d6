#include "tests/support/Requests.h"

namespace ferry::test {

v1::Envelope receiptRequest(const QString& conversation, v1::ReceiptKind kind, quint64 upToSeq)
{
    v1::Envelope envelope;
    envelope.mutable_receipt()->set_conversation_id(conversation.toStdString());
    envelope.mutable_receipt()->set_kind(kind);
    envelope.mutable_receipt()->set_up_to_seq(upToSeq);
    return envelope;
}

v1::Envelope historyRequest(const QString& conversation, quint64 beforeSeq, quint32 limit)
{
    v1::Envelope envelope;
    envelope.mutable_history()->set_conversation_id(conversation.toStdString());
    envelope.mutable_history()->set_before_seq(beforeSeq);
    envelope.mutable_history()->set_limit(limit);
    return envelope;
}

v1::Envelope typingRequest(const QString& conversation, bool active)
{
    v1::Envelope envelope;
    envelope.mutable_typing()->set_conversation_id(conversation.toStdString());
    envelope.mutable_typing()->set_active(active);
    return envelope;
}

v1::Envelope renameDeviceRequest(quint64 deviceId, const QString& name)
{
    v1::Envelope envelope;
    envelope.mutable_rename_device()->set_device_id(deviceId);
    envelope.mutable_rename_device()->set_name(name.toStdString());
    return envelope;
}

v1::Envelope removeDeviceRequest(quint64 deviceId)
{
    v1::Envelope envelope;
    envelope.mutable_remove_device()->set_device_id(deviceId);
    return envelope;
}

v1::Envelope createGroupRequest(
    const QString& conversation, const QStringList& members, const QString& title)
{
    v1::Envelope envelope;
    envelope.mutable_create_group()->set_conversation_id(conversation.toStdString());
    envelope.mutable_create_group()->set_title(title.toStdString());
    for (const QString& member : members) {
        envelope.mutable_create_group()->add_members(member.toStdString());
    }
    return envelope;
}

v1::Envelope addMembersRequest(const QString& conversation, const QStringList& users)
{
    v1::Envelope envelope;
    envelope.mutable_add_members()->set_conversation_id(conversation.toStdString());
    for (const QString& user : users) {
        envelope.mutable_add_members()->add_user_names(user.toStdString());
    }
    return envelope;
}

v1::Envelope removeMemberRequest(const QString& conversation, const QString& user)
{
    v1::Envelope envelope;
    envelope.mutable_remove_member()->set_conversation_id(conversation.toStdString());
    envelope.mutable_remove_member()->set_user_name(user.toStdString());
    return envelope;
}

v1::Envelope leaveRequest(const QString& conversation)
{
    v1::Envelope envelope;
    envelope.mutable_leave_conversation()->set_conversation_id(conversation.toStdString());
    return envelope;
}

} // namespace ferry::test
