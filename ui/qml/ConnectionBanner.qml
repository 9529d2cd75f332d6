import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Ferry.Ui

// Says when the app is not live: offline with the time of the next try, connecting, catching
// up. It takes its own row above the panes, so it pushes content down and never covers a
// message; when live it takes no space at all.
Rectangle {
    id: root

    required property ChatSession session

    visible: session.bannerVisible
    implicitHeight: visible ? 40 : 0
    color: Theme.warningBack
    Accessible.role: Accessible.AlertMessage
    Accessible.name: bannerLabel.text

    RowLayout {
        anchors.fill: parent
        anchors.leftMargin: Theme.margin
        anchors.rightMargin: Theme.spacing
        spacing: Theme.spacing

        BusyIndicator {
            Layout.preferredWidth: 20
            Layout.preferredHeight: 20
            running: root.visible && !root.session.bannerCanRetry
            visible: running
        }

        Label {
            id: bannerLabel
            objectName: "bannerText"
            Layout.fillWidth: true
            text: root.session.bannerText
            color: Theme.warningText
            elide: Text.ElideRight
        }

        Button {
            visible: root.session.bannerCanRetry
            text: qsTr("Retry now")
            flat: true
            implicitHeight: 36
            onClicked: root.session.retryNow()
        }
    }
}
