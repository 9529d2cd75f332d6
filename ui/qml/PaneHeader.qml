import QtQuick
import QtQuick.Controls
import QtQuick.Layouts

// The bar at the top of a pane: an optional back button, a title and subtitle, and actions.
ToolBar {
    id: root

    property string title
    property string subtitle
    property bool showBack: false
    default property alias actions: actionRow.data

    signal backClicked()

    implicitHeight: 56
    background: Rectangle {
        color: Theme.window
        Rectangle {
            anchors.bottom: parent.bottom
            width: parent.width
            height: 1
            color: Theme.divider
        }
    }

    RowLayout {
        anchors.fill: parent
        anchors.leftMargin: root.showBack ? 4 : Theme.margin
        anchors.rightMargin: Theme.spacing
        spacing: Theme.spacing

        ToolButton {
            visible: root.showBack
            text: qsTr("‹ Back")
            Accessible.name: qsTr("Back")
            implicitHeight: Theme.touchTarget
            onClicked: root.backClicked()
        }

        ColumnLayout {
            Layout.fillWidth: true
            spacing: 0

            Label {
                Layout.fillWidth: true
                text: root.title
                font.pixelSize: 17
                font.bold: true
                elide: Text.ElideRight
                color: Theme.text
            }
            Label {
                Layout.fillWidth: true
                visible: root.subtitle.length > 0
                text: root.subtitle
                font.pixelSize: 12
                color: Theme.mutedText
                elide: Text.ElideRight
            }
        }

        RowLayout {
            id: actionRow
            spacing: 4
        }
    }
}
