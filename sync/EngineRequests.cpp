// The sync engine's requests beyond messages and sync: device and group management, history,
// receipts and typing, and the filling of gaps in a conversation's sequence numbers. Part of
// SyncEngine; the connection itself is in SyncEngine.cpp.

#include "sync/SyncEngine.h"

#include "core/FrameCodec.h"
#include "core/Logging.h"
#include "core/ProtocolText.h"
#include "sync/WireConversions.h"

#include <QUuid>
#include <QWebSocket>

#include "ferry.pb.h"

namespace ferry {

namespace {


    /// The error of an answer, or empty when it is not one.
    QString errorOf(const v1::Envelope& reply)
    {
        if (!reply.has_error()) {
            return {};
        }
        const QString name = QString::fromStdString(v1::ErrorCode_Name(reply.error().code()));
        return toQString(reply.error().message()) + u" (" + name + u')';
    }
}

// Plumbing -----------------------------------------------------------------------------------

quint64 SyncEngine::startRequest(const v1::Envelope& envelope, ReplyHandler onReply)
{
    OpenRequest request;
    request.publicId = m_nextPublicRequestId++;
    request.frame = encodeFrame(envelope);
    request.onReply = std::move(onReply);
    m_requests.append(std::move(request));
    sendQueuedRequests();
    return m_requests.last().publicId;
}

void SyncEngine::sendQueuedRequests()
{
    if (m_state != State::CatchingUp && m_state != State::Live) {
        return;
    }
    for (OpenRequest& request : m_requests) {
        if (request.wireId != 0) {
            continue;
        }
        v1::Envelope envelope;
        decodeFrame(request.frame, &envelope);
        request.wireId = sendEnvelope(envelope);
    }
}

bool SyncEngine::handleReply(const v1::Envelope& envelope)
{
    const quint64 wireId = envelope.request_id();
    if (wireId == 0) {
        return false;
    }

    if (m_receiptsInFlight.contains(wireId)) {
        const OutgoingReceipt receipt = m_receiptsInFlight.take(wireId);
        if (envelope.has_ok()) {
            if (auto sent = m_store->receiptSent(receipt); !sent) {
                Q_EMIT storageFailed(sent.error().message);
            }
        } else {
            // Not a member any more, say: the receipt can never be accepted and is dropped.
            qCInfo(lcSync) << "A receipt was refused:" << errorOf(envelope);
            if (auto dropped = m_store->receiptSent(receipt); !dropped) {
                Q_EMIT storageFailed(dropped.error().message);
            }
        }
        checkIdle();
        return true;
    }

    if (m_gapRequests.contains(wireId)) {
        const QString conversationId = m_gapRequests.take(wireId);
        if (envelope.has_history_page()) {
            Result<AppliedEvents> applied
                = m_store->applyHistory(incomingHistory(envelope.history_page()));
            if (!applied) {
                Q_EMIT storageFailed(applied.error().message);
            } else if (!applied->added.isEmpty()) {
                Q_EMIT messagesAdded(applied->added);
                Q_EMIT conversationsChanged({ conversationId });
                // Only when the page added something: a gap the server cannot fill (history it
                // no longer has, or will not show) must not be asked for in a loop.
                fillGaps({ conversationId });
            }
        } else {
            qCInfo(lcSync) << "Could not fill a gap in" << conversationId << ":"
                           << errorOf(envelope);
        }
        checkIdle();
        return true;
    }

    for (qsizetype i = 0; i < m_requests.size(); ++i) {
        if (m_requests[i].wireId != wireId) {
            continue;
        }
        OpenRequest request = m_requests.takeAt(i);
        request.onReply(envelope);
        Q_EMIT requestFinished(request.publicId, errorOf(envelope));
        checkIdle();
        return true;
    }
    return false;
}

void SyncEngine::failOpenRequests(const QString& why)
{
    const QList<OpenRequest> requests = std::exchange(m_requests, {});
    for (const OpenRequest& request : requests) {
        Q_EMIT requestFinished(request.publicId, why);
    }
}

// Receipts -----------------------------------------------------------------------------------

void SyncEngine::acknowledgeDelivery(const QList<StoredMessage>& added)
{
    // "Delivered" is owed for others' messages once they are stored here; one receipt per
    // conversation, up to the highest seq, says it for all of them.
    if (!m_settings.sendDeliveryReceipts) {
        return;
    }
    const std::optional<AccountInfo> self = m_store->account();
    QHash<QString, quint64> highest;
    for (const StoredMessage& message : added) {
        if (message.kind == EntryKind::Message && message.seq && self
            && message.sender != self->userName) {
            highest[message.conversationId]
                = std::max(highest.value(message.conversationId), *message.seq);
        }
    }
    // One commit for the whole batch: a commit per conversation cost a disk flush each.
    QList<OutgoingReceipt> owed;
    for (auto it = highest.constBegin(); it != highest.constEnd(); ++it) {
        owed.append(OutgoingReceipt { it.key(), ReceiptKind::Delivered, it.value() });
    }
    if (auto queued = m_store->queueReceipts(owed); !queued) {
        Q_EMIT storageFailed(queued.error().message);
    }
    // While catching up, each batch would send (and the server store and log) a receipt per
    // conversation, only for the next batch to raise it; the owed receipts, kept in the store,
    // go once the engine is live.
    if (!highest.isEmpty() && m_state == State::Live) {
        sendOwedReceipts();
    }
}

void SyncEngine::sendOwedReceipts()
{
    if (m_state != State::CatchingUp && m_state != State::Live) {
        return;
    }
    Result<QList<OutgoingReceipt>> owed = m_store->outgoingReceipts();
    if (!owed) {
        Q_EMIT storageFailed(owed.error().message);
        return;
    }
    for (const OutgoingReceipt& receipt : std::as_const(owed.value())) {
        const bool alreadyGoing = std::any_of(m_receiptsInFlight.cbegin(),
            m_receiptsInFlight.cend(), [&](const OutgoingReceipt& inFlight) {
                return inFlight.conversationId == receipt.conversationId
                    && inFlight.kind == receipt.kind && inFlight.upToSeq >= receipt.upToSeq;
            });
        if (alreadyGoing) {
            continue;
        }
        v1::Envelope envelope;
        v1::Receipt* out = envelope.mutable_receipt();
        out->set_conversation_id(toStd(receipt.conversationId));
        out->set_kind(receipt.kind == ReceiptKind::Read ? v1::READ : v1::DELIVERED);
        out->set_up_to_seq(receipt.upToSeq);
        m_receiptsInFlight.insert(sendEnvelope(envelope), receipt);
    }
}

// Gaps ---------------------------------------------------------------------------------------

void SyncEngine::fillGaps(const QStringList& conversationIds)
{
    if (m_state != State::CatchingUp && m_state != State::Live) {
        return;
    }
    for (const QString& conversationId : conversationIds) {
        if (std::find(m_gapRequests.cbegin(), m_gapRequests.cend(), conversationId)
            != m_gapRequests.cend()) {
            continue; // one page at a time per conversation; its answer asks for the next
        }
        Result<QList<SeqRange>> gaps = m_store->missingRanges(conversationId);
        if (!gaps || gaps->isEmpty()) {
            continue;
        }
        // The newest gap first, a page at a time from its top end down.
        const SeqRange gap = gaps->last();
        qCInfo(lcSync) << "Filling seq" << gap.first << "to" << gap.last << "of"
                       << conversationId << "from history";
        v1::Envelope envelope;
        v1::HistoryRequest* request = envelope.mutable_history();
        request->set_conversation_id(toStd(conversationId));
        request->set_before_seq(gap.last + 1);
        request->set_limit(static_cast<quint32>(std::min<quint64>(200, gap.last - gap.first + 1)));
        m_gapRequests.insert(sendEnvelope(envelope), conversationId);
    }
}

// Ephemeral events ---------------------------------------------------------------------------

void SyncEngine::handleEphemeral(const v1::Envelope& envelope)
{
    const v1::Ephemeral& ephemeral = envelope.ephemeral();
    if (ephemeral.has_typing()) {
        const v1::TypingEvent& typing = ephemeral.typing();
        Q_EMIT typingChanged(toQString(typing.conversation_id()), toQString(typing.user_name()),
            typing.active());
    } else if (ephemeral.has_presence()) {
        const v1::PresenceEvent& presence = ephemeral.presence();
        const QDateTime lastSeen = presence.last_seen_ms() > 0
            ? QDateTime::fromMSecsSinceEpoch(presence.last_seen_ms(), Qt::UTC)
            : QDateTime();
        Q_EMIT presenceChanged(toQString(presence.user_name()), presence.online(), lastSeen);
    }
}

void SyncEngine::sendTyping(const QString& conversationId, bool active)
{
    if (m_state != State::CatchingUp && m_state != State::Live) {
        return; // typing is worth nothing later
    }
    v1::Envelope envelope;
    envelope.mutable_typing()->set_conversation_id(toStd(conversationId));
    envelope.mutable_typing()->set_active(active);
    sendEnvelope(envelope);
}

// Devices ------------------------------------------------------------------------------------

quint64 SyncEngine::listDevices()
{
    v1::Envelope envelope;
    envelope.mutable_list_devices();
    auto publicId = std::make_shared<quint64>(0);
    const quint64 id = startRequest(envelope, [this, publicId](const v1::Envelope& reply) {
        QList<DeviceInfo> devices;
        for (const v1::Device& device : reply.device_list().devices()) {
            devices.append(DeviceInfo { device.device_id(), toQString(device.name()),
                device.created_ms(), device.current(), device.online() });
        }
        if (reply.has_device_list()) {
            Q_EMIT devicesListed(*publicId, devices);
        }
    });
    *publicId = id;
    return id;
}

quint64 SyncEngine::renameDevice(quint64 deviceId, const QString& name)
{
    v1::Envelope envelope;
    envelope.mutable_rename_device()->set_device_id(deviceId);
    envelope.mutable_rename_device()->set_name(toStd(name));
    return startRequest(envelope, [](const v1::Envelope&) {});
}

quint64 SyncEngine::removeDevice(quint64 deviceId)
{
    v1::Envelope envelope;
    envelope.mutable_remove_device()->set_device_id(deviceId);
    return startRequest(envelope, [](const v1::Envelope&) {});
}

// Groups -------------------------------------------------------------------------------------

quint64 SyncEngine::createGroup(const QString& title, const QStringList& members)
{
    // The id is chosen here, so that the request can be sent again after a lost answer without
    // making a second group.
    const QString conversationId
        = u"group:" + QUuid::createUuid().toString(QUuid::WithoutBraces);
    v1::Envelope envelope;
    v1::CreateGroup* request = envelope.mutable_create_group();
    request->set_conversation_id(toStd(conversationId));
    request->set_title(toStd(title));
    for (const QString& member : members) {
        request->add_members(toStd(member));
    }
    auto publicId = std::make_shared<quint64>(0);
    const quint64 id
        = startRequest(envelope, [this, publicId, conversationId](const v1::Envelope& reply) {
              if (reply.has_conversation_info()) {
                  Q_EMIT groupCreated(*publicId, conversationId);
              }
          });
    *publicId = id;
    return id;
}

quint64 SyncEngine::addMembers(const QString& conversationId, const QStringList& userNames)
{
    v1::Envelope envelope;
    envelope.mutable_add_members()->set_conversation_id(toStd(conversationId));
    for (const QString& name : userNames) {
        envelope.mutable_add_members()->add_user_names(toStd(name));
    }
    return startRequest(envelope, [](const v1::Envelope&) {});
}

quint64 SyncEngine::removeMember(const QString& conversationId, const QString& userName)
{
    v1::Envelope envelope;
    envelope.mutable_remove_member()->set_conversation_id(toStd(conversationId));
    envelope.mutable_remove_member()->set_user_name(toStd(userName));
    return startRequest(envelope, [](const v1::Envelope&) {});
}

quint64 SyncEngine::leaveGroup(const QString& conversationId)
{
    v1::Envelope envelope;
    envelope.mutable_leave_conversation()->set_conversation_id(toStd(conversationId));
    return startRequest(envelope, [](const v1::Envelope&) {});
}

// History ------------------------------------------------------------------------------------

quint64 SyncEngine::fetchOlderHistory(const QString& conversationId, int limit)
{
    Result<QList<StoredMessage>> held = m_store->history(conversationId);
    quint64 oldest = 0;
    if (held) {
        for (const StoredMessage& entry : std::as_const(held.value())) {
            if (entry.seq) {
                oldest = *entry.seq;
                break;
            }
        }
    }
    v1::Envelope envelope;
    v1::HistoryRequest* request = envelope.mutable_history();
    request->set_conversation_id(toStd(conversationId));
    request->set_before_seq(oldest); // 0 when nothing is held: the newest page
    request->set_limit(static_cast<quint32>(std::clamp(limit, 1, 200)));
    return startRequest(envelope, [this, conversationId](const v1::Envelope& reply) {
        if (!reply.has_history_page()) {
            return;
        }
        Result<AppliedEvents> applied
            = m_store->applyHistory(incomingHistory(reply.history_page()));
        if (!applied) {
            Q_EMIT storageFailed(applied.error().message);
        } else if (!applied->added.isEmpty()) {
            Q_EMIT messagesAdded(applied->added);
            Q_EMIT conversationsChanged({ conversationId });
        }
    });
}

} // namespace ferry
