import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Ferry.Ui

// The open conversation: its entries, newest at the bottom, older pages loaded on scrolling
// up, and the composer.
Pane {
    id: root

    required property ChatSession session
    property bool showBack: false
    readonly property MessageListModel messages: session.messages

    signal backClicked()

    padding: 0
    background: Rectangle { color: Theme.window }

    ColumnLayout {
        anchors.fill: parent
        spacing: 0
        visible: root.session.currentConversationId.length > 0

        PaneHeader {
            Layout.fillWidth: true
            title: root.session.currentTitle
            subtitle: root.session.currentSubtitle
            showBack: root.showBack
            onBackClicked: root.backClicked()
        }

        ListView {
            id: view

            objectName: "messageList"
            Layout.fillWidth: true
            Layout.fillHeight: true
            clip: true
            model: root.messages
            // Row 0 is the newest entry: laid out bottom to top, the list starts at its newest
            // end and older pages grow it upwards without moving what is on screen.
            verticalLayoutDirection: ListView.BottomToTop
            spacing: 2
            topMargin: 8
            bottomMargin: 8
            activeFocusOnTab: true
            keyNavigationEnabled: true
            Accessible.role: Accessible.List
            Accessible.name: qsTr("Messages")
            ScrollBar.vertical: ScrollBar {}

            onAtYBeginningChanged: if (atYBeginning) root.messages.loadOlder()
            onCountChanged: if (contentHeight < height) root.messages.loadOlder()

            delegate: MessageDelegate {
                width: view.width
                session: root.session
            }

            // The far end of a bottom-to-top list is its top: where older history appears.
            footer: Item {
                width: view.width
                height: root.messages.loading ? 44 : (root.messages.complete ? 32 : 0)

                Row {
                    anchors.centerIn: parent
                    spacing: 8
                    visible: root.messages.loading
                    BusyIndicator { width: 22; height: 22; running: parent.visible }
                    Label {
                        objectName: "historyPlaceholder"
                        text: qsTr("Loading earlier messages…")
                        color: Theme.mutedText
                        anchors.verticalCenter: parent.verticalCenter
                    }
                }
                Label {
                    anchors.centerIn: parent
                    visible: root.messages.complete && !root.messages.loading
                    text: view.count === 0 ? qsTr("No messages yet. Say hello!")
                                           : qsTr("This is the start of the conversation.")
                    color: Theme.mutedText
                    font.pixelSize: 12
                }
            }
        }

        Label {
            objectName: "typingIndicator"
            Layout.fillWidth: true
            Layout.leftMargin: Theme.margin
            visible: text.length > 0
            text: root.session.typingText
            color: Theme.mutedText
            font.pixelSize: 12
            font.italic: true
        }

        Composer {
            Layout.fillWidth: true
            session: root.session
            onSent: view.positionViewAtBeginning()
        }
    }

    Label {
        anchors.centerIn: parent
        visible: root.session.currentConversationId.length === 0
        text: qsTr("Pick a conversation, or start a new one.")
        color: Theme.mutedText
    }
}
