import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Ferry.Ui

// The account's devices, with a way to sign one out (a lost phone, an old laptop).
Pane {
    id: root

    required property ChatSession session

    signal backClicked()

    padding: 0
    background: Rectangle { color: Theme.surface }

    ColumnLayout {
        anchors.fill: parent
        spacing: 0

        PaneHeader {
            Layout.fillWidth: true
            title: qsTr("Devices")
            subtitle: qsTr("Where %1 is signed in").arg(root.session.userName)
            showBack: true
            onBackClicked: root.backClicked()

            ToolButton {
                text: qsTr("Refresh")
                implicitHeight: Theme.touchTarget
                onClicked: root.session.refreshDevices()
            }
        }

        Label {
            objectName: "credentialsNote"
            Layout.fillWidth: true
            Layout.margins: Theme.margin
            text: root.session.credentialsNote
            wrapMode: Text.Wrap
            color: Theme.mutedText
            font.pixelSize: 12
        }

        ListView {
            id: list
            Layout.fillWidth: true
            Layout.fillHeight: true
            clip: true
            model: root.session.devices
            keyNavigationEnabled: true
            Accessible.role: Accessible.List
            Accessible.name: qsTr("Devices")

            delegate: ItemDelegate {
                id: row

                required property string deviceId
                required property string name
                required property string createdText
                required property bool current
                required property bool online

                width: ListView.view.width
                height: Theme.rowHeight
                Accessible.name: qsTr("%1, %2").arg(name).arg(createdText)

                contentItem: RowLayout {
                    spacing: 12

                    Rectangle {
                        Layout.leftMargin: 8
                        width: 10
                        height: 10
                        radius: 5
                        color: row.online ? "#2e9d4f" : Theme.divider
                        Accessible.ignored: true
                    }
                    ColumnLayout {
                        Layout.fillWidth: true
                        spacing: 2
                        Label {
                            Layout.fillWidth: true
                            text: row.current ? qsTr("%1 (this device)").arg(row.name) : row.name
                            font.pixelSize: 15
                            font.bold: row.current
                            elide: Text.ElideRight
                            color: Theme.text
                        }
                        Label {
                            text: row.online ? qsTr("%1 · online").arg(row.createdText)
                                             : row.createdText
                            font.pixelSize: 12
                            color: Theme.mutedText
                        }
                    }
                    Button {
                        visible: !row.current
                        text: qsTr("Sign out")
                        implicitHeight: 36
                        Accessible.name: qsTr("Sign out %1").arg(row.name)
                        onClicked: root.session.removeDevice(row.deviceId)
                    }
                }
            }

            Label {
                anchors.centerIn: parent
                visible: list.count === 0
                text: qsTr("Asking the server…")
                color: Theme.mutedText
            }
        }
    }
}
