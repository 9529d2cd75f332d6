#pragma once

#include "core/ClientStore.h"

#include <QAbstractListModel>
#include <QtQml/qqmlregistration.h>

namespace ferry::ui {

/// The conversations of this device, most recently active first. Updated in place: a summary
/// that changed updates its row and, when it became the most recent, moves it up; a new
/// conversation is inserted where its activity puts it. Never reset after the first load.
class ConversationListModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("Owned by ChatSession")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
    Q_PROPERTY(int unreadTotal READ unreadTotal NOTIFY unreadTotalChanged)
public:
    enum Role {
        ConversationIdRole = Qt::UserRole + 1,
        NameRole,      ///< the group's title, or the other member of a direct conversation
        InitialsRole,  ///< one or two letters for the avatar
        LastTextRole,  ///< the newest entry as a line of text, "You: " before own messages
        LastTimeRole,  ///< the time for today, else the date
        UnreadRole,
        QueuedRole,
        FailedRole,
        GroupRole,
        MembersRole,   ///< the members as one comma-separated line
        LeftRole,
    };
    Q_ENUM(Role)

    explicit ConversationListModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;

    void setSelfName(const QString& name) { m_selfName = name; }
    /// Merges summaries into the list: changed rows are updated (and moved), new ones inserted.
    void upsert(const QList<ferry::ConversationSummary>& summaries);
    int unreadTotal() const;
    int rowOf(const QString& conversationId) const;
    std::optional<ConversationSummary> summary(const QString& conversationId) const;
    /// What the conversation is called on screen.
    QString nameOf(const ConversationSummary& summary) const;

Q_SIGNALS:
    void countChanged();
    void unreadTotalChanged();

private:
    int rowFor(const ConversationSummary& summary, int skipRow) const;

    QString m_selfName;
    QList<ConversationSummary> m_rows;
};

} // namespace ferry::ui
