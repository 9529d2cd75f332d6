// One frame of arbitrary bytes into what the client does with a frame from its server: decoding,
// then for an EventBatch the sync engine's own conversion of its events (incomingEvents, which
// handleEventBatch calls) and ClientStore::applyEvents on a real store that lives as long as the
// fuzzing process, so batches pile up on each other as they do on a device.
//
// Invariants, beyond no crash and no sanitizer report:
//  - the stored event offset never goes backwards;
//  - applying the same batch a second time adds nothing (exactly once, whatever the server says);
//  - no message id is stored twice in a conversation the batch touched.

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

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    ClientStore& client = store();
    v1::Envelope envelope;
    if (!decodeFrame(fuzz::inputBytes(data, size), &envelope) || !envelope.has_events()) {
        return 0;
    }
    const IncomingEvents incoming = incomingEvents(envelope.events());
    const quint64 lastOffset = envelope.events().last_offset();

    const quint64 before = storedOffset();
    Result<AppliedEvents> first
        = client.applyEvents(incoming.entries, lastOffset, incoming.receipts);
    const quint64 after = storedOffset();
    FERRY_FUZZ_CHECK(after >= before, "the event offset never goes backwards");
    if (!first) {
        // Refusing a batch is allowed (it is reported and the engine reconnects); changing the
        // offset while refusing it is not.
        FERRY_FUZZ_CHECK(after == before, "a refused batch leaves the offset alone");
        return 0;
    }

    QSet<QByteArray> added;
    for (const StoredMessage& entry : std::as_const(first->added)) {
        FERRY_FUZZ_CHECK(!added.contains(entry.messageId), "one batch adds an entry once");
        added.insert(entry.messageId);
    }

    Result<AppliedEvents> again
        = client.applyEvents(incoming.entries, lastOffset, incoming.receipts);
    FERRY_FUZZ_CHECK(again, "a batch applied once applies again");
    FERRY_FUZZ_CHECK(again->added.isEmpty(), "a batch applied twice adds nothing the second time");
    FERRY_FUZZ_CHECK(storedOffset() == after, "a repeated batch leaves the offset alone");

    for (const QString& conversationId : std::as_const(first->touchedConversations)) {
        Result<QList<StoredMessage>> entries = client.history(conversationId);
        FERRY_FUZZ_CHECK(entries, "a touched conversation can be read");
        QSet<QByteArray> ids;
        for (const StoredMessage& entry : std::as_const(entries.value())) {
            FERRY_FUZZ_CHECK(!ids.contains(entry.messageId), "no message id is stored twice");
            ids.insert(entry.messageId);
        }
    }
    return 0;
}
