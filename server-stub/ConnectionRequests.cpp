// The requests an authenticated device makes: messages, sync, devices, groups, receipts, history
// and typing. Part of ClientConnection; authentication and the connection's lifecycle are in
// ClientConnection.cpp.

#include "server-stub/ClientConnection.h"

#include "core/Logging.h"
#include "core/MessageId.h"
#include "server-stub/ChatServer.h"
#include "core/ProtocolText.h"
#include "server-stub/CommittedEvents.h"
#include "server-stub/ServerStore.h"

#include <QElapsedTimer>

#include "ferry.pb.h"

namespace ferry::server {

namespace {
    constexpr qsizetype MaxBatchBytes = 1024 * 1024;
    constexpr int MaxHistoryLimit = 200;
    constexpr qsizetype MaxTitleChars = 100;
    constexpr qsizetype MaxConversationIdChars = 100;
    constexpr qsizetype MaxDeviceNameChars = 64;

    QString describe(const QByteArray& messageId)
    {
        const auto id = MessageId::fromBytes(messageId);
        return id ? id->toString() : QStringLiteral("(malformed id)");
    }

    void fillMessage(v1::MessageEvent* message, const ConversationEntry& entry)
    {
        message->set_message_id(toStd(entry.messageId));
        message->set_conversation_id(toStd(entry.conversationId));
        message->set_seq(entry.seq);
        message->set_sender(toStd(entry.sender));
        message->set_sender_device(entry.senderDeviceId);
        message->set_body(toStd(entry.body));
        message->set_server_time_ms(entry.serverTimeMs);
    }

    void fillMembership(v1::MembershipEvent* event, const ConversationEntry& entry)
    {
        const MembershipRecord& change = *entry.membership;
        event->set_conversation_id(toStd(entry.conversationId));
        event->set_seq(entry.seq);
        event->set_action(static_cast<v1::MembershipAction>(change.action));
        event->set_actor(toStd(change.actor));
        for (const QString& subject : change.subjects) {
            event->add_subjects(toStd(subject));
        }
        event->set_title(toStd(change.title));
        for (const QString& member : change.members) {
            event->add_members(toStd(member));
        }
        event->set_server_time_ms(entry.serverTimeMs);
    }

    void fillConversation(v1::ConversationInfo* info, const ConversationRecord& conversation)
    {
        info->set_conversation_id(toStd(conversation.id));
        info->set_title(toStd(conversation.title));
        for (const QString& member : conversation.members) {
            info->add_members(toStd(member));
        }
        info->set_last_seq(conversation.lastSeq);
    }

    bool isValidGroupId(const QString& id)
    {
        return id.startsWith(u"group:") && id.size() > 6 && id.size() <= MaxConversationIdChars;
    }
}

void ClientConnection::handleSend(const v1::Envelope& envelope)
{
    const quint64 requestId = envelope.request_id();
    const v1::SendMessage& request = envelope.send();

    NewMessage message;
    message.messageId = toBytes(request.message_id());
    message.conversationId = toQString(request.conversation_id());
    message.senderUserId = m_userId;
    message.senderName = m_userName;
    message.senderDeviceId = m_deviceId;
    message.body = toBytes(request.body());

    if (!MessageId::fromBytes(message.messageId)) {
        sendError(requestId, v1::BAD_REQUEST, QStringLiteral("a message id is 16 bytes"),
            message.messageId);
        return;
    }
    if (message.body.size() > m_server->config().maxBodyBytes) {
        sendError(requestId, v1::BODY_TOO_LARGE,
            u"a message body is at most " + QString::number(m_server->config().maxBodyBytes)
                + u" bytes",
            message.messageId);
        return;
    }

    ++m_sendsInCommit;
    m_server->queueSend(this, requestId, std::move(message));
}

void ClientConnection::finishSend(
    quint64 requestId, const NewMessage& message, const Result<StoredMessageAck>& stored)
{
    --m_sendsInCommit;
    if (!stored) {
        sendStoreError(requestId, stored.error().kind, stored.error().message, message.messageId);
        return;
    }

    qCDebug(lcServer) << "Stored" << describe(message.messageId) << "as seq" << stored->seq
                      << (stored->alreadyStored ? "(resend)" : "");
    v1::Envelope reply;
    reply.set_request_id(requestId);
    v1::SendAck* ack = reply.mutable_send_ack();
    ack->set_message_id(toStd(message.messageId));
    ack->set_conversation_id(toStd(message.conversationId));
    ack->set_seq(stored->seq);
    ack->set_server_time_ms(stored->serverTimeMs);
    sendEnvelope(reply);

    ServerMetrics& metrics = m_server->metrics();
    if (stored->alreadyStored) {
        ++metrics.messagesResent;
    } else {
        ++metrics.messagesStored;
    }
}

void ClientConnection::handleSync(const v1::Envelope& envelope)
{
    // A new sync request restarts the stream from the offset the client names: it is the
    // client's word on what it has committed.
    if (m_live) {
        m_server->connectionStoppedLive(this);
        m_live = false;
    }
    const v1::SyncRequest& request = envelope.sync();
    const int serverLimit = m_server->config().syncBatchLimit;
    const int limit = request.max_events() == 0
        ? serverLimit
        : static_cast<int>(std::min<quint32>(request.max_events(), quint32(serverLimit)));
    streamEvents(envelope.request_id(), request.after_offset(), limit);
}

bool ClientConnection::streamEvents(quint64 requestId, quint64 afterOffset, int limit)
{
    Result<EventPage> page = m_server->store().eventsAfter(m_userId, afterOffset, limit);
    if (!page) {
        sendStoreError(requestId, page.error().kind, page.error().message);
        return true;
    }
    // A push with nothing new says nothing; an answer to a request always goes out.
    if (requestId == 0 && page->events.isEmpty()) {
        return true;
    }

    v1::Envelope reply;
    reply.set_request_id(requestId);
    v1::EventBatch* batch = reply.mutable_events();
    quint64 lastOffset = afterOffset;
    bool caughtUp = page->caughtUp;
    qsizetype batchBytes = 0;
    for (const LogEvent& logEvent : std::as_const(page->events)) {
        // A byte budget as well as a count, so that large bodies cannot make a frame of many
        // megabytes; the rest follows in the next batch.
        if (batchBytes > MaxBatchBytes) {
            caughtUp = false;
            break;
        }
        v1::Event* event = batch->add_events();
        event->set_offset(logEvent.offset);
        if (logEvent.receipt) {
            const ReceiptRecord& receipt = *logEvent.receipt;
            v1::ReceiptEvent* out = event->mutable_receipt();
            out->set_conversation_id(toStd(receipt.conversationId));
            out->set_user_name(toStd(receipt.userName));
            out->set_kind(static_cast<v1::ReceiptKind>(receipt.kind));
            out->set_up_to_seq(receipt.upToSeq);
            out->set_device_id(receipt.deviceId);
        } else if (logEvent.entry && logEvent.entry->membership) {
            fillMembership(event->mutable_membership(), *logEvent.entry);
        } else if (logEvent.entry) {
            fillMessage(event->mutable_message(), *logEvent.entry);
            batchBytes += logEvent.entry->body.size();
        }
        batchBytes += 64;
        lastOffset = logEvent.offset;
    }
    batch->set_caught_up(caughtUp);
    batch->set_last_offset(lastOffset);
    m_server->metrics().eventsSent += static_cast<quint64>(batch->events_size());
    sendEnvelope(reply);

    // Once a client has everything up to the end of its log, later commits are pushed to it.
    // The cursor makes the switch exact: a push sends only what lies after what was sent, and
    // nothing can commit between reading this page and registering, as both run on this thread.
    if (m_state != State::Authenticated) {
        return true;
    }
    if (m_live) {
        m_cursor = lastOffset;
    } else if (caughtUp) {
        m_cursor = lastOffset;
        m_live = true;
        m_server->connectionWentLive(this);
    }
    return caughtUp;
}

void ClientConnection::pushNewEvents()
{
    // Events are read back from the log, so a push can never skip or repeat an offset whatever
    // the cursor: this serves commits other than message batches, and a cursor that a message
    // batch's events do not directly follow (pushCommittedEvents). Each pass sends one bounded
    // batch; the loop ends when the log is drained or the connection closes.
    while (m_live && m_state == State::Authenticated) {
        if (streamEvents(0, m_cursor, m_server->config().syncBatchLimit)) {
            return;
        }
    }
}

void ClientConnection::pushCommittedEvents(const QList<CommittedEvent>& events)
{
    if (!m_live || m_state != State::Authenticated || events.isEmpty()) {
        return;
    }
    // The commit's events are everything after the cursor only when the cursor stands right
    // before the first of them: the commit ran on this thread just now, so nothing else can
    // have been appended after them, and every commit before it was pushed when it happened.
    // A cursor anywhere else (a push that was cut short) is served from the log, as before.
    bool followsCursor = events.first().offset == m_cursor + 1;
    for (qsizetype i = 1; followsCursor && i < events.size(); ++i) {
        followsCursor = events[i].offset == events[i - 1].offset + 1;
    }
    if (!followsCursor) {
        pushNewEvents();
        return;
    }

    // Batches as a read from the log would make them: at most the sync batch limit of events,
    // and closed once their bodies pass the byte budget.
    const qsizetype limit = m_server->config().syncBatchLimit;
    qsizetype first = 0;
    while (first < events.size() && m_live && m_state == State::Authenticated) {
        qsizetype end = first;
        qsizetype batchBytes = 0;
        while (end < events.size() && end - first < limit && batchBytes <= MaxBatchBytes) {
            batchBytes += events[end].bodyBytes + 64;
            ++end;
        }
        const bool caughtUp = end == events.size();
        m_server->metrics().eventsSent += static_cast<quint64>(end - first);
        sendFrame(encodeEventPush(events.constData() + first, end - first, caughtUp));
        m_cursor = events[end - 1].offset;
        first = end;
    }
}

// Devices ------------------------------------------------------------------------------------

void ClientConnection::handleListDevices(const v1::Envelope& envelope)
{
    Result<QList<DeviceRecord>> devices = m_server->store().listDevices(m_userId);
    if (!devices) {
        sendStoreError(envelope.request_id(), devices.error().kind, devices.error().message);
        return;
    }
    v1::Envelope reply;
    reply.set_request_id(envelope.request_id());
    v1::DeviceList* list = reply.mutable_device_list();
    for (const DeviceRecord& record : std::as_const(devices.value())) {
        v1::Device* device = list->add_devices();
        device->set_device_id(record.id);
        device->set_name(toStd(record.name));
        device->set_created_ms(record.createdMs);
        device->set_current(record.id == m_deviceId);
        device->set_online(m_server->isDeviceOnline(m_userId, record.id));
    }
    sendEnvelope(reply);
}

void ClientConnection::handleRenameDevice(const v1::Envelope& envelope)
{
    const v1::RenameDevice& request = envelope.rename_device();
    const QString name = toQString(request.name()).trimmed();
    if (name.isEmpty() || name.size() > MaxDeviceNameChars) {
        sendError(envelope.request_id(), v1::BAD_REQUEST,
            QStringLiteral("a device name is 1 to 64 characters"));
        return;
    }
    Result<Done> renamed = m_server->store().renameDevice(m_userId, request.device_id(), name);
    if (!renamed) {
        sendStoreError(envelope.request_id(), renamed.error().kind, renamed.error().message);
        return;
    }
    sendOk(envelope.request_id());
}

void ClientConnection::handleRemoveDevice(const v1::Envelope& envelope)
{
    const quint64 requestId = envelope.request_id();
    // Answered before the removal closes links, so a device removing itself hears the answer.
    const quint64 deviceId = envelope.remove_device().device_id();
    const std::optional<DeviceRecord> device = m_server->store().findDevice(deviceId);
    if (!device || device->userId != m_userId || device->removed) {
        sendError(requestId, v1::NOT_FOUND, QStringLiteral("your account has no such device"));
        return;
    }
    sendOk(requestId);
    if (Result<Done> removed = m_server->removeDevice(m_userId, deviceId); !removed) {
        qCWarning(lcServer) << "Could not remove device" << deviceId << ":"
                            << removed.error().message;
    }
}

// Groups -------------------------------------------------------------------------------------

void ClientConnection::handleCreateGroup(const v1::Envelope& envelope)
{
    const v1::CreateGroup& request = envelope.create_group();
    const QString conversationId = toQString(request.conversation_id());
    const QString title = toQString(request.title()).left(MaxTitleChars);
    QStringList members;
    for (const std::string& member : request.members()) {
        members.append(toQString(member));
    }
    if (!isValidGroupId(conversationId)) {
        sendError(envelope.request_id(), v1::BAD_REQUEST,
            QStringLiteral("a group id is 'group:' and up to 94 more characters"));
        return;
    }

    Result<ChangeResult> created
        = m_server->store().createGroup(conversationId, title, m_userId, members);
    if (!created) {
        sendStoreError(envelope.request_id(), created.error().kind, created.error().message);
        return;
    }
    v1::Envelope reply;
    reply.set_request_id(envelope.request_id());
    fillConversation(reply.mutable_conversation_info(), created->conversation);
    sendEnvelope(reply);
    m_server->notifyEventsAppended(created->notifiedUserIds);
}

void ClientConnection::handleAddMembers(const v1::Envelope& envelope)
{
    const v1::AddMembers& request = envelope.add_members();
    QStringList names;
    for (const std::string& name : request.user_names()) {
        names.append(toQString(name));
    }
    Result<ChangeResult> changed
        = m_server->store().addMembers(toQString(request.conversation_id()), m_userId, names);
    if (!changed) {
        sendStoreError(envelope.request_id(), changed.error().kind, changed.error().message);
        return;
    }
    v1::Envelope reply;
    reply.set_request_id(envelope.request_id());
    fillConversation(reply.mutable_conversation_info(), changed->conversation);
    sendEnvelope(reply);
    m_server->notifyEventsAppended(changed->notifiedUserIds);
}

void ClientConnection::handleRemoveMember(const v1::Envelope& envelope)
{
    const v1::RemoveMember& request = envelope.remove_member();
    Result<ChangeResult> changed = m_server->store().removeMember(
        toQString(request.conversation_id()), m_userId, toQString(request.user_name()));
    if (!changed) {
        sendStoreError(envelope.request_id(), changed.error().kind, changed.error().message);
        return;
    }
    sendOk(envelope.request_id());
    m_server->notifyEventsAppended(changed->notifiedUserIds);
}

void ClientConnection::handleLeave(const v1::Envelope& envelope)
{
    Result<ChangeResult> changed = m_server->store().removeMember(
        toQString(envelope.leave_conversation().conversation_id()), m_userId, m_userName);
    if (!changed) {
        sendStoreError(envelope.request_id(), changed.error().kind, changed.error().message);
        return;
    }
    sendOk(envelope.request_id());
    m_server->notifyEventsAppended(changed->notifiedUserIds);
}

// Receipts, history, typing ------------------------------------------------------------------

void ClientConnection::handleReceipt(const v1::Envelope& envelope)
{
    const v1::Receipt& request = envelope.receipt();
    if (request.kind() != v1::DELIVERED && request.kind() != v1::READ) {
        sendError(envelope.request_id(), v1::BAD_REQUEST,
            QStringLiteral("a receipt is DELIVERED or READ"));
        return;
    }
    Result<ChangeResult> recorded = m_server->store().recordReceipt(m_userId, m_deviceId,
        toQString(request.conversation_id()), static_cast<ReceiptKind>(request.kind()),
        request.up_to_seq());
    if (!recorded) {
        sendStoreError(envelope.request_id(), recorded.error().kind, recorded.error().message);
        return;
    }
    sendOk(envelope.request_id());
    if (recorded->changed) {
        m_server->notifyEventsAppended(recorded->notifiedUserIds);
    }
}

void ClientConnection::handleHistory(const v1::Envelope& envelope)
{
    const v1::HistoryRequest& request = envelope.history();
    if (request.limit() < 1 || request.limit() > MaxHistoryLimit) {
        sendError(envelope.request_id(), v1::BAD_REQUEST,
            QStringLiteral("a history page holds 1 to 200 entries"));
        return;
    }
    const QString conversationId = toQString(request.conversation_id());
    Result<HistoryPage> page = m_server->store().history(
        conversationId, m_userId, request.before_seq(), static_cast<int>(request.limit()));
    if (!page) {
        sendStoreError(envelope.request_id(), page.error().kind, page.error().message);
        return;
    }
    v1::Envelope reply;
    reply.set_request_id(envelope.request_id());
    v1::HistoryPage* out = reply.mutable_history_page();
    out->set_conversation_id(request.conversation_id());
    for (const ConversationEntry& entry : std::as_const(page->entries)) {
        if (entry.membership) {
            fillMembership(out->add_memberships(), entry);
        } else {
            fillMessage(out->add_messages(), entry);
        }
    }
    out->set_has_more(page->hasMore);
    sendEnvelope(reply);
}

void ClientConnection::handleTyping(const v1::Envelope& envelope)
{
    const v1::Typing& request = envelope.typing();
    Result<ConversationRecord> conversation
        = m_server->store().conversation(toQString(request.conversation_id()), m_userId);
    if (!conversation) {
        sendStoreError(envelope.request_id(), conversation.error().kind,
            conversation.error().message);
        return;
    }
    // Relayed to whoever is connected now, and forgotten.
    v1::Envelope relay;
    v1::TypingEvent* typing = relay.mutable_ephemeral()->mutable_typing();
    typing->set_conversation_id(request.conversation_id());
    typing->set_user_name(toStd(m_userName));
    typing->set_active(request.active());
    QList<qint64> others = conversation->memberIds;
    others.removeAll(m_userId);
    m_server->sendEphemeral(others, relay);
}

} // namespace ferry::server
