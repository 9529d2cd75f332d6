import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Ferry.Ui

// Starts a direct conversation with one person, or creates a group.
Dialog {
    id: root

    required property ChatSession session
    property string error

    modal: true
    title: qsTr("New conversation")
    anchors.centerIn: parent
    width: Math.min(parent ? parent.width - 32 : 360, 380)
    standardButtons: Dialog.Cancel | Dialog.Ok
    onOpened: {
        error = ""
        peerField.text = ""
        titleField.text = ""
        membersField.text = ""
        peerField.forceActiveFocus()
    }
    onAccepted: {
        const problem = tabs.currentIndex === 0
            ? session.startDirect(peerField.text)
            : session.createGroup(titleField.text, membersField.text)
        if (problem.length > 0) {
            error = problem
            open()
        }
    }

    ColumnLayout {
        anchors.fill: parent
        spacing: 10

        TabBar {
            id: tabs
            Layout.fillWidth: true
            TabButton { text: qsTr("Person") }
            TabButton { text: qsTr("Group") }
        }

        StackLayout {
            Layout.fillWidth: true
            currentIndex: tabs.currentIndex

            ColumnLayout {
                Label { text: qsTr("Their user name") }
                TextField {
                    id: peerField
                    Layout.fillWidth: true
                    placeholderText: qsTr("for example bob")
                    Accessible.name: qsTr("User name to talk to")
                    onAccepted: root.accept()
                }
            }

            ColumnLayout {
                Label { text: qsTr("Group name") }
                TextField {
                    id: titleField
                    Layout.fillWidth: true
                    Accessible.name: qsTr("Group name")
                }
                Label { text: qsTr("Members (separated by commas)") }
                TextField {
                    id: membersField
                    Layout.fillWidth: true
                    placeholderText: qsTr("bob, carol")
                    Accessible.name: qsTr("Members")
                    onAccepted: root.accept()
                }
            }
        }

        Label {
            Layout.fillWidth: true
            visible: root.error.length > 0
            text: root.error
            color: Theme.danger
            wrapMode: Text.Wrap
        }
    }
}
