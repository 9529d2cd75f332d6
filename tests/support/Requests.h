#pragma once

#include "ferry.pb.h"

#include <QString>
#include <QStringList>

// Hand-made requests for the tests that talk to the server frame by frame (ProtocolClient):
// the fields given by the caller, so that a test shows what it asks for.
namespace ferry::test {

v1::Envelope receiptRequest(const QString& conversation, v1::ReceiptKind kind, quint64 upToSeq);
/// The newest `limit` entries with a seq below `beforeSeq` (0: the newest of all).
v1::Envelope historyRequest(const QString& conversation, quint64 beforeSeq, quint32 limit);
v1::Envelope typingRequest(const QString& conversation, bool active);

v1::Envelope renameDeviceRequest(quint64 deviceId, const QString& name);
v1::Envelope removeDeviceRequest(quint64 deviceId);

/// A group of `members` and its creator, untitled unless `title` is given.
v1::Envelope createGroupRequest(
    const QString& conversation, const QStringList& members, const QString& title = {});
v1::Envelope addMembersRequest(const QString& conversation, const QStringList& users);
v1::Envelope removeMemberRequest(const QString& conversation, const QString& user);
v1::Envelope leaveRequest(const QString& conversation);

} // namespace ferry::test
