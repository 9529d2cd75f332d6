// The app's list models against a real ClientStore in a temporary folder: new entries, state
// changes and cancellations change the rows in place (inserted, dataChanged, removed; never a
// reset), and older history arrives page by page through the worker thread.

#include "core/ClientStore.h"
#include "core/MessageId.h"
#include "tests/support/Checks.h"
#include "ui/ChatSession.h"
#include "ui/ConversationListModel.h"
#include "ui/MessageListModel.h"
#include "ui/Notifier.h"

#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace ferry;
using namespace ferry::test;
using namespace ferry::ui;

namespace {

const QString Conversation = QStringLiteral("direct:alice:bob");

IncomingMessage fromBob(quint64 seq, const QString& conversation = Conversation)
{
    IncomingMessage event;
    event.offset = seq;
    event.messageId = MessageId::generate().bytes();
    event.conversationId = conversation;
    event.seq = seq;
    event.sender = QStringLiteral("bob");
    event.body = "message " + QByteArray::number(seq);
    event.serverTimeMs = 1'700'000'000'000 + static_cast<qint64>(seq) * 1000;
    return event;
}

QString stateAt(const MessageListModel& model, int row)
{
    return model.data(model.index(row), MessageListModel::StateRole).toString();
}

} // namespace

class TestUiModels : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void ownMessagesAreInsertedAndUpdatedInPlace();
    void aMessageFromTheServerGoesBelowUnsentOnes();
    void cancelledMessagesAreRemoved();
    void conversationListMovesTheActiveConversationUp();
    void olderPagesAreAppendedThroughTheWorker();
    void aLateNumberMovesTheMessageToItsPlace();
    void whatNotifies_data();
    void whatNotifies();
    void withoutATrayNotificationsStayInTheWindow();
    void typingAndPresenceInWords();

private:
    /// Opens the model on Conversation and answers its first page from the store.
    void openModel(MessageListModel* model);

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<ClientStore> m_store;
};

void TestUiModels::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    Result<std::unique_ptr<ClientStore>> store = ClientStore::open(m_dir->path());
    QVERIFY2(store, whyNot(store).constData());
    m_store = std::move(store.value());
    AccountInfo account;
    account.serverUrl = QStringLiteral("ws://127.0.0.1:9");
    account.userName = QStringLiteral("alice");
    account.deviceId = 1;
    account.deviceToken = "token";
    QVERIFY(m_store->saveAccount(account));
}

void TestUiModels::cleanup()
{
    m_store.reset();
    m_dir.reset();
}

void TestUiModels::openModel(MessageListModel* model)
{
    QSignalSpy requested(model, &MessageListModel::pageRequested);
    model->open(Conversation, QStringLiteral("alice"), 0);
    QCOMPARE(requested.size(), 1);
    Result<QList<StoredMessage>> page
        = m_store->history(Conversation, std::numeric_limits<qint64>::max(), 50);
    QVERIFY(page);
    QList<StoredMessage> entries = page.value();
    Result<QList<StoredMessage>> unsent = m_store->unsentMessages();
    QVERIFY(unsent);
    entries.append(unsent.value());
    model->appendPage(requested.first().at(0).toULongLong(), Conversation, entries, true);
}

void TestUiModels::ownMessagesAreInsertedAndUpdatedInPlace()
{
    MessageListModel model;
    openModel(&model);
    QCOMPARE(model.rowCount(), 0);

    QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    QSignalSpy reset(&model, &QAbstractItemModel::modelReset);

    Result<StoredMessage> first = m_store->enqueue(Conversation, "hello");
    QVERIFY2(first, whyNot(first).constData());
    model.addEntries({ first.value() });
    QCOMPARE(inserted.size(), 1);
    QCOMPARE(inserted.first().at(1).toInt(), 0);
    QCOMPARE(stateAt(model, 0), QStringLiteral("queued"));
    QVERIFY(model.data(model.index(0), MessageListModel::CanCancelRole).toBool());
    QVERIFY(model.data(model.index(0), MessageListModel::OwnRole).toBool());

    // The server's acknowledgement: the same row changes state.
    QVERIFY(m_store->markSent(first->messageId, 1, 1'700'000'000'000));
    model.updateEntries({ *m_store->message(first->messageId) });
    QCOMPARE(changed.size(), 1);
    QCOMPARE(changed.first().at(0).toModelIndex().row(), 0);
    QCOMPARE(stateAt(model, 0), QStringLiteral("sent"));
    QVERIFY(!model.data(model.index(0), MessageListModel::CanCancelRole).toBool());

    // A refusal: the row shows why and offers a retry.
    Result<StoredMessage> second = m_store->enqueue(Conversation, "to nobody");
    QVERIFY(second);
    model.addEntries({ second.value() });
    QVERIFY(m_store->markFailed(second->messageId, QStringLiteral("there is no user bob")));
    model.updateEntries({ *m_store->message(second->messageId) });
    QCOMPARE(model.rowCount(), 2);
    QCOMPARE(stateAt(model, 0), QStringLiteral("failed"));
    QVERIFY(model.data(model.index(0), MessageListModel::CanRetryRole).toBool());
    QCOMPARE(model.data(model.index(0), MessageListModel::FailureReasonRole).toString(),
        QStringLiteral("there is no user bob"));

    // An update that changes nothing shown emits nothing.
    const qsizetype changesBefore = changed.size();
    model.updateEntries({ *m_store->message(first->messageId) });
    QCOMPARE(changed.size(), changesBefore);

    QCOMPARE(reset.size(), 0);
}

void TestUiModels::aMessageFromTheServerGoesBelowUnsentOnes()
{
    MessageListModel model;
    Result<StoredMessage> queued = m_store->enqueue(Conversation, "still offline");
    QVERIFY(queued);
    openModel(&model);
    QCOMPARE(model.rowCount(), 1);

    QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
    QSignalSpy reset(&model, &QAbstractItemModel::modelReset);
    Result<AppliedEvents> applied = m_store->applyEvents({ fromBob(1) }, 1);
    QVERIFY2(applied, whyNot(applied).constData());
    model.addEntries(applied->added);

    QCOMPARE(inserted.size(), 1);
    QCOMPARE(inserted.first().at(1).toInt(), 1); // below the queued message (row 0)
    QCOMPARE(stateAt(model, 0), QStringLiteral("queued"));
    QCOMPARE(stateAt(model, 1), QStringLiteral("received"));
    QCOMPARE(model.data(model.index(1), MessageListModel::SenderRole).toString(),
        QStringLiteral("bob"));
    QCOMPARE(reset.size(), 0);
}

void TestUiModels::cancelledMessagesAreRemoved()
{
    MessageListModel model;
    openModel(&model);
    Result<StoredMessage> queued = m_store->enqueue(Conversation, "never mind");
    QVERIFY(queued);
    model.addEntries({ queued.value() });

    QSignalSpy removed(&model, &QAbstractItemModel::rowsRemoved);
    QSignalSpy reset(&model, &QAbstractItemModel::modelReset);
    QVERIFY(m_store->cancel(queued->messageId));
    model.removeEntries({ queued->messageId });
    QCOMPARE(removed.size(), 1);
    QCOMPARE(model.rowCount(), 0);
    QCOMPARE(reset.size(), 0);
}

void TestUiModels::conversationListMovesTheActiveConversationUp()
{
    const QString withCarol = QStringLiteral("direct:alice:carol");
    QVERIFY(m_store->applyEvents({ fromBob(1), fromBob(2, withCarol) }, 2));
    Result<QList<ConversationSummary>> all = m_store->conversations();
    QVERIFY(all);

    ConversationListModel model;
    model.setSelfName(QStringLiteral("alice"));
    QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
    QSignalSpy moved(&model, &QAbstractItemModel::rowsMoved);
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    QSignalSpy reset(&model, &QAbstractItemModel::modelReset);
    model.upsert(all.value());
    QCOMPARE(inserted.size(), 2);
    QCOMPARE(model.data(model.index(0), ConversationListModel::NameRole).toString(),
        QStringLiteral("carol"));
    QCOMPARE(model.unreadTotal(), 2);

    // alice writes to bob: bob's conversation becomes the most recent and moves to the top.
    QVERIFY(m_store->enqueue(Conversation, "hi bob"));
    Result<ConversationSummary> bob = m_store->conversation(Conversation);
    QVERIFY(bob);
    model.upsert({ bob.value() });
    QCOMPARE(moved.size(), 1);
    QVERIFY(changed.size() >= 1);
    QCOMPARE(model.rowCount(), 2);
    QCOMPARE(model.data(model.index(0), ConversationListModel::NameRole).toString(),
        QStringLiteral("bob"));
    QCOMPARE(model.data(model.index(0), ConversationListModel::QueuedRole).toInt(), 1);
    QCOMPARE(model.data(model.index(0), ConversationListModel::LastTextRole).toString(),
        QStringLiteral("You: hi bob"));
    QCOMPARE(reset.size(), 0);
}

void TestUiModels::olderPagesAreAppendedThroughTheWorker()
{
    constexpr int Total = 120;
    QList<IncomingMessage> events;
    for (int seq = 1; seq <= Total; ++seq) {
        events.append(fromBob(static_cast<quint64>(seq)));
    }
    QVERIFY(m_store->applyEvents(events, Total));
    m_store.reset(); // the worker opens its own

    // Loopback port 9 (discard) refuses connections: the engine stays offline, which is fine.
    ChatSession session(m_dir->path(), QUrl(QStringLiteral("ws://127.0.0.1:9")));
    QTRY_COMPARE(session.phase(), ChatSession::Phase::SignedIn);
    QTRY_COMPARE(session.conversations()->rowCount(), 1);

    MessageListModel* model = session.messages();
    session.openConversation(Conversation);
    QTRY_COMPARE(model->rowCount(), MessageListModel::DefaultPageSize);
    QVERIFY(!model->isComplete());
    QCOMPARE(model->data(model->index(0), MessageListModel::TextRole).toString(),
        QStringLiteral("message 120"));

    QSignalSpy inserted(model, &QAbstractItemModel::rowsInserted);
    QSignalSpy reset(model, &QAbstractItemModel::modelReset);
    QVERIFY(model->canFetchMore({}));
    model->fetchMore({});
    QVERIFY(model->isLoading());
    QVERIFY(!model->canFetchMore({})); // one page at a time
    QTRY_COMPARE(model->rowCount(), 2 * MessageListModel::DefaultPageSize);
    QCOMPARE(inserted.size(), 1);
    QCOMPARE(inserted.first().at(1).toInt(), MessageListModel::DefaultPageSize);
    QCOMPARE(inserted.first().at(2).toInt(), 2 * MessageListModel::DefaultPageSize - 1);

    model->loadOlder();
    QTRY_COMPARE(model->rowCount(), Total);
    QTRY_VERIFY(model->isComplete());
    QCOMPARE(model->data(model->index(Total - 1), MessageListModel::TextRole).toString(),
        QStringLiteral("message 1"));
    QVERIFY(model->data(model->index(Total - 1), MessageListModel::ShowDayRole).toBool());
    QCOMPARE(reset.size(), 0);
}

void TestUiModels::aLateNumberMovesTheMessageToItsPlace()
{
    Result<StoredMessage> late = m_store->enqueue(Conversation, "written first");
    QVERIFY(late);
    Result<StoredMessage> failed = m_store->enqueue(Conversation, "refused");
    QVERIFY(failed);
    MessageListModel model;
    openModel(&model);
    QCOMPARE(model.rowCount(), 2);

    QSignalSpy moved(&model, &QAbstractItemModel::rowsMoved);
    QSignalSpy reset(&model, &QAbstractItemModel::modelReset);
    Result<AppliedEvents> applied = m_store->applyEvents({ fromBob(2), fromBob(3) }, 3);
    QVERIFY(applied);
    model.addEntries(applied->added);
    QVERIFY(m_store->markFailed(failed->messageId, QStringLiteral("too long")));
    model.updateEntries({ *m_store->message(failed->messageId) });
    QCOMPARE(moved.size(), 0);

    // The server had numbered the first message 1, before bob's: its ack comes late.
    QVERIFY(m_store->markSent(late->messageId, 1, 1'700'000'000'500));
    model.updateEntries({ *m_store->message(late->messageId) });
    QCOMPARE(moved.size(), 1);
    QCOMPARE(moved.first().at(1).toInt(), 1); // from row 1 (below the failed one)
    QCOMPARE(moved.first().at(4).toInt(), 4); // to the oldest end, below bob's two

    // The rows read as the store's history does (as `ferryctl history` prints it), newest first.
    Result<QList<StoredMessage>> history = m_store->history(Conversation);
    QVERIFY(history);
    QList<QByteArray> expected;
    for (const StoredMessage& entry : history.value()) {
        expected.prepend(entry.messageId);
    }
    Result<QList<StoredMessage>> unsent = m_store->unsentMessages();
    QVERIFY(unsent);
    for (const StoredMessage& entry : unsent.value()) {
        if (!expected.contains(entry.messageId)) {
            expected.prepend(entry.messageId);
        }
    }
    QList<QByteArray> rows;
    for (int row = 0; row < model.rowCount(); ++row) {
        rows.append(model.messageIdAt(row));
    }
    QCOMPARE(rows, expected);
    QCOMPARE(model.messageIdAt(3), late->messageId);
    QVERIFY(model.data(model.index(3), MessageListModel::ShowDayRole).toBool());
    QCOMPARE(reset.size(), 0);
}

void TestUiModels::whatNotifies_data()
{
    QTest::addColumn<QString>("sender");
    QTest::addColumn<bool>("membership");
    QTest::addColumn<QString>("onScreen");
    QTest::addColumn<bool>("windowActive");
    QTest::addColumn<bool>("notifies");

    const QString other = QStringLiteral("direct:alice:carol");
    QTest::newRow("bob writes in a conversation not on screen")
        << "bob" << false << other << true << true;
    QTest::newRow("bob writes with no conversation open") << "bob" << false << "" << true << true;
    QTest::newRow("bob writes in the conversation on screen")
        << "bob" << false << Conversation << true << false;
    QTest::newRow("bob writes on screen while the window is in the background")
        << "bob" << false << Conversation << false << true;
    QTest::newRow("alice's own message from her other device")
        << "alice" << false << other << false << false;
    QTest::newRow("a member was added") << "bob" << true << other << false << false;
}

void TestUiModels::whatNotifies()
{
    QFETCH(QString, sender);
    QFETCH(bool, membership);
    QFETCH(QString, onScreen);
    QFETCH(bool, windowActive);
    QFETCH(bool, notifies);

    StoredMessage entry;
    entry.conversationId = Conversation;
    entry.sender = sender;
    entry.kind = membership ? EntryKind::Membership : EntryKind::Message;
    QCOMPARE(shouldNotify(entry, QStringLiteral("alice"), onScreen, windowActive), notifies);
}

void TestUiModels::withoutATrayNotificationsStayInTheWindow()
{
    QVERIFY(m_store->applyEvents({ fromBob(1) }, 1));
    m_store.reset();
    ChatSession session(m_dir->path(), QUrl(QStringLiteral("ws://127.0.0.1:9")));
    TrayNotifier notifier(&session);
    QVERIFY(!notifier.isActive()); // offscreen: no system tray
    QVERIFY(!session.hasDesktopNotifications());
    QTRY_COMPARE(session.phase(), ChatSession::Phase::SignedIn);
}

void TestUiModels::typingAndPresenceInWords()
{
    QCOMPARE(ChatSession::typingTextFor({}), QString());
    QCOMPARE(ChatSession::typingTextFor({ u"bob"_qs }), QStringLiteral("bob is typing…"));
    QCOMPARE(ChatSession::typingTextFor({ u"bob"_qs, u"carol"_qs }),
        QStringLiteral("bob and carol are typing…"));
    QCOMPARE(ChatSession::typingTextFor({ u"bob"_qs, u"carol"_qs, u"dave"_qs }),
        QStringLiteral("3 people are typing…"));

    const QDateTime now = QDateTime::currentDateTime();
    QCOMPARE(ChatSession::presenceTextFor(true, {}, now), QStringLiteral("online"));
    QCOMPARE(ChatSession::presenceTextFor(false, {}, now), QString());
    const QDateTime earlier(now.date(), QTime(0, 5));
    QCOMPARE(ChatSession::presenceTextFor(false, earlier, now),
        QStringLiteral("last seen ") + shortTime(earlier));
    QVERIFY(ChatSession::presenceTextFor(false, earlier.addDays(-3), now)
                .endsWith(shortTime(earlier)));
}

QTEST_MAIN(TestUiModels)
#include "tst_uimodels.moc"
