// One frame of arbitrary bytes into what the client does with a frame from its server: decoding,
// then for an EventBatch the sync engine's own conversion of its events (incomingEvents, which
// handleEventBatch calls) and ClientStore::applyEvents; for a HistoryPage, incomingHistory and
// ClientStore::applyHistory. The store lives as long as the fuzzing process, so what arrives
// piles up as it does on a device.
//
// Invariants, beyond no crash and no sanitizer report:
//  - the stored event offset never goes backwards;
//  - applying the same batch or page a second time adds nothing (exactly once, whatever the
//    server says), and history never moves the offset;
//  - no message id is stored twice in a conversation that received entries.

#include "core/ClientStore.h"
#include "core/FrameCodec.h"
#include "sync/WireConversions.h"
#include "tests/fuzz/FuzzSupport.h"

#include <QSet>

#include "ferry.pb.h"

using namespace ferry;

namespace {

ClientStore& store()
{
    static ClientStore* opened = [] {
        fuzz::initialiseQt();
        Result<std::unique_ptr<ClientStore>> store
            = ClientStore::open(fuzz::scratchFolder(QStringLiteral("client")));
        FERRY_FUZZ_CHECK(store, "a new profile opens");
        // The account decides which messages count as this device's own.
        FERRY_FUZZ_CHECK(store.value()->saveAccount(AccountInfo { QStringLiteral("ws://127.0.0.1"),
                             QStringLiteral("alice"), 1, QByteArrayLiteral("token") }),
            "the account is saved");
        return store.value().release();
    }();
    return *opened;
}

quint64 storedOffset()
{
    Result<quint64> offset = store().eventOffset();
    FERRY_FUZZ_CHECK(offset, "the event offset can be read");
    return offset.value();
}

/// Exactly once: what the first apply added, it added once, and the same entries applied again
/// add nothing; no conversation the entries went to holds a message id twice.
void checkExactlyOnce(const AppliedEvents& first, const AppliedEvents& again)
{
    QSet<QByteArray> added;
    QSet<QString> conversations(
        first.touchedConversations.cbegin(), first.touchedConversations.cend());
    for (const StoredMessage& entry : first.added) {
        FERRY_FUZZ_CHECK(!added.contains(entry.messageId), "one apply adds an entry once");
        added.insert(entry.messageId);
        conversations.insert(entry.conversationId);
    }
    FERRY_FUZZ_CHECK(again.added.isEmpty(), "entries applied twice add nothing the second time");

    for (const QString& conversationId : std::as_const(conversations)) {
        Result<QList<StoredMessage>> entries = store().history(conversationId);
        FERRY_FUZZ_CHECK(entries, "a touched conversation can be read");
        QSet<QByteArray> ids;
        for (const StoredMessage& entry : std::as_const(entries.value())) {
            FERRY_FUZZ_CHECK(!ids.contains(entry.messageId), "no message id is stored twice");
            ids.insert(entry.messageId);
        }
    }
}

void applyBatch(const v1::EventBatch& batch)
{
    const IncomingEvents incoming = incomingEvents(batch);
    const quint64 lastOffset = batch.last_offset();

    const quint64 before = storedOffset();
    Result<AppliedEvents> first
        = store().applyEvents(incoming.entries, lastOffset, incoming.receipts);
    const quint64 after = storedOffset();
    FERRY_FUZZ_CHECK(after >= before, "the event offset never goes backwards");
    if (!first) {
        // Refusing a batch is allowed (it is reported and the engine reconnects); changing the
        // offset while refusing it is not.
        FERRY_FUZZ_CHECK(after == before, "a refused batch leaves the offset alone");
        return;
    }

    Result<AppliedEvents> again
        = store().applyEvents(incoming.entries, lastOffset, incoming.receipts);
    FERRY_FUZZ_CHECK(again, "a batch applied once applies again");
    FERRY_FUZZ_CHECK(storedOffset() == after, "a repeated batch leaves the offset alone");
    checkExactlyOnce(first.value(), again.value());
}

void applyHistoryPage(const v1::HistoryPage& page)
{
    const QList<IncomingMessage> entries = incomingHistory(page);
    const quint64 before = storedOffset();
    Result<AppliedEvents> first = store().applyHistory(entries);
    FERRY_FUZZ_CHECK(storedOffset() == before, "history never moves the event offset");
    if (!first) {
        return;
    }
    Result<AppliedEvents> again = store().applyHistory(entries);
    FERRY_FUZZ_CHECK(again, "a history page applied once applies again");
    checkExactlyOnce(first.value(), again.value());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    (void)store();
    v1::Envelope envelope;
    if (!decodeFrame(fuzz::inputBytes(data, size), &envelope)) {
        return 0;
    }
    if (envelope.has_events()) {
        applyBatch(envelope.events());
    } else if (envelope.has_history_page()) {
        applyHistoryPage(envelope.history_page());
    }
    return 0;
}
