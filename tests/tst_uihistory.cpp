// The message model pages in history that only the server still has: when the local store holds
// nothing older and the conversation does not start with what it holds, the worker fetches the
// older entries from the real ferry-server and the model appends them in place.

#include "core/ClientStore.h"
#include "sync/SyncEngine.h"
#include "tests/support/Checks.h"
#include "tests/support/Ctl.h"
#include "tests/support/ServerProcess.h"
#include "ui/ChatSession.h"
#include "ui/MessageListModel.h"

#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace ferry::ui;

namespace {

const QString Conversation = QStringLiteral("direct:alice:bob");

QByteArray bodyOf(int number)
{
    return "message " + QByteArray::number(number);
}

} // namespace

class TestUiHistory : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void olderHistoryComesFromTheServer();

private:
    QTemporaryDir m_dir;
};

void TestUiHistory::olderHistoryComesFromTheServer()
{
    constexpr int Older = 300;
    QVERIFY(m_dir.isValid());
    ServerProcess server(m_dir.filePath(QStringLiteral("server")));
    QVERIFY2(server.start(), qPrintable(server.errorString()));
    const QString aliceDir = m_dir.filePath(QStringLiteral("alice"));
    const QString bobDir = m_dir.filePath(QStringLiteral("bob"));
    const CtlRun alice = Ctl(aliceDir, server.url()).registerUser(u"alice"_qs, u"laptop"_qs);
    QVERIFY2(alice.ok(), qPrintable(alice.describe()));
    const CtlRun bob = Ctl(bobDir, server.url()).registerUser(u"bob"_qs, u"desk"_qs);
    QVERIFY2(bob.ok(), qPrintable(bob.describe()));

    // bob writes 300 messages from a store of his own in this process.
    Result<std::unique_ptr<ClientStore>> bobStore = ClientStore::open(bobDir);
    QVERIFY2(bobStore, whyNot(bobStore).constData());
    for (int number = 1; number <= Older; ++number) {
        QVERIFY(bobStore.value()->enqueue(Conversation, bodyOf(number)));
    }
    SyncEngine bobEngine(bobStore.value().get());
    bobEngine.setServerUrl(server.url());
    bobEngine.start();
    QTRY_VERIFY_WITH_TIMEOUT(bobEngine.isIdle() && bobEngine.pendingCount() == 0, 30'000);

    // alice's device has applied her event log past those 300 without keeping them, as after
    // recovering a damaged profile: they are on the server only.
    {
        Result<std::unique_ptr<ClientStore>> aliceStore = ClientStore::open(aliceDir);
        QVERIFY2(aliceStore, whyNot(aliceStore).constData());
        QVERIFY(aliceStore.value()->applyEvents({}, Older));
    }

    // One more arrives while alice's app is running; that is all her store holds.
    ChatSession session(aliceDir, server.url());
    QTRY_COMPARE_WITH_TIMEOUT(session.connectionState(), QStringLiteral("Live"), 20'000);
    QVERIFY(bobStore.value()->enqueue(Conversation, bodyOf(Older + 1)));
    bobEngine.flushOutbox();
    QTRY_COMPARE_WITH_TIMEOUT(session.conversations()->rowCount(), 1, 20'000);

    MessageListModel* model = session.messages();
    QSignalSpy inserted(model, &QAbstractItemModel::rowsInserted);
    QSignalSpy reset(model, &QAbstractItemModel::modelReset);
    session.openConversation(Conversation);
    QTRY_COMPARE_WITH_TIMEOUT(model->rowCount(), MessageListModel::DefaultPageSize, 20'000);
    QCOMPARE(reset.size(), 1); // opening is the one reset
    QVERIFY(!model->isComplete());

    // Scrolling up: each page arrives as one insertion at the older end, from the store or,
    // where the store runs out, from the server first.
    while (!model->isComplete()) {
        const int before = model->rowCount();
        const qsizetype insertions = inserted.size();
        model->loadOlder();
        QVERIFY(model->isLoading());
        QTRY_VERIFY_WITH_TIMEOUT(!model->isLoading(), 20'000);
        if (model->rowCount() > before) {
            QCOMPARE(inserted.size(), insertions + 1);
            QCOMPARE(inserted.last().at(1).toInt(), before);
        }
    }
    QCOMPARE(model->rowCount(), Older + 1);
    for (int row = 0; row < model->rowCount(); ++row) {
        QCOMPARE(model->data(model->index(row), MessageListModel::TextRole).toString(),
            QString::fromUtf8(bodyOf(Older + 1 - row)));
    }
    QCOMPARE(reset.size(), 1);
    bobEngine.stop();
}

QTEST_MAIN(TestUiHistory)
#include "tst_uihistory.moc"
