#!/usr/bin/env bash
# Takes the screenshots in docs/screenshots/: the ferry app under Xvfb (1280x800 and 390x844)
# against a local ferry-server that ferryctl fills with a few accounts and messages. The app
# saves its own window (--screenshot), so no screen-capture tool is needed.
#
# Usage: packaging/screenshots.sh     (after a build; FERRY_BUILD_DIR to use another build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FERRY_BUILD_DIR:-$root/build}"
out="$root/docs/screenshots"
server_bin="$build_dir/server-stub/ferry-server"
ctl_bin="$build_dir/app/ferryctl/ferryctl"
app_bin="$build_dir/app/ferry/ferry"
mkdir -p "$out"

work="$(mktemp -d -t ferry-shots.XXXXXX)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

start_server() {
    : >"$work/server.out"
    "$server_bin" --listen "127.0.0.1:${1:-0}" --data "$work/server-data" \
        >"$work/server.out" 2>>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 1 100); do
        if grep -q 'listening on' "$work/server.out"; then
            server_url="$(grep -o 'ws://[^ ]*' "$work/server.out")"
            return 0
        fi
        sleep 0.1
    done
    echo "screenshots: the server did not start" >&2
    cat "$work/server.log" >&2
    exit 1
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
}

export FERRY_PASSWORD="screenshots-only-password"
ctl() {
    local who="$1"
    shift
    "$ctl_bin" --profile "$work/$who" --server "$server_url" "$@" >/dev/null
}

# The app, once: PROFILE FILE WxH [extra options]. Under Xvfb when it is installed, else on
# Qt's offscreen platform, which renders the same pixels.
shoot() {
    local who="$1" file="$2" size="$3"
    shift 3
    local run=()
    if command -v xvfb-run >/dev/null; then
        run=(xvfb-run -a -s "-screen 0 1400x900x24")
    else
        export QT_QPA_PLATFORM=offscreen
    fi
    "${run[@]}" "$app_bin" --profile "$work/$who" --server "$server_url" --size "$size" \
        --screenshot "$out/$file" --screenshot-delay 3500 "$@"
    echo "screenshots: $out/$file"
}

start_server
ctl alice register alice --device-name laptop
ctl bob register bob --device-name phone
ctl carol register carol --device-name desk
ctl alice-phone login alice --device-name phone

ctl bob send alice "Hi Alice! Are we still on for the boat trip on Saturday?"
ctl bob sync
ctl alice sync
ctl alice send bob "Yes! I booked the 9:40 ferry from the north pier."
ctl alice send bob "Bring a jacket, it gets windy on deck."
ctl alice sync
ctl bob sync
ctl bob send alice "Perfect. I'll bring sandwiches and the camera."
ctl bob send alice "Should we ask Carol too?"
ctl bob sync
group_id="$("$ctl_bin" --profile "$work/alice" --server "$server_url" --members bob,carol \
    group create "Saturday trip" | tail -n1)"
ctl carol sync
ctl carol send "$group_id" "Count me in! I know a good café near the harbour."
ctl carol sync
ctl carol send alice "Did you get the tickets?"
ctl carol sync
ctl alice sync

shoot alice wide-light.png 1280x800 --open bob
shoot alice wide-dark.png 1280x800 --open bob --dark
shoot alice phone-list.png 390x844
shoot alice phone-conversation.png 390x844 --open bob
shoot alice wide-devices.png 1280x800 --page devices
shoot alice phone-new-conversation.png 390x844 --page new-conversation
mkdir -p "$work/newcomer"
shoot newcomer phone-sign-in.png 390x844

# Offline: the server is gone, a message is written anyway and waits in the outbox.
stop_server
ctl alice send bob "On my way, see you at the pier!"
shoot alice wide-offline.png 1280x800 --open bob
