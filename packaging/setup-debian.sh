#!/usr/bin/env bash
# Installs everything Ferry needs to build and test on Debian 12, from Debian's own packages.
# Idempotent: packages already present are skipped, so running it twice costs a few seconds.
set -euo pipefail

packages=(
    # Toolchain and build.
    g++ cmake ninja-build ccache pkg-config
    # The fuzz targets (packaging/fuzz.sh): clang and its libFuzzer and sanitizer runtimes.
    clang-14 libclang-rt-14-dev
    # Qt 6.4 modules: Core/Network/Sql/Test live in qt6-base-dev.
    qt6-base-dev qt6-websockets-dev qt6-httpserver-dev libqt6sql6-sqlite
    # The Qt Quick app: QML, Qt Quick Controls (Fusion style), Layouts, the QML tools.
    qt6-declarative-dev qt6-declarative-dev-tools qml6-module-qtquick
    qml6-module-qtquick-controls qml6-module-qtquick-layouts qml6-module-qtquick-window
    qml6-module-qtquick-templates qml6-module-qtqml-workerscript
    # The app keeps the device token in the system keychain where there is one.
    qtkeychain-qt6-dev
    # Screenshots of the app (packaging/screenshots.sh): a virtual X server and a font.
    xvfb xauth fonts-dejavu-core
    # Wire format and cryptography.
    protobuf-compiler libprotobuf-dev libsodium-dev
    # Storage engine headers (the store talks to SQLite through Qt Sql, the CLI helps debugging).
    libsqlite3-dev sqlite3
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#packages[@]} packages already installed"
    exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
