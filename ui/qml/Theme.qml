pragma Singleton
import QtQuick

// Colours and sizes shared by every screen. Colours come from the system palette, so the app
// is light or dark as the system is; sizes are large enough for a finger.
QtObject {
    id: root

    readonly property SystemPalette palette: SystemPalette { colorGroup: SystemPalette.Active }
    readonly property bool dark: palette.window.hslLightness < 0.5

    readonly property color window: palette.window
    readonly property color surface: palette.base
    readonly property color text: palette.windowText
    readonly property color mutedText: Qt.rgba(text.r, text.g, text.b, 0.62)
    readonly property color divider: Qt.rgba(text.r, text.g, text.b, 0.12)
    readonly property color accent: palette.highlight
    readonly property color textOnAccent: "white"
    readonly property color selection: Qt.rgba(accent.r, accent.g, accent.b, dark ? 0.28 : 0.14)
    readonly property color ownBubble: accent
    readonly property color ownBubbleText: textOnAccent
    readonly property color otherBubble: dark ? Qt.lighter(palette.base, 1.9) : "#ffffff"
    readonly property color otherBubbleBorder: dark ? "transparent" : "#dcdfe4"
    readonly property color otherBubbleText: text
    readonly property color danger: dark ? "#ff7a70" : "#c62828"
    readonly property color warningBack: dark ? "#4a3b12" : "#fff4d6"
    readonly property color warningText: dark ? "#ffe08a" : "#6b4e00"

    readonly property int spacing: 8
    readonly property int margin: 16
    readonly property int rowHeight: 68
    readonly property int touchTarget: 44
    readonly property int radius: 16
    readonly property int wideThreshold: 600
    readonly property int listPaneWidth: 320
}
