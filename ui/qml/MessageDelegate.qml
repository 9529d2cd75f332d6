import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Ferry.Ui

// One entry: an optional day separator and "new messages" line above it, then a bubble
// (right-aligned for own messages, with their state), or a centred line for a membership
// change.
Item {
    id: root

    required property ChatSession session
    required property string messageId
    required property string text
    required property string sender
    required property bool own
    required property string state
    required property string stateLabel
    required property string failureReason
    required property string timeText
    required property string dayLabel
    required property bool showDay
    required property bool firstInGroup
    required property bool membership
    required property bool newMarker
    required property bool canCancel
    required property bool canRetry

    readonly property int sideMargin: 14
    readonly property int maxBubbleWidth: Math.min(width * 0.75, 560)

    implicitHeight: column.implicitHeight
    Accessible.role: Accessible.ListItem
    Accessible.name: membership ? text
        : own ? qsTr("You, %1: %2, %3").arg(timeText).arg(text).arg(stateLabel)
              : qsTr("%1, %2: %3").arg(sender).arg(timeText).arg(text)

    Column {
        id: column
        width: parent.width
        topPadding: root.firstInGroup ? 8 : 0
        spacing: 4

        Label {
            visible: root.showDay
            anchors.horizontalCenter: parent.horizontalCenter
            text: root.dayLabel
            font.pixelSize: 12
            font.bold: true
            color: Theme.mutedText
            topPadding: 8
            bottomPadding: 6
        }

        RowLayout {
            visible: root.newMarker
            width: parent.width
            spacing: 8
            Rectangle {
                Layout.fillWidth: true
                Layout.leftMargin: 14
                height: 1
                color: Theme.danger
            }
            Label {
                text: qsTr("New messages")
                color: Theme.danger
                font.pixelSize: 12
                font.bold: true
            }
            Rectangle {
                Layout.fillWidth: true
                Layout.rightMargin: 14
                height: 1
                color: Theme.danger
            }
        }

        Label {
            visible: root.membership
            width: parent.width
            horizontalAlignment: Text.AlignHCenter
            text: root.text
            font.pixelSize: 12
            font.italic: true
            color: Theme.mutedText
            wrapMode: Text.Wrap
            padding: 4
        }

        Label {
            visible: root.firstInGroup && !root.own && !root.membership
            x: root.sideMargin + 10
            text: root.sender
            font.pixelSize: 12
            font.bold: true
            color: Theme.accent
        }

        Rectangle {
            id: bubble

            visible: !root.membership
            x: root.own ? parent.width - width - root.sideMargin : root.sideMargin
            width: Math.min(root.maxBubbleWidth,
                            Math.max(body.implicitWidth, meta.implicitWidth) + 24)
            height: body.implicitHeight + meta.implicitHeight + 18
            radius: Theme.radius
            color: root.own ? Theme.ownBubble : Theme.otherBubble
            opacity: root.state === "queued" ? 0.75 : 1.0
            border.width: root.state === "failed" ? 2 : (root.own ? 0 : 1)
            border.color: root.state === "failed" ? Theme.danger : Theme.otherBubbleBorder

            Label {
                id: body
                x: 12
                y: 8
                width: bubble.width - 24
                text: root.text
                wrapMode: Text.Wrap
                textFormat: Text.PlainText
                color: root.own ? Theme.ownBubbleText : Theme.otherBubbleText
                font.pixelSize: 15
            }

            Label {
                id: meta
                anchors.right: parent.right
                anchors.rightMargin: 12
                anchors.top: body.bottom
                anchors.topMargin: 2
                text: root.own ? qsTr("%1 · %2").arg(root.timeText).arg(root.stateLabel)
                               : root.timeText
                font.pixelSize: 11
                color: root.own ? Qt.rgba(Theme.ownBubbleText.r, Theme.ownBubbleText.g,
                                          Theme.ownBubbleText.b, 0.8)
                                : Theme.mutedText
            }
        }

        RowLayout {
            visible: root.canCancel
            anchors.right: parent.right
            anchors.rightMargin: root.sideMargin
            spacing: 4

            Label {
                visible: root.failureReason.length > 0
                text: qsTr("Not sent: %1").arg(root.failureReason)
                color: Theme.danger
                font.pixelSize: 12
                elide: Text.ElideRight
                Layout.maximumWidth: root.maxBubbleWidth - 140
            }
            Button {
                visible: root.canRetry
                text: qsTr("Retry")
                flat: true
                implicitHeight: 32
                onClicked: root.session.retryMessage(root.messageId)
            }
            Button {
                text: qsTr("Cancel")
                flat: true
                implicitHeight: 32
                Accessible.name: qsTr("Cancel this message")
                onClicked: root.session.cancelMessage(root.messageId)
            }
        }
    }
}
