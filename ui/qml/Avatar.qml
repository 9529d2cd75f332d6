import QtQuick
import QtQuick.Controls

// A round badge with a name's initial, coloured from the name so that a person keeps the same
// colour everywhere.
Rectangle {
    id: root

    property string name
    property string initials: name.slice(0, 1).toUpperCase()

    implicitWidth: 44
    implicitHeight: 44
    radius: width / 2
    color: Qt.hsla((parseInt(Qt.md5(name).slice(0, 6), 16) % 360) / 360, 0.45,
                   Theme.dark ? 0.42 : 0.55, 1)
    Accessible.ignored: true

    Label {
        anchors.centerIn: parent
        text: root.initials
        color: "white"
        font.bold: true
        font.pixelSize: root.height * 0.42
    }
}
