// Writes the seed corpus of the fuzz targets: well-formed frames of every kind each side
// receives, and a real profile database. Usage: make_fuzz_seeds <tests/fuzz/corpus>
// The seeds only give libFuzzer a start inside the protocol; it mutates from there.

#include "core/ClientStore.h"
#include "core/FrameCodec.h"
#include "core/MessageId.h"
#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QTemporaryDir>

#include <cstdio>

#include "ferry.pb.h"

using namespace ferry;

namespace {

const std::string DirectConversation = "direct:alice:bob";
const std::string Group = "group:0190b3c4-1d2e-7f00-8a00-000000000001";

bool writeFile(const QString& path, const QByteArray& bytes)
{
    QFile file(path);
    return file.open(QIODevice::WriteOnly) && file.write(bytes) == bytes.size();
}

std::string messageId()
{
    const QByteArray id = MessageId::generateAt(1'720'000'000'000).bytes();
    return std::string(id.constData(), static_cast<size_t>(id.size()));
}

QList<std::pair<const char*, v1::Envelope>> serverFrames()
{
    QList<std::pair<const char*, v1::Envelope>> frames;
    auto add = [&frames](const char* name) -> v1::Envelope& {
        frames.append({ name, v1::Envelope() });
        frames.last().second.set_request_id(static_cast<quint64>(frames.size()));
        return frames.last().second;
    };
    add("hello").mutable_hello()->set_protocol_version(ProtocolVersion);
    add("resume").mutable_resume()->set_device_id(1);
    add("authenticate").mutable_authenticate()->set_session_token("not-a-token");
    v1::Register* registration = add("register").mutable_register_();
    registration->set_user_name("dave");
    registration->set_password("short");
    v1::SendMessage* direct = add("send-direct").mutable_send();
    direct->set_message_id(messageId());
    direct->set_conversation_id(DirectConversation);
    direct->set_body("Hello, Bob");
    v1::SendMessage* toGroup = add("send-group").mutable_send();
    toGroup->set_message_id(messageId());
    toGroup->set_conversation_id(Group);
    toGroup->set_body("Who brings the tent?");
    add("sync").mutable_sync()->set_after_offset(0);
    v1::CreateGroup* create = add("create-group").mutable_create_group();
    create->set_conversation_id(Group);
    create->set_title("Weekend");
    create->add_members("bob");
    v1::AddMembers* addMembers = add("add-members").mutable_add_members();
    addMembers->set_conversation_id(Group);
    addMembers->add_user_names("carol");
    v1::RemoveMember* remove = add("remove-member").mutable_remove_member();
    remove->set_conversation_id(Group);
    remove->set_user_name("carol");
    add("leave").mutable_leave_conversation()->set_conversation_id(Group);
    v1::Receipt* receipt = add("receipt").mutable_receipt();
    receipt->set_conversation_id(DirectConversation);
    receipt->set_kind(v1::READ);
    receipt->set_up_to_seq(1);
    v1::HistoryRequest* history = add("history").mutable_history();
    history->set_conversation_id(Group);
    history->set_limit(50);
    v1::Typing* typing = add("typing").mutable_typing();
    typing->set_conversation_id(DirectConversation);
    typing->set_active(true);
    add("list-devices").mutable_list_devices();
    v1::RenameDevice* rename = add("rename-device").mutable_rename_device();
    rename->set_device_id(1);
    rename->set_name("phone");
    add("remove-device").mutable_remove_device()->set_device_id(99);
    add("refresh-session").mutable_refresh_session();
    return frames;
}

QList<std::pair<const char*, v1::Envelope>> clientFrames()
{
    QList<std::pair<const char*, v1::Envelope>> frames;
    v1::Envelope batch;
    batch.set_request_id(2);
    v1::EventBatch* events = batch.mutable_events();
    v1::Event* created = events->add_events();
    created->set_offset(1);
    v1::MembershipEvent* membership = created->mutable_membership();
    membership->set_conversation_id(Group);
    membership->set_seq(1);
    membership->set_action(v1::CREATED);
    membership->set_actor("alice");
    membership->add_subjects("bob");
    membership->set_title("Weekend");
    membership->add_members("alice");
    membership->add_members("bob");
    for (quint64 seq = 1; seq <= 2; ++seq) {
        v1::Event* event = events->add_events();
        event->set_offset(seq + 1);
        v1::MessageEvent* message = event->mutable_message();
        message->set_message_id(messageId());
        message->set_conversation_id(DirectConversation);
        message->set_seq(seq);
        message->set_sender(seq == 1 ? "alice" : "bob");
        message->set_sender_device(1);
        message->set_body("Hello");
        message->set_server_time_ms(1'720'000'000'000);
    }
    v1::Event* read = events->add_events();
    read->set_offset(4);
    read->mutable_receipt()->set_conversation_id(DirectConversation);
    read->mutable_receipt()->set_user_name("bob");
    read->mutable_receipt()->set_kind(v1::READ);
    read->mutable_receipt()->set_up_to_seq(1);
    events->set_caught_up(true);
    events->set_last_offset(4);
    frames.append({ "event-batch", batch });

    v1::Envelope empty;
    empty.mutable_events()->set_last_offset(4);
    empty.mutable_events()->set_caught_up(true);
    frames.append({ "event-batch-empty", empty });

    v1::Envelope history;
    history.set_request_id(3);
    v1::HistoryPage* page = history.mutable_history_page();
    page->set_conversation_id(Group);
    *page->add_memberships() = *membership;
    v1::MessageEvent* older = page->add_messages();
    older->set_message_id(messageId());
    older->set_conversation_id(Group);
    older->set_seq(2);
    older->set_sender("bob");
    older->set_body("Tent: me");
    page->set_has_more(false);
    frames.append({ "history-page", history });
    return frames;
}

bool writeFrames(const QDir& folder, const QList<std::pair<const char*, v1::Envelope>>& frames)
{
    for (const auto& [name, envelope] : frames) {
        if (!writeFile(folder.filePath(QLatin1String(name)), encodeFrame(envelope))) {
            return false;
        }
    }
    return true;
}

/// A profile as ferryctl leaves it: an account, a conversation with received messages, one
/// queued message. Written through ClientStore, so it has the current schema.
QByteArray profileDatabase()
{
    QTemporaryDir profile;
    {
        Result<std::unique_ptr<ClientStore>> store = ClientStore::open(profile.path());
        if (!store) {
            return {};
        }
        (void)store.value()->saveAccount(AccountInfo { QStringLiteral("ws://127.0.0.1:8765"),
            QStringLiteral("alice"), 1, QByteArrayLiteral("device-token") });
        IncomingMessage message;
        message.offset = 1;
        message.messageId = MessageId::generateAt(1'720'000'000'000).bytes();
        message.conversationId = QString::fromStdString(DirectConversation);
        message.seq = 1;
        message.sender = QStringLiteral("bob");
        message.body = QByteArrayLiteral("Hello, Alice");
        (void)store.value()->applyEvents({ message }, 1);
        (void)store.value()->enqueue(message.conversationId, QByteArrayLiteral("Hi, Bob"));
    }
    QFile file(QDir(profile.path()).filePath(QStringLiteral("ferry.db")));
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

} // namespace

int main(int argc, char** argv)
{
    QCoreApplication app(argc, argv);
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_fuzz_seeds <corpus folder>\n");
        return 2;
    }
    const QDir corpus(QString::fromLocal8Bit(argv[1]));
    for (const char* target : { "fuzz_server_frames", "fuzz_client_frames", "fuzz_stored_data" }) {
        corpus.mkpath(QLatin1String(target));
    }
    const QByteArray database = profileDatabase();
    const QDir stored(corpus.filePath(QStringLiteral("fuzz_stored_data")));
    const bool written
        = writeFrames(corpus.filePath(QStringLiteral("fuzz_server_frames")), serverFrames())
        && writeFrames(corpus.filePath(QStringLiteral("fuzz_client_frames")), clientFrames())
        && !database.isEmpty()
        && writeFile(stored.filePath(QStringLiteral("profile.db")), database)
        // The first page alone: the header is fine, every table is missing.
        && writeFile(stored.filePath(QStringLiteral("first-page.db")), database.left(4096));
    if (!written) {
        std::fprintf(stderr, "make_fuzz_seeds: could not write the corpus\n");
        return 1;
    }
    return 0;
}
