import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Ferry.Ui

// Where a message is written. Enter sends, Shift+Enter starts a new line. It works offline:
// the message is stored at once and shows as waiting until the server has it.
Pane {
    id: root

    required property ChatSession session

    signal sent()

    padding: Theme.spacing
    background: Rectangle {
        color: Theme.window
        Rectangle { width: parent.width; height: 1; color: Theme.divider }
    }

    function send() {
        if (root.session.sendMessage(input.text)) {
            input.clear()
            root.sent()
        }
    }

    RowLayout {
        anchors.fill: parent
        spacing: Theme.spacing

        ScrollView {
            Layout.fillWidth: true
            Layout.preferredHeight: Math.min(input.implicitHeight, 140)
            Layout.minimumHeight: Theme.touchTarget

            TextArea {
                id: input
                objectName: "composerInput"
                placeholderText: qsTr("Write a message…")
                wrapMode: TextEdit.Wrap
                font.pixelSize: 15
                topPadding: 11
                bottomPadding: 11
                Accessible.name: qsTr("Message")
                onTextChanged: root.session.composerEdited(text)
                Keys.onReturnPressed: (event) => {
                    if (event.modifiers & Qt.ShiftModifier) {
                        event.accepted = false
                    } else {
                        root.send()
                    }
                }
                Keys.onEnterPressed: (event) => root.send()
            }
        }

        Button {
            objectName: "sendButton"
            text: qsTr("Send")
            highlighted: true
            enabled: input.text.trim().length > 0
            implicitHeight: Theme.touchTarget
            implicitWidth: 72
            onClicked: root.send()
        }
    }
}
