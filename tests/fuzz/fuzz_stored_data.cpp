// Arbitrary bytes as a profile's ferry.db, then what ferryctl and the app do with a profile:
// ClientStore::open, and for a file reported damaged, ClientStore::recover and a second open;
// then a few reads of whatever opened.
//
// Invariants, beyond no crash and no sanitizer report:
//  - a file that is not a SQLite database never opens as an empty profile (only an empty file
//    may: SQLite treats it as a new database);
//  - a file that does not open is left exactly as it was;
//  - recovery keeps the damaged bytes aside, unchanged, and leaves a profile that opens.

#include "core/ClientStore.h"
#include "tests/fuzz/FuzzSupport.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>

using namespace ferry;

namespace {

QByteArray readFile(const QString& path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

void readEverything(ClientStore& store)
{
    (void)store.account();
    (void)store.eventOffset();
    (void)store.outbox();
    (void)store.outgoingReceipts();
    (void)store.engineStatus();
    Result<QList<ConversationSummary>> conversations = store.conversations();
    if (conversations) {
        for (const ConversationSummary& conversation : std::as_const(conversations.value())) {
            (void)store.history(conversation.id);
            (void)store.missingRanges(conversation.id);
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static const QString base = [] {
        fuzz::initialiseQt();
        return fuzz::scratchFolder(QStringLiteral("stored"));
    }();
    QTemporaryDir profile(base + u"/profile-XXXXXX");
    const QString dbPath = QDir(profile.path()).filePath(QStringLiteral("ferry.db"));
    const QByteArray bytes = fuzz::inputBytes(data, size);
    {
        QFile file(dbPath);
        FERRY_FUZZ_CHECK(file.open(QIODevice::WriteOnly) && file.write(bytes) == bytes.size(),
            "the input is written");
    }

    Result<std::unique_ptr<ClientStore>> opened = ClientStore::open(profile.path());
    if (opened) {
        FERRY_FUZZ_CHECK(bytes.isEmpty() || bytes.startsWith(QByteArrayLiteral("SQLite format 3")),
            "only an empty file or a SQLite database opens");
        readEverything(*opened.value());
        return 0;
    }
    if (opened.error().kind != u"damaged") {
        FERRY_FUZZ_CHECK(readFile(dbPath) == bytes, "a file that does not open is left alone");
        return 0;
    }

    Result<RecoveryReport> recovered = ClientStore::recover(profile.path());
    FERRY_FUZZ_CHECK_OK(recovered, "a damaged profile is recovered");
    const QString keptAside = QDir(recovered->damagedCopy).filePath(QStringLiteral("ferry.db"));
    FERRY_FUZZ_CHECK(readFile(keptAside) == bytes, "the damaged bytes are kept aside unchanged");

    Result<std::unique_ptr<ClientStore>> reopened = ClientStore::open(profile.path());
    FERRY_FUZZ_CHECK_OK(reopened, "a recovered profile opens");
    readEverything(*reopened.value());
    return 0;
}
