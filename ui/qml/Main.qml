import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Ferry.Ui

// The app's window: the sign-in page until the profile has an account, then the chat. On a
// wide window the conversation list and the open conversation sit side by side; below
// Theme.wideThreshold they are stacked pages with back navigation.
ApplicationWindow {
    id: root

    required property ChatSession session
    readonly property bool wide: width >= Theme.wideThreshold
    property bool showDevices: false
    readonly property bool conversationOpen: session.currentConversationId.length > 0

    width: 1000
    height: 680
    minimumWidth: 320
    minimumHeight: 480
    visible: true
    color: Theme.window
    // The controls take their colours from the system palette too, so that a dark system gets
    // dark buttons and fields, not light ones on a dark window.
    palette.window: Theme.palette.window
    palette.windowText: Theme.palette.windowText
    palette.base: Theme.palette.base
    palette.alternateBase: Theme.palette.alternateBase
    palette.text: Theme.palette.text
    palette.button: Theme.palette.button
    palette.buttonText: Theme.palette.buttonText
    palette.highlight: Theme.palette.highlight
    palette.highlightedText: Theme.textOnAccent
    palette.placeholderText: Theme.mutedText
    palette.mid: Theme.palette.mid
    palette.dark: Theme.palette.dark
    palette.light: Theme.palette.light
    palette.midlight: Theme.palette.midlight
    palette.shadow: Theme.palette.shadow
    title: session.conversations.unreadTotal > 0
        ? qsTr("(%1) Ferry").arg(session.conversations.unreadTotal) : qsTr("Ferry")

    function goBack() {
        if (showDevices) {
            showDevices = false
        } else if (conversationOpen) {
            session.closeConversation()
        }
    }

    Shortcut {
        sequences: [StandardKey.Back, "Esc"]
        enabled: !root.wide && (root.showDevices || root.conversationOpen)
        onActivated: root.goBack()
    }

    SignInPage {
        anchors.fill: parent
        visible: root.session.phase !== ChatSession.SignedIn
        session: root.session
    }

    ColumnLayout {
        anchors.fill: parent
        spacing: 0
        visible: root.session.phase === ChatSession.SignedIn

        ConnectionBanner {
            objectName: "connectionBanner"
            Layout.fillWidth: true
            session: root.session
        }

        RowLayout {
            Layout.fillWidth: true
            Layout.fillHeight: true
            spacing: 0

            ConversationListPane {
                objectName: "conversationListPane"
                Layout.fillHeight: true
                Layout.preferredWidth: root.wide ? Theme.listPaneWidth : root.width
                Layout.fillWidth: !root.wide
                visible: root.wide || (!root.conversationOpen && !root.showDevices)
                session: root.session
                onDevicesRequested: {
                    root.showDevices = true
                    root.session.refreshDevices()
                }
            }

            Rectangle {
                Layout.fillHeight: true
                implicitWidth: 1
                visible: root.wide
                color: Theme.divider
            }

            ConversationPane {
                objectName: "conversationPane"
                Layout.fillWidth: true
                Layout.fillHeight: true
                visible: !root.showDevices && (root.wide || root.conversationOpen)
                session: root.session
                showBack: !root.wide
                onBackClicked: root.goBack()
            }

            DevicesPane {
                Layout.fillWidth: true
                Layout.fillHeight: true
                visible: root.showDevices
                session: root.session
                onBackClicked: root.showDevices = false
            }
        }
    }

    // Errors of user actions and notifications of messages in other conversations.
    Pane {
        id: toast

        property string text

        objectName: "toast"
        anchors.horizontalCenter: parent.horizontalCenter
        anchors.bottom: parent.bottom
        anchors.bottomMargin: 88
        width: Math.min(parent.width - 2 * Theme.margin, 420)
        visible: text.length > 0
        padding: 12
        background: Rectangle {
            radius: 10
            color: Theme.dark ? "#3a3f47" : "#323232"
        }

        Label {
            width: parent.width
            text: toast.text
            color: "white"
            wrapMode: Text.Wrap
        }

        Timer {
            id: toastTimer
            interval: 5000
            onTriggered: {
                toast.text = ""
                root.session.dismissNotice()
            }
        }

        function show(message) {
            text = message
            toastTimer.restart()
        }
    }

    Connections {
        target: root.session
        function onNoticeChanged() {
            if (root.session.notice.length > 0)
                toast.show(root.session.notice)
        }
        function onToastRequested(text) {
            toast.show(text)
        }
    }
}
