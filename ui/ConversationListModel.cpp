#include "ui/ConversationListModel.h"

#include "core/ConversationId.h"
#include "core/Logging.h"
#include "ui/MessageListModel.h"

#include <QDateTime>
#include <QLocale>

namespace ferry::ui {

namespace {

    qint64 activity(const ConversationSummary& summary)
    {
        return summary.last ? entryTime(*summary.last).toMSecsSinceEpoch() : 0;
    }

} // namespace

ConversationListModel::ConversationListModel(QObject* parent)
    : QAbstractListModel(parent)
{
}

int ConversationListModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_rows.size());
}

QString ConversationListModel::nameOf(const ConversationSummary& summary) const
{
    if (!summary.title.isEmpty()) {
        return summary.title;
    }
    const QString peer = directConversationPeer(summary.id, m_selfName);
    return peer.isEmpty() ? summary.id : peer;
}

QVariant ConversationListModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) {
        qCWarning(lcUi) << "ConversationListModel was asked for an invalid index" << index;
        return {};
    }
    const ConversationSummary& summary = m_rows.at(index.row());

    switch (role) {
    case ConversationIdRole:
        return summary.id;
    case Qt::DisplayRole:
    case NameRole:
        return nameOf(summary);
    case InitialsRole:
        return nameOf(summary).left(1).toUpper();
    case LastTextRole: {
        if (!summary.last) {
            return tr("No messages yet");
        }
        const QString text = describeEntry(*summary.last).simplified();
        const bool own = summary.last->kind == EntryKind::Message
            && summary.last->sender == m_selfName;
        return own ? tr("You: %1").arg(text) : text;
    }
    case LastTimeRole: {
        if (!summary.last) {
            return QString();
        }
        const QDateTime time = entryTime(*summary.last).toLocalTime();
        if (time.date() == QDate::currentDate()) {
            return shortTime(time);
        }
        return QLocale().toString(time.date(), QLocale::ShortFormat);
    }
    case UnreadRole:
        return summary.unread;
    case QueuedRole:
        return summary.queued;
    case FailedRole:
        return summary.failed;
    case GroupRole:
        return directConversationMembers(summary.id).isEmpty();
    case MembersRole:
        return summary.members.join(QStringLiteral(", "));
    case LeftRole:
        return summary.left;
    default:
        return {};
    }
}

QHash<int, QByteArray> ConversationListModel::roleNames() const
{
    return {
        { ConversationIdRole, "conversationId" },
        { NameRole, "name" },
        { InitialsRole, "initials" },
        { LastTextRole, "lastText" },
        { LastTimeRole, "lastTime" },
        { UnreadRole, "unread" },
        { QueuedRole, "queued" },
        { FailedRole, "failed" },
        { GroupRole, "group" },
        { MembersRole, "members" },
        { LeftRole, "left" },
    };
}

int ConversationListModel::rowOf(const QString& conversationId) const
{
    for (int row = 0; row < m_rows.size(); ++row) {
        if (m_rows.at(row).id == conversationId) {
            return row;
        }
    }
    return -1;
}

std::optional<ConversationSummary> ConversationListModel::summary(
    const QString& conversationId) const
{
    const int row = rowOf(conversationId);
    return row < 0 ? std::nullopt : std::optional(m_rows.at(row));
}

int ConversationListModel::rowFor(const ConversationSummary& summary, int skipRow) const
{
    // The position the summary belongs at among the other rows, most recent first; ties keep
    // the existing order so that equal rows do not swap back and forth.
    int position = 0;
    for (int row = 0; row < m_rows.size(); ++row) {
        if (row == skipRow) {
            continue;
        }
        if (activity(m_rows.at(row)) >= activity(summary)) {
            ++position;
        }
    }
    return position;
}

int ConversationListModel::unreadTotal() const
{
    int total = 0;
    for (const ConversationSummary& summary : m_rows) {
        total += summary.unread;
    }
    return total;
}

void ConversationListModel::upsert(const QList<ConversationSummary>& summaries)
{
    const int unreadBefore = unreadTotal();
    for (const ConversationSummary& summary : summaries) {
        const int row = rowOf(summary.id);
        if (row < 0) {
            const int at = rowFor(summary, -1);
            beginInsertRows({}, at, at);
            m_rows.insert(at, summary);
            endInsertRows();
            Q_EMIT countChanged();
            continue;
        }

        int target = rowFor(summary, row);
        if (target != row) {
            // beginMoveRows counts the destination before the move takes the row out.
            beginMoveRows({}, row, row, {}, target > row ? target + 1 : target);
            m_rows.move(row, target);
            endMoveRows();
        }
        m_rows[target] = summary;
        const QModelIndex changed = index(target);
        Q_EMIT dataChanged(changed, changed);
    }
    if (unreadTotal() != unreadBefore) {
        Q_EMIT unreadTotalChanged();
    }
}

} // namespace ferry::ui
