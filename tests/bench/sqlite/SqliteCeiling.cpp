// ferry-sqlite-ceiling: the most durable direct messages per second SQLite itself can take on
// this disk, the ceiling for the server's commit path. It writes the rows the server writes for
// one direct message (SqliteServerStore::appendMessage: the dedup lookup by message id, the
// conversation and its members read, the conversation's sequence number advanced, the message
// row, and for each of the two members the event-log offset advanced and the event row), with
// the same durability settings (WAL, synchronous = FULL, foreign keys on), through the plain
// SQLite C API with prepared statements and no Qt in between.
//
// It measures two commit policies: one transaction per message (what the server does today),
// and one transaction per batch of messages (what a group commit can reach).
//
// Usage: ferry-sqlite-ceiling --dir DIR [--seconds S] [--batch N] [--users N] [--json FILE]

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <sqlite3.h>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

bool exec(sqlite3* db, const char* sql)
{
    char* error = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
        std::fprintf(stderr, "ferry-sqlite-ceiling: %s: %s\n", sql, error ? error : "?");
        sqlite3_free(error);
        return false;
    }
    return true;
}

sqlite3_stmt* prepare(sqlite3* db, const char* sql)
{
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr)
        != SQLITE_OK) {
        std::fprintf(stderr, "ferry-sqlite-ceiling: %s: %s\n", sql, sqlite3_errmsg(db));
    }
    return statement;
}

/// The server's schema (version 2) as far as a direct message touches it.
const char* const Schema = R"(
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    last_offset INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);
CREATE TABLE conversations (id TEXT PRIMARY KEY, kind INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,
    title TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE members (conversation_id TEXT NOT NULL REFERENCES conversations (id),
    user_id INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (conversation_id, user_id)) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (user_id, conversation_id);
CREATE TABLE messages (id INTEGER PRIMARY KEY, message_id BLOB NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id), seq INTEGER NOT NULL,
    sender_user_id INTEGER NOT NULL REFERENCES users (id), sender_device_id INTEGER NOT NULL,
    body BLOB NOT NULL, server_time_ms INTEGER NOT NULL, kind INTEGER NOT NULL DEFAULT 0,
    UNIQUE (conversation_id, seq));
CREATE TABLE events (user_id INTEGER NOT NULL, log_offset INTEGER NOT NULL,
    kind INTEGER NOT NULL, ref INTEGER NOT NULL, PRIMARY KEY (user_id, log_offset)) WITHOUT ROWID;
)";

struct Statements {
    sqlite3_stmt* lookup;
    sqlite3_stmt* conversation;
    sqlite3_stmt* members;
    sqlite3_stmt* advanceSeq;
    sqlite3_stmt* insertMessage;
    sqlite3_stmt* bumpOffset;
    sqlite3_stmt* insertEvent;
};

bool step(sqlite3_stmt* statement, bool wantRow = false)
{
    const int rc = sqlite3_step(statement);
    return wantRow ? rc == SQLITE_ROW : (rc == SQLITE_DONE || rc == SQLITE_ROW);
}

/// One direct message from user `from` to `to`, the rows and reads of appendMessage.
bool writeMessage(Statements& s, std::mt19937_64& random, int from, int to, const std::string& body)
{
    unsigned char id[16];
    for (int i = 0; i < 16; i += 8) {
        const uint64_t r = random();
        std::memcpy(id + i, &r, 8);
    }
    const std::string conversation = "direct:u" + std::to_string(std::min(from, to)) + ":u"
        + std::to_string(std::max(from, to));
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch())
                         .count();

    sqlite3_bind_blob(s.lookup, 1, id, 16, SQLITE_STATIC);
    const bool known = sqlite3_step(s.lookup) == SQLITE_ROW;
    sqlite3_reset(s.lookup);
    if (known) {
        return false;
    }
    sqlite3_bind_text(s.conversation, 1, conversation.c_str(), -1, SQLITE_STATIC);
    if (!step(s.conversation, true)) {
        return false;
    }
    const int64_t seq = sqlite3_column_int64(s.conversation, 1) + 1;
    sqlite3_reset(s.conversation);
    sqlite3_bind_text(s.members, 1, conversation.c_str(), -1, SQLITE_STATIC);
    std::vector<int64_t> memberIds;
    while (sqlite3_step(s.members) == SQLITE_ROW) {
        memberIds.push_back(sqlite3_column_int64(s.members, 1));
    }
    sqlite3_reset(s.members);

    sqlite3_bind_int64(s.advanceSeq, 1, seq);
    sqlite3_bind_text(s.advanceSeq, 2, conversation.c_str(), -1, SQLITE_STATIC);
    const bool advanced = step(s.advanceSeq);
    sqlite3_reset(s.advanceSeq);

    sqlite3_bind_blob(s.insertMessage, 1, id, 16, SQLITE_STATIC);
    sqlite3_bind_text(s.insertMessage, 2, conversation.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s.insertMessage, 3, seq);
    sqlite3_bind_int64(s.insertMessage, 4, from);
    sqlite3_bind_int64(s.insertMessage, 5, from);
    sqlite3_bind_blob(s.insertMessage, 6, body.data(), int(body.size()), SQLITE_STATIC);
    sqlite3_bind_int64(s.insertMessage, 7, now);
    const bool inserted = step(s.insertMessage);
    sqlite3_reset(s.insertMessage);
    const int64_t ref = sqlite3_last_insert_rowid(sqlite3_db_handle(s.insertMessage));
    if (!advanced || !inserted) {
        return false;
    }

    for (const int64_t member : memberIds) {
        sqlite3_bind_int64(s.bumpOffset, 1, member);
        if (!step(s.bumpOffset, true)) {
            return false;
        }
        const int64_t offset = sqlite3_column_int64(s.bumpOffset, 0);
        sqlite3_reset(s.bumpOffset);
        sqlite3_bind_int64(s.insertEvent, 1, member);
        sqlite3_bind_int64(s.insertEvent, 2, offset);
        sqlite3_bind_int64(s.insertEvent, 3, ref);
        const bool appended = step(s.insertEvent);
        sqlite3_reset(s.insertEvent);
        if (!appended) {
            return false;
        }
    }
    return true;
}

struct Measured {
    double messagesPerSecond = 0;
    long messages = 0;
};

Measured measure(sqlite3* db, Statements& s, int users, int batch, double seconds)
{
    std::mt19937_64 random(42 + batch);
    const std::string body(100, 'x');
    Measured measured;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    int from = 0;
    while (Clock::now() < end) {
        if (!exec(db, "BEGIN IMMEDIATE")) {
            break;
        }
        for (int i = 0; i < batch; ++i) {
            // Pairs (0,1), (2,3), ... take turns, both ways, like the load generator's users.
            const int to = from ^ 1;
            if (writeMessage(s, random, from + 1, to + 1, body)) {
                ++measured.messages;
            }
            from = (from + 1) % users;
        }
        if (!exec(db, "COMMIT")) {
            break;
        }
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    measured.messagesPerSecond = double(measured.messages) / elapsed;
    return measured;
}

} // namespace

int main(int argc, char* argv[])
{
    std::string dir = ".";
    std::string jsonPath;
    double seconds = 5;
    int batch = 100;
    int users = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string name = argv[i];
        const std::string value = argv[i + 1];
        if (name == "--dir") {
            dir = value;
        } else if (name == "--seconds") {
            seconds = std::stod(value);
        } else if (name == "--batch") {
            batch = std::stoi(value);
        } else if (name == "--users") {
            users = std::stoi(value) & ~1;
        } else if (name == "--json") {
            jsonPath = value;
        }
    }

    const std::string path = dir + "/ceiling.db";
    std::remove(path.c_str());
    std::remove((path + "-wal").c_str());
    std::remove((path + "-shm").c_str());
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
        std::fprintf(stderr, "ferry-sqlite-ceiling: cannot open %s\n", path.c_str());
        return 1;
    }
    // The server's settings (core/SqlSupport.cpp).
    if (!exec(db, "PRAGMA journal_mode = WAL") || !exec(db, "PRAGMA synchronous = FULL")
        || !exec(db, "PRAGMA foreign_keys = ON") || !exec(db, Schema)) {
        return 1;
    }

    // The users and their direct conversations exist already, as they would after a warm-up.
    exec(db, "BEGIN");
    for (int u = 1; u <= users; ++u) {
        const std::string sql = "INSERT INTO users (id, name, password_hash, created_ms) VALUES ("
            + std::to_string(u) + ", 'u" + std::to_string(u) + "', 'x', 0)";
        exec(db, sql.c_str());
    }
    for (int u = 1; u <= users; u += 2) {
        const std::string id = "'direct:u" + std::to_string(u) + ":u" + std::to_string(u + 1) + "'";
        exec(db,
            ("INSERT INTO conversations (id, kind, created_ms) VALUES (" + id + ", 0, 0)").c_str());
        exec(db, ("INSERT INTO members VALUES (" + id + ", " + std::to_string(u) + ")").c_str());
        exec(
            db, ("INSERT INTO members VALUES (" + id + ", " + std::to_string(u + 1) + ")").c_str());
    }
    exec(db, "COMMIT");

    Statements s {
        prepare(db,
            "SELECT conversation_id, seq, sender_user_id, server_time_ms FROM messages "
            "WHERE message_id = ?"),
        prepare(db, "SELECT title, last_seq FROM conversations WHERE id = ?"),
        prepare(db,
            "SELECT u.name, u.id FROM members m JOIN users u ON u.id = m.user_id "
            "WHERE m.conversation_id = ? ORDER BY u.name"),
        prepare(db, "UPDATE conversations SET last_seq = ? WHERE id = ?"),
        prepare(db,
            "INSERT INTO messages (message_id, conversation_id, seq, sender_user_id, "
            "sender_device_id, body, server_time_ms, kind) VALUES (?, ?, ?, ?, ?, ?, ?, 0)"),
        prepare(db,
            "UPDATE users SET last_offset = last_offset + 1 WHERE id = ? "
            "RETURNING last_offset"),
        prepare(db, "INSERT INTO events (user_id, log_offset, kind, ref) VALUES (?, ?, 1, ?)"),
    };

    const Measured single = measure(db, s, users, 1, seconds);
    const Measured batched = measure(db, s, users, batch, seconds);
    std::printf("sqlite ceiling (WAL, synchronous=FULL, %d users, 100-byte bodies):\n"
                "  one transaction per message:   %.0f messages/s (%ld in %.0f s)\n"
                "  one transaction per %d:        %.0f messages/s (%ld in %.0f s)\n",
        users, single.messagesPerSecond, single.messages, seconds, batch, batched.messagesPerSecond,
        batched.messages, seconds);
    if (!jsonPath.empty()) {
        if (FILE* json = std::fopen(jsonPath.c_str(), "w")) {
            std::fprintf(json,
                "{\n  \"scenario\": \"sqlite-ceiling\",\n  \"users\": %d,\n  \"seconds\": %.1f,\n"
                "  \"per_message_commit_per_second\": %.0f,\n  \"batch\": %d,\n"
                "  \"batched_commit_per_second\": %.0f\n}\n",
                users, seconds, single.messagesPerSecond, batch, batched.messagesPerSecond);
            std::fclose(json);
        }
    }
    sqlite3_close(db);
    return 0;
}
