import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Ferry.Ui

// The conversations, most recent first: name, newest message, time, unread count and a mark
// on those with messages still waiting to be sent.
Pane {
    id: root

    required property ChatSession session

    signal devicesRequested()

    padding: 0
    background: Rectangle { color: Theme.surface }

    ColumnLayout {
        anchors.fill: parent
        spacing: 0

        PaneHeader {
            Layout.fillWidth: true
            title: qsTr("Chats")
            subtitle: qsTr("Signed in as %1").arg(root.session.userName)

            ToolButton {
                text: qsTr("Devices")
                implicitHeight: Theme.touchTarget
                onClicked: root.devicesRequested()
            }
            ToolButton {
                objectName: "newChatButton"
                text: qsTr("New")
                implicitHeight: Theme.touchTarget
                font.bold: true
                onClicked: newDialog.open()
            }
        }

        ListView {
            id: list

            objectName: "conversationList"
            Layout.fillWidth: true
            Layout.fillHeight: true
            clip: true
            model: root.session.conversations
            keyNavigationEnabled: true
            focus: true
            activeFocusOnTab: true
            currentIndex: -1
            Accessible.role: Accessible.List
            Accessible.name: qsTr("Conversations")
            ScrollBar.vertical: ScrollBar {}

            delegate: ItemDelegate {
                id: row

                required property int index
                required property string conversationId
                required property string name
                required property string lastText
                required property string lastTime
                required property int unread
                required property int queued
                required property int failed

                width: ListView.view.width
                height: Theme.rowHeight
                highlighted: conversationId === root.session.currentConversationId
                Accessible.name: unread > 0
                    ? qsTr("%1, %n unread, %2", "", unread).arg(name).arg(lastText)
                    : qsTr("%1, %2").arg(name).arg(lastText)
                onClicked: root.session.openConversation(conversationId)
                Keys.onReturnPressed: root.session.openConversation(conversationId)

                background: Rectangle {
                    color: row.highlighted ? Theme.selection
                         : row.hovered || row.activeFocus ? Theme.divider : "transparent"
                }

                contentItem: RowLayout {
                    spacing: 12

                    Avatar {
                        Layout.leftMargin: 4
                        name: row.name
                    }

                    ColumnLayout {
                        Layout.fillWidth: true
                        spacing: 3

                        RowLayout {
                            Layout.fillWidth: true
                            Label {
                                Layout.fillWidth: true
                                text: row.name
                                font.bold: row.unread > 0
                                font.pixelSize: 15
                                elide: Text.ElideRight
                                color: Theme.text
                            }
                            Label {
                                text: row.lastTime
                                font.pixelSize: 12
                                color: row.unread > 0 ? Theme.accent : Theme.mutedText
                            }
                        }

                        RowLayout {
                            Layout.fillWidth: true
                            spacing: 6
                            Label {
                                Layout.fillWidth: true
                                text: row.lastText
                                elide: Text.ElideRight
                                maximumLineCount: 1
                                font.pixelSize: 13
                                color: Theme.mutedText
                            }
                            Label {
                                visible: row.failed > 0
                                text: qsTr("%n failed", "", row.failed)
                                font.pixelSize: 11
                                color: Theme.danger
                            }
                            Rectangle {
                                visible: row.queued > 0
                                implicitWidth: queuedLabel.implicitWidth + 12
                                implicitHeight: 18
                                radius: 9
                                color: Theme.warningBack
                                Label {
                                    id: queuedLabel
                                    anchors.centerIn: parent
                                    text: qsTr("%n queued", "", row.queued)
                                    font.pixelSize: 11
                                    color: Theme.warningText
                                }
                            }
                            Rectangle {
                                visible: row.unread > 0
                                implicitWidth: Math.max(20, unreadLabel.implicitWidth + 10)
                                implicitHeight: 20
                                radius: 10
                                color: Theme.accent
                                Label {
                                    id: unreadLabel
                                    anchors.centerIn: parent
                                    text: row.unread
                                    font.pixelSize: 11
                                    font.bold: true
                                    color: Theme.textOnAccent
                                }
                            }
                        }
                    }
                }
            }

            Label {
                anchors.centerIn: parent
                width: parent.width - 2 * Theme.margin
                visible: list.count === 0
                text: qsTr("No conversations yet.\nTap “New” to start one.")
                horizontalAlignment: Text.AlignHCenter
                wrapMode: Text.Wrap
                color: Theme.mutedText
            }
        }
    }

    NewConversationDialog {
        id: newDialog
        objectName: "newConversationDialog"
        session: root.session
        parent: Overlay.overlay
    }
}
