#pragma once

#include "core/ClientStore.h"

#include <QAbstractListModel>
#include <QDateTime>
#include <QtQml/qqmlregistration.h>

namespace ferry::ui {

/// The entries of the conversation on screen, newest first (row 0 is the newest, so a view laid
/// out bottom to top grows upwards as older pages arrive at the end). Updated in place: new
/// entries are inserted, changed states emit dataChanged, cancelled messages are removed, an own
/// message numbered behind newer entries is moved to its place; the model is reset only when
/// another conversation is opened.
///
/// Pages come from the worker thread: fetchMore() asks for one through the `pageRequested`
/// signal and appendPage() takes the answer. Roles that depend on the neighbouring entry (a day
/// separator, the start of a run of one sender's messages) are worked out here, so that the
/// QML only lays them out.
class MessageListModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("Owned by ChatSession")
    Q_PROPERTY(QString conversationId READ conversationId NOTIFY conversationChanged)
    Q_PROPERTY(bool loading READ isLoading NOTIFY loadingChanged)
    Q_PROPERTY(bool complete READ isComplete NOTIFY loadingChanged)
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
public:
    enum Role {
        MessageIdRole = Qt::UserRole + 1,
        TextRole,
        SenderRole,
        OwnRole,
        StateRole,       ///< "queued", "sent", "delivered", "read", "received", "failed"
        StateLabelRole,  ///< the state in words, for own messages
        FailureReasonRole,
        TimeTextRole,
        DayLabelRole,
        ShowDayRole,     ///< a day separator goes above this entry
        FirstInGroupRole, ///< the first (oldest) of a run by one sender: the name goes above it
        MembershipRole,  ///< a change of members, shown as a line of its own
        NewMarkerRole,   ///< the first entry that was unread when the conversation was opened
        CanCancelRole,
        CanRetryRole,
    };
    Q_ENUM(Role)

    static constexpr int DefaultPageSize = 50;

    explicit MessageListModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;
    bool canFetchMore(const QModelIndex& parent) const override;
    void fetchMore(const QModelIndex& parent) override;

    QString conversationId() const { return m_conversationId; }
    bool isLoading() const { return m_loading; }
    bool isComplete() const { return m_complete; }
    void setPageSize(int size) { m_pageSize = size; }

    /// Empties the model for `conversationId` (the only reset) and asks for its newest page.
    /// `selfName` tells own messages apart; `readSeq` places the "new messages" marker.
    void open(const QString& conversationId, const QString& selfName, quint64 readSeq);
    void close();

    /// The answer to pageRequested; ignored unless it answers the latest request.
    void appendPage(quint64 token, const QString& conversationId,
        const QList<ferry::StoredMessage>& entries, bool complete);
    /// Entries stored for the first time; those of other conversations are ignored.
    void addEntries(const QList<ferry::StoredMessage>& entries);
    /// Entries whose state may have changed; only rows that differ emit dataChanged.
    void updateEntries(const QList<ferry::StoredMessage>& entries);
    void removeEntries(const QList<QByteArray>& messageIds);

    /// Loads the next older page if there is one and none is on its way (for views that do
    /// not call fetchMore themselves).
    Q_INVOKABLE void loadOlder();
    /// The message id (raw bytes) of a row, empty when out of range.
    QByteArray messageIdAt(int row) const;
    int rowOf(const QByteArray& messageId) const;
    const StoredMessage& entryAt(int row) const { return m_entries.at(row); }

Q_SIGNALS:
    void conversationChanged();
    void loadingChanged();
    void countChanged();
    void pageRequested(quint64 token, const QString& conversationId, quint64 beforeSeq, int limit);

private:
    bool isOwn(const StoredMessage& entry) const;
    bool showsDay(int row) const;
    bool firstInGroup(int row) const;
    bool isNewMarker(int row) const;
    quint64 oldestSeq() const;
    /// Where `entry` belongs among the rows held (the row it would be inserted at).
    int rowFor(const ferry::StoredMessage& entry) const;
    /// Moves the entry at `row` to where its (new) sequence number puts it, if that differs.
    void moveToPlace(int row);
    void notifyNeighbours(int row);

    QString m_conversationId;
    QString m_selfName;
    quint64 m_readSeqAtOpen = 0;
    QList<StoredMessage> m_entries; ///< newest first
    bool m_loading = false;
    bool m_complete = true;
    quint64 m_pageToken = 0;
    int m_pageSize = DefaultPageSize;
};

/// When an entry happened, for display: the server's time once it has one, else the time this
/// device wrote it.
QDateTime entryTime(const StoredMessage& entry);

/// A time of day as the locale writes it, without seconds.
QString shortTime(const QDateTime& time);

} // namespace ferry::ui
