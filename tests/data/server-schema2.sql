-- A server database at schema 2, as the server before schema 3 wrote it: users alice, bob and
-- carol; three direct messages between alice and bob; a group of the three with one message; bob's
-- read receipt. tst_server_store_migration opens it with the current store.
-- Made by SqliteServerStore at schema 2 and dumped with Python's sqlite3 iterdump.
BEGIN TRANSACTION;
CREATE TABLE conversations ( id TEXT PRIMARY KEY, kind INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, title TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
INSERT INTO "conversations" VALUES('direct:alice:bob',1,3,1796445928670,'');
INSERT INTO "conversations" VALUES('group:3f0c1d2e-0000-4000-8000-00000000abcd',2,2,1796445928671,'trip');
CREATE TABLE devices ( id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id), name TEXT NOT NULL, token_hash BLOB NOT NULL, created_ms INTEGER NOT NULL, removed_ms INTEGER);
CREATE TABLE "events" ( user_id INTEGER NOT NULL, log_offset INTEGER NOT NULL, kind INTEGER NOT NULL, ref INTEGER NOT NULL, PRIMARY KEY (user_id, log_offset)) WITHOUT ROWID;
INSERT INTO "events" VALUES(1,1,1,1);
INSERT INTO "events" VALUES(1,2,1,2);
INSERT INTO "events" VALUES(1,3,1,3);
INSERT INTO "events" VALUES(1,4,2,4);
INSERT INTO "events" VALUES(1,5,1,5);
INSERT INTO "events" VALUES(1,6,3,1);
INSERT INTO "events" VALUES(2,1,1,1);
INSERT INTO "events" VALUES(2,2,1,2);
INSERT INTO "events" VALUES(2,3,1,3);
INSERT INTO "events" VALUES(2,4,2,4);
INSERT INTO "events" VALUES(2,5,1,5);
INSERT INTO "events" VALUES(2,6,3,1);
INSERT INTO "events" VALUES(3,1,2,4);
INSERT INTO "events" VALUES(3,2,1,5);
CREATE TABLE members ( conversation_id TEXT NOT NULL REFERENCES conversations (id), user_id INTEGER NOT NULL REFERENCES users (id), PRIMARY KEY (conversation_id, user_id)) WITHOUT ROWID;
INSERT INTO "members" VALUES('direct:alice:bob',1);
INSERT INTO "members" VALUES('group:3f0c1d2e-0000-4000-8000-00000000abcd',1);
INSERT INTO "members" VALUES('direct:alice:bob',2);
INSERT INTO "members" VALUES('group:3f0c1d2e-0000-4000-8000-00000000abcd',2);
INSERT INTO "members" VALUES('group:3f0c1d2e-0000-4000-8000-00000000abcd',3);
CREATE TABLE messages ( id INTEGER PRIMARY KEY, message_id BLOB NOT NULL UNIQUE, conversation_id TEXT NOT NULL REFERENCES conversations (id), seq INTEGER NOT NULL, sender_user_id INTEGER NOT NULL REFERENCES users (id), sender_device_id INTEGER NOT NULL, body BLOB NOT NULL, server_time_ms INTEGER NOT NULL, kind INTEGER NOT NULL DEFAULT 0, UNIQUE (conversation_id, seq));
INSERT INTO "messages" VALUES(1,X'01A244857CDE7CE5B0B5127BDEA52873','direct:alice:bob',1,1,1,X'6F6E65',1796445928670,0);
INSERT INTO "messages" VALUES(2,X'01A244857CDE7223B2A3C811371214EE','direct:alice:bob',2,2,1,X'74776F',1796445928671,0);
INSERT INTO "messages" VALUES(3,X'01A244857CDF71FC91EEA7CC662F71C2','direct:alice:bob',3,1,1,X'7468726565',1796445928671,0);
INSERT INTO "messages" VALUES(4,X'01A244857CDF7FEA8D89321CEF2BE39C','group:3f0c1d2e-0000-4000-8000-00000000abcd',1,1,0,X'7B22616374696F6E223A2263726561746564222C226163746F72223A22616C696365222C226D656D62657273223A5B22616C696365222C22626F62222C226361726F6C225D2C227375626A65637473223A5B22626F62222C226361726F6C225D2C227469746C65223A2274726970227D',1796445928671,1);
INSERT INTO "messages" VALUES(5,X'01A244857CE071A283707C3BAAEF77C7','group:3f0c1d2e-0000-4000-8000-00000000abcd',2,3,1,X'68656C6C6F20616C6C',1796445928672,0);
CREATE TABLE receipt_log ( id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, user_id INTEGER NOT NULL, device_id INTEGER NOT NULL, kind INTEGER NOT NULL, up_to_seq INTEGER NOT NULL, created_ms INTEGER NOT NULL);
INSERT INTO "receipt_log" VALUES(1,'direct:alice:bob',2,1,2,3,1796445928672);
CREATE TABLE receipts ( conversation_id TEXT NOT NULL REFERENCES conversations (id), user_id INTEGER NOT NULL REFERENCES users (id), delivered_seq INTEGER NOT NULL DEFAULT 0, read_seq INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (conversation_id, user_id)) WITHOUT ROWID;
INSERT INTO "receipts" VALUES('direct:alice:bob',2,3,3);
CREATE TABLE users ( id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, last_offset INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);
INSERT INTO "users" VALUES(1,'alice','not-a-real-hash',6,1796445928669);
INSERT INTO "users" VALUES(2,'bob','not-a-real-hash',6,1796445928669);
INSERT INTO "users" VALUES(3,'carol','not-a-real-hash',2,1796445928670);
CREATE INDEX members_by_user ON members (user_id, conversation_id);
COMMIT;
PRAGMA application_id = 1179800406;
PRAGMA user_version = 2;
