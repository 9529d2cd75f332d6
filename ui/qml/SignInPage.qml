import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Ferry.Ui

// First run: create an account or sign in to one, as a new device of it.
Pane {
    id: root

    required property ChatSession session
    property bool createAccount: false
    readonly property bool busy: session.phase === ChatSession.SigningIn

    padding: Theme.margin
    background: Rectangle { color: Theme.window }

    function submit() {
        root.session.signIn(serverField.text, userField.text, passwordField.text,
                            deviceField.text, root.createAccount)
    }

    ScrollView {
        anchors.fill: parent
        contentWidth: availableWidth

        ColumnLayout {
            width: Math.min(parent.width, 380)
            x: (parent.width - width) / 2
            spacing: 12

            Item { Layout.preferredHeight: 32 }

            Label {
                Layout.fillWidth: true
                text: qsTr("Ferry")
                font.pixelSize: 34
                font.bold: true
                horizontalAlignment: Text.AlignHCenter
                color: Theme.accent
            }
            Label {
                Layout.fillWidth: true
                text: root.createAccount ? qsTr("Create an account to start chatting.")
                                         : qsTr("Sign in to continue your conversations.")
                horizontalAlignment: Text.AlignHCenter
                wrapMode: Text.Wrap
                color: Theme.mutedText
            }

            TabBar {
                id: modeBar
                Layout.fillWidth: true
                Layout.topMargin: 8
                currentIndex: root.createAccount ? 1 : 0
                onCurrentIndexChanged: root.createAccount = currentIndex === 1
                TabButton { text: qsTr("Sign in"); implicitHeight: Theme.touchTarget }
                TabButton { text: qsTr("Create account"); implicitHeight: Theme.touchTarget }
            }

            Label { text: qsTr("Server"); color: Theme.mutedText }
            TextField {
                id: serverField
                objectName: "serverField"
                Layout.fillWidth: true
                implicitHeight: Theme.touchTarget
                text: root.session.serverUrl
                inputMethodHints: Qt.ImhUrlCharactersOnly | Qt.ImhNoAutoUppercase
                Accessible.name: qsTr("Server address")
            }

            Label { text: qsTr("User name"); color: Theme.mutedText }
            TextField {
                id: userField
                objectName: "userField"
                Layout.fillWidth: true
                implicitHeight: Theme.touchTarget
                placeholderText: qsTr("for example alice")
                inputMethodHints: Qt.ImhNoAutoUppercase | Qt.ImhNoPredictiveText
                Accessible.name: qsTr("User name")
                focus: true
                onAccepted: passwordField.forceActiveFocus()
            }

            Label { text: qsTr("Password"); color: Theme.mutedText }
            TextField {
                id: passwordField
                objectName: "passwordField"
                Layout.fillWidth: true
                implicitHeight: Theme.touchTarget
                echoMode: TextInput.Password
                Accessible.name: qsTr("Password")
                onAccepted: root.submit()
            }

            Label { text: qsTr("This device's name"); color: Theme.mutedText }
            TextField {
                id: deviceField
                Layout.fillWidth: true
                implicitHeight: Theme.touchTarget
                text: root.session.deviceName
                Accessible.name: qsTr("Device name")
                onAccepted: root.submit()
            }

            Label {
                objectName: "signInError"
                Layout.fillWidth: true
                visible: text.length > 0
                text: root.session.signInError
                color: Theme.danger
                wrapMode: Text.Wrap
            }

            Button {
                Layout.fillWidth: true
                Layout.topMargin: 4
                implicitHeight: Theme.touchTarget + 4
                enabled: !root.busy
                highlighted: true
                text: root.busy ? qsTr("Please wait…")
                                : root.createAccount ? qsTr("Create account") : qsTr("Sign in")
                onClicked: root.submit()
            }

            BusyIndicator {
                Layout.alignment: Qt.AlignHCenter
                running: root.busy
                visible: root.busy
            }
        }
    }
}
