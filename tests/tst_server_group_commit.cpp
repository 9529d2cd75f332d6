// The server stores the SendMessages that arrive together in one transaction (group commit).
// When a statement fails in a way that makes SQLite roll the whole transaction back (a full
// disk, an I/O error), the messages of that batch must all be answered with the error and none
// stored: an acknowledged message that is not stored would be lost, and a stored one that was
// refused is held back from its recipients' live connections. A trigger that raises ROLLBACK on
// one body stands in for the full disk, which strikes at no predictable message.

#include "core/ConversationId.h"
#include "core/MessageId.h"
#include "tests/support/ProtocolClient.h"
#include "tests/support/ServerProcess.h"
#include "tests/support/SqliteFile.h"

#include <QDir>
#include <QSqlError>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

#include "ferry.pb.h"

using namespace ferry;
using namespace ferry::test;
using namespace Qt::StringLiterals;

class TestServerGroupCommit : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void aBatchThatSQLiteRolledBackIsRefusedWholeAndStoredNowhere()
    {
        QTemporaryDir root;
        QVERIFY(root.isValid());
        ServerProcess server(root.filePath(u"server"_s));
        QVERIFY2(server.start(), qPrintable(server.errorString()));
        {
            ProtocolClient alice(server.url());
            QVERIFY(alice.registerUser(u"alice"_s) != 0);
            ProtocolClient bob(server.url());
            QVERIFY(bob.registerUser(u"bob"_s) != 0);
        }
        QVERIFY2(server.stop(), qPrintable(server.errorString()));
        QVERIFY(poisonTheMessagesTable(QDir(server.dataDir()).filePath(u"server.db"_s)));
        QVERIFY2(server.start(), qPrintable(server.errorString()));

        ProtocolClient alice(server.url());
        QVERIFY(alice.login(u"alice"_s) != 0);
        const QString conversation = directConversationId(u"alice"_s, u"bob"_s);
        // Written back to back without returning to the event loop, they leave in one segment and
        // the server reads them in one pass: one group commit.
        const QList<QByteArray> bodies { "before", "poison", "after" };
        QList<QByteArray> ids;
        QList<quint64> requests;
        for (const QByteArray& body : bodies) {
            ids.append(MessageId::generate().bytes());
            v1::Envelope envelope;
            v1::SendMessage* send = envelope.mutable_send();
            send->set_message_id(ids.last().toStdString());
            send->set_conversation_id(conversation.toStdString());
            send->set_body(body.toStdString());
            requests.append(alice.send(envelope));
        }
        QList<bool> acknowledged;
        for (const quint64 request : requests) {
            v1::Envelope answer;
            QVERIFY2(alice.reply(request, &answer), "a SendMessage was not answered");
            QVERIFY2(answer.has_send_ack() || answer.has_error(), answer.DebugString().c_str());
            acknowledged.append(answer.has_send_ack());
        }
        QVERIFY2(!acknowledged[1], "the poisoned message was acknowledged");

        ProtocolClient bob(server.url());
        QVERIFY(bob.login(u"bob"_s) != 0);
        QList<v1::Event> events;
        QVERIFY(bob.syncAll(&events));
        QList<QByteArray> stored;
        for (const v1::Event& event : events) {
            if (event.has_message()) {
                stored.append(QByteArray::fromStdString(event.message().message_id()));
            }
        }
        for (qsizetype i = 0; i < bodies.size(); ++i) {
            QVERIFY2(acknowledged[i] == stored.contains(ids[i]),
                qPrintable(u"message \""_s + QString::fromLatin1(bodies[i]) + u"\" was "_s
                    + (acknowledged[i] ? u"acknowledged"_s : u"refused"_s) + u" but "_s
                    + (stored.contains(ids[i]) ? u"stored"_s : u"not stored"_s)));
        }
        QVERIFY2(server.stop(), qPrintable(server.errorString()));
    }

private:
    /// A trigger that rolls the whole transaction back when the body "poison" is inserted,
    /// as SQLite does by itself on a full disk or an I/O error.
    static bool poisonTheMessagesTable(const QString& path)
    {
        const SqliteFile file(path);
        if (!file.isOpen()) {
            qWarning() << file.openError();
            return false;
        }
        QSqlQuery query(file.database());
        const bool done = query.exec(u"CREATE TRIGGER poison BEFORE INSERT ON messages"
                                     " WHEN NEW.body = CAST('poison' AS BLOB)"
                                     " BEGIN SELECT RAISE(ROLLBACK, 'poisoned'); END"_s);
        if (!done) {
            qWarning() << query.lastError().text();
        }
        return done;
    }
};

QTEST_GUILESS_MAIN(TestServerGroupCommit)
#include "tst_server_group_commit.moc"
