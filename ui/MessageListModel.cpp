#include "ui/MessageListModel.h"

#include "core/Logging.h"
#include "core/MessageId.h"

#include <QDateTime>
#include <QLocale>

namespace ferry::ui {

namespace {

    bool sameDay(const QDateTime& a, const QDateTime& b)
    {
        return a.toLocalTime().date() == b.toLocalTime().date();
    }

    QString dayLabel(const QDateTime& time)
    {
        const QDate day = time.toLocalTime().date();
        const QDate today = QDate::currentDate();
        if (day == today) {
            return MessageListModel::tr("Today");
        }
        if (day == today.addDays(-1)) {
            return MessageListModel::tr("Yesterday");
        }
        return QLocale().toString(day, QLocale::LongFormat);
    }

    QString stateLabel(MessageState state)
    {
        switch (state) {
        case MessageState::Queued:
            return MessageListModel::tr("Waiting to send");
        case MessageState::Sent:
            return MessageListModel::tr("Sent");
        case MessageState::Delivered:
            return MessageListModel::tr("Delivered");
        case MessageState::Read:
            return MessageListModel::tr("Read");
        case MessageState::Failed:
            return MessageListModel::tr("Not sent");
        case MessageState::Received:
            break;
        }
        return {};
    }

    bool sameShown(const StoredMessage& a, const StoredMessage& b)
    {
        return a.state == b.state && a.seq == b.seq && a.serverTimeMs == b.serverTimeMs
            && a.failureReason == b.failureReason && a.body == b.body;
    }

    /// Display order, as the store's history() gives it: by sequence number, and the unsent
    /// (which have none yet) newest of all, in the order they were written.
    bool isNewer(const StoredMessage& a, const StoredMessage& b)
    {
        if (a.seq && b.seq) {
            return *a.seq > *b.seq;
        }
        if (!a.seq && !b.seq) {
            return a.localId > b.localId;
        }
        return !a.seq;
    }

} // namespace

QString shortTime(const QDateTime& time)
{
    // Hours and minutes: some locales' short format still carries seconds, which only clutter
    // a chat.
    QString format = QLocale().timeFormat(QLocale::ShortFormat);
    format.remove(QStringLiteral(":ss"));
    return QLocale().toString(time.toLocalTime().time(), format);
}

QDateTime entryTime(const StoredMessage& entry)
{
    return QDateTime::fromMSecsSinceEpoch(entry.serverTimeMs.value_or(entry.writtenMs));
}

MessageListModel::MessageListModel(QObject* parent)
    : QAbstractListModel(parent)
{
}

int MessageListModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_entries.size());
}

QVariant MessageListModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) {
        qCWarning(lcUi) << "MessageListModel was asked for an invalid index" << index;
        return {};
    }
    const int row = index.row();
    const StoredMessage& entry = m_entries.at(row);
    const bool own = isOwn(entry);

    switch (role) {
    case MessageIdRole: {
        const std::optional<MessageId> id = MessageId::fromBytes(entry.messageId);
        return id ? id->toString() : QString();
    }
    case Qt::DisplayRole:
    case TextRole:
        return describeEntry(entry);
    case SenderRole:
        return entry.sender;
    case OwnRole:
        return own;
    case StateRole:
        return messageStateName(entry.state);
    case StateLabelRole:
        return own ? stateLabel(entry.state) : QString();
    case FailureReasonRole:
        return entry.failureReason;
    case TimeTextRole:
        return shortTime(entryTime(entry));
    case DayLabelRole:
        return dayLabel(entryTime(entry));
    case ShowDayRole:
        return showsDay(row);
    case FirstInGroupRole:
        return firstInGroup(row);
    case MembershipRole:
        return entry.kind == EntryKind::Membership;
    case NewMarkerRole:
        return isNewMarker(row);
    case CanCancelRole:
        return own && (entry.state == MessageState::Queued || entry.state == MessageState::Failed);
    case CanRetryRole:
        return own && entry.state == MessageState::Failed;
    default:
        return {};
    }
}

QHash<int, QByteArray> MessageListModel::roleNames() const
{
    return {
        { MessageIdRole, "messageId" },
        { TextRole, "text" },
        { SenderRole, "sender" },
        { OwnRole, "own" },
        { StateRole, "state" },
        { StateLabelRole, "stateLabel" },
        { FailureReasonRole, "failureReason" },
        { TimeTextRole, "timeText" },
        { DayLabelRole, "dayLabel" },
        { ShowDayRole, "showDay" },
        { FirstInGroupRole, "firstInGroup" },
        { MembershipRole, "membership" },
        { NewMarkerRole, "newMarker" },
        { CanCancelRole, "canCancel" },
        { CanRetryRole, "canRetry" },
    };
}

bool MessageListModel::canFetchMore(const QModelIndex& parent) const
{
    return !parent.isValid() && !m_conversationId.isEmpty() && !m_complete && !m_loading;
}

void MessageListModel::fetchMore(const QModelIndex& parent)
{
    if (!canFetchMore(parent)) {
        return;
    }
    m_loading = true;
    Q_EMIT loadingChanged();
    Q_EMIT pageRequested(++m_pageToken, m_conversationId, oldestSeq(), m_pageSize);
}

void MessageListModel::loadOlder()
{
    fetchMore({});
}

void MessageListModel::open(const QString& conversationId, const QString& selfName, quint64 readSeq)
{
    beginResetModel();
    m_conversationId = conversationId;
    m_selfName = selfName;
    m_readSeqAtOpen = readSeq;
    m_entries.clear();
    m_complete = false;
    m_loading = false;
    endResetModel();
    Q_EMIT conversationChanged();
    Q_EMIT countChanged();

    // The first page: oldestSeq() of an empty model is 0, which the worker reads as "newest".
    fetchMore({});
}

void MessageListModel::close()
{
    beginResetModel();
    m_conversationId.clear();
    m_entries.clear();
    m_complete = true;
    m_loading = false;
    endResetModel();
    Q_EMIT conversationChanged();
    Q_EMIT loadingChanged();
    Q_EMIT countChanged();
}

void MessageListModel::appendPage(quint64 token, const QString& conversationId,
    const QList<StoredMessage>& entries, bool complete)
{
    if (token != m_pageToken || conversationId != m_conversationId) {
        return; // an answer for a conversation closed since, or superseded
    }
    m_loading = false;
    m_complete = complete;

    QList<StoredMessage> fresh;
    for (auto it = entries.crbegin(); it != entries.crend(); ++it) {
        if (rowOf(it->messageId) < 0) {
            fresh.append(*it);
        }
    }
    if (!fresh.isEmpty()) {
        const int first = static_cast<int>(m_entries.size());
        beginInsertRows({}, first, first + static_cast<int>(fresh.size()) - 1);
        m_entries.append(fresh);
        endInsertRows();
        notifyNeighbours(first - 1);
        Q_EMIT countChanged();
    }
    Q_EMIT loadingChanged();
}

void MessageListModel::addEntries(const QList<StoredMessage>& entries)
{
    for (const StoredMessage& entry : entries) {
        if (entry.conversationId != m_conversationId) {
            continue;
        }
        if (rowOf(entry.messageId) >= 0) {
            updateEntries({ entry });
            continue;
        }
        // Display order is by sequence number with unsent messages newest of all, so an entry
        // from the server goes below (after, in rows) the unsent ones and any newer entry.
        const int row = rowFor(entry);
        beginInsertRows({}, row, row);
        m_entries.insert(row, entry);
        endInsertRows();
        notifyNeighbours(row + 1);
        notifyNeighbours(row - 1);
        Q_EMIT countChanged();
    }
}

void MessageListModel::updateEntries(const QList<StoredMessage>& entries)
{
    for (const StoredMessage& entry : entries) {
        const int row = rowOf(entry.messageId);
        if (row < 0 || sameShown(m_entries.at(row), entry)) {
            continue;
        }
        m_entries[row] = entry;
        const QModelIndex changed = index(row);
        Q_EMIT dataChanged(changed, changed);
        moveToPlace(row);
    }
}

int MessageListModel::rowFor(const StoredMessage& entry) const
{
    int row = 0;
    while (row < m_entries.size() && !isNewer(entry, m_entries.at(row))) {
        ++row;
    }
    return row;
}

void MessageListModel::moveToPlace(int row)
{
    // An own message that the server numbered after newer entries had already arrived (its ack
    // came late, or it was sent from behind a failed one) belongs at its sequence number, as
    // `ferryctl history` and every other device show it.
    const StoredMessage entry = m_entries.at(row);
    m_entries.removeAt(row);
    const int to = rowFor(entry);
    m_entries.insert(row, entry);
    if (to == row) {
        return;
    }

    beginMoveRows({}, row, row, {}, to > row ? to + 1 : to);
    m_entries.move(row, to);
    endMoveRows();
    qCDebug(lcUi) << "Moved an entry from row" << row << "to row" << to;

    notifyNeighbours(to);
    notifyNeighbours(to - 1);
    // The entry that was just newer than the moved one now lies above a different older entry.
    notifyNeighbours(to > row ? row - 1 : row);
}

void MessageListModel::removeEntries(const QList<QByteArray>& messageIds)
{
    for (const QByteArray& id : messageIds) {
        const int row = rowOf(id);
        if (row < 0) {
            continue;
        }
        beginRemoveRows({}, row, row);
        m_entries.removeAt(row);
        endRemoveRows();
        notifyNeighbours(row);
        notifyNeighbours(row - 1);
        Q_EMIT countChanged();
    }
}

QByteArray MessageListModel::messageIdAt(int row) const
{
    return row >= 0 && row < m_entries.size() ? m_entries.at(row).messageId : QByteArray();
}

int MessageListModel::rowOf(const QByteArray& messageId) const
{
    for (int row = 0; row < m_entries.size(); ++row) {
        if (m_entries.at(row).messageId == messageId) {
            return row;
        }
    }
    return -1;
}

bool MessageListModel::isOwn(const StoredMessage& entry) const
{
    return entry.kind == EntryKind::Message && entry.sender == m_selfName;
}

bool MessageListModel::showsDay(int row) const
{
    if (row + 1 >= m_entries.size()) {
        return true;
    }
    return !sameDay(entryTime(m_entries.at(row)), entryTime(m_entries.at(row + 1)));
}

bool MessageListModel::firstInGroup(int row) const
{
    if (showsDay(row) || isNewMarker(row)) {
        return true;
    }
    const StoredMessage& entry = m_entries.at(row);
    const StoredMessage& older = m_entries.at(row + 1);
    return entry.kind != older.kind || entry.sender != older.sender
        || older.kind == EntryKind::Membership;
}

bool MessageListModel::isNewMarker(int row) const
{
    const auto unread = [this](const StoredMessage& entry) {
        return entry.seq && *entry.seq > m_readSeqAtOpen && !isOwn(entry)
            && entry.kind == EntryKind::Message;
    };
    if (m_readSeqAtOpen == 0 || !unread(m_entries.at(row))) {
        return false;
    }
    // The marker sits on the oldest unread entry: the next older one is already read.
    if (row + 1 >= m_entries.size()) {
        return m_complete;
    }
    const StoredMessage& older = m_entries.at(row + 1);
    return older.seq && *older.seq <= m_readSeqAtOpen;
}

quint64 MessageListModel::oldestSeq() const
{
    for (auto it = m_entries.crbegin(); it != m_entries.crend(); ++it) {
        if (it->seq) {
            return *it->seq;
        }
    }
    return 0;
}

void MessageListModel::notifyNeighbours(int row)
{
    // The separator and grouping roles of a row depend on the row below it (the older entry),
    // so an insertion or removal next to it may change them.
    if (row >= 0 && row < m_entries.size()) {
        const QModelIndex changed = index(row);
        Q_EMIT dataChanged(changed, changed, { ShowDayRole, FirstInGroupRole, NewMarkerRole });
    }
}

} // namespace ferry::ui
