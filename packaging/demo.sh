#!/usr/bin/env bash
# The Ferry demo: builds everything, starts the bundled server on loopback with a fresh data
# folder, and plays a conversation between alice (a laptop and a phone) and bob through ferryctl,
# with an offline period in the middle: the server is stopped, both sides keep writing, the
# server comes back. It then prints each device's transcript from its own local store and checks
# that every device shows every message exactly once, in the same order.
#
# With a display (DISPLAY or WAYLAND_DISPLAY set) and outside CI (CI unset), it then opens two
# `ferry` windows side by side, alice's laptop and bob's desk, on the demo's server, and waits
# until both are closed.
#
# Usage: packaging/demo.sh            (README's first command)
#        FERRY_DEMO_SKIP_BUILD=1 ...  (reuse an existing build/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FERRY_BUILD_DIR:-$root/build}"

if [ "${FERRY_DEMO_SKIP_BUILD:-0}" != 1 ]; then
    bash "$root/packaging/build.sh"
fi
server_bin="$build_dir/server-stub/ferry-server"
ctl_bin="$build_dir/app/ferryctl/ferryctl"
app_bin="$build_dir/app/ferry/ferry"

work="$(mktemp -d -t ferry-demo.XXXXXX)"
server_pid=""
window_pids=()
cleanup() {
    for pid in "${window_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Starts the server on $1 (host:port) and sets server_pid and server_url once it is listening.
start_server() {
    : >"$work/server.out"
    "$server_bin" --listen "$1" --data "$work/server-data" >"$work/server.out" 2>>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 1 100); do
        if grep -q 'listening on' "$work/server.out"; then
            server_url="$(grep -o 'ws://[^ ]*' "$work/server.out")"
            echo "server listening on $server_url (pid $server_pid)"
            return 0
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "the server did not start; its log:" >&2
            cat "$work/server.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "the server did not report readiness within 10 s" >&2
    exit 1
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" && echo "server stopped cleanly (exit 0)"
    server_pid=""
}

# ctl DEVICE ARGS...: ferryctl on the profile of DEVICE (alice-laptop, alice-phone, bob-desk).
ctl() {
    local device="$1"
    shift
    "$ctl_bin" --profile "$work/$device" "$@"
}

# send DEVICE TARGET TEXT: writes to the outbox and shows who wrote what.
send() {
    local id
    id="$(ctl "$1" send "$2" "$3")"
    printf '  %-12s -> %-5s %-42s (id %s)\n' "$1" "$2" "\"$3\"" "$id"
}

sync_device() {
    printf '  %-12s sync: ' "$1"
    ctl "$1" sync --timeout 20 2>&1 | sed 's/^ferryctl: //'
}

export FERRY_PASSWORD="demo-password-$$"

say "Starting the bundled server on loopback with a fresh data folder ($work)"
start_server 127.0.0.1:0
port="${server_url##*:}"

say "Creating accounts: alice on two devices, bob on one"
ctl alice-laptop --server "$server_url" register alice --device-name laptop
ctl alice-phone --server "$server_url" login alice --device-name phone
ctl bob-desk --server "$server_url" register bob --device-name desk

say "Online: alice and bob talk"
send alice-laptop bob "Hi Bob! Are we still on for Saturday?"
sync_device alice-laptop
sync_device bob-desk
send bob-desk alice "Yes! Where shall we meet?"
sync_device bob-desk
sync_device alice-laptop
sync_device alice-phone

say "The server goes away (SIGTERM); everyone keeps writing"
stop_server
send alice-laptop bob "How about the harbour cafe at 10?"
send alice-laptop bob "They have the good croissants."
send bob-desk alice "Writing this on the train, no signal."
send alice-phone bob "(from my phone) Bring the map!"
printf '  %-12s sync: ' alice-laptop
if ctl alice-laptop sync --timeout 2 2>&1 | sed 's/^ferryctl: //'; then
    echo "unexpected: sync succeeded with no server" >&2
    exit 1
fi
printf '  %-12s status: %s\n' alice-laptop "$(ctl alice-laptop status --json)"

say "The server is back on the same address; every device syncs"
start_server "127.0.0.1:$port"
for device in alice-laptop bob-desk alice-phone alice-laptop bob-desk; do
    sync_device "$device"
done

say "Transcripts, each read from that device's own local store"
for device in alice-laptop alice-phone bob-desk; do
    peer=bob
    [ "$device" = bob-desk ] && peer=alice
    echo "--- $device"
    ctl "$device" history "$peer" | tee "$work/$device.transcript"
done

say "Checks"
failures=0
check() {
    if eval "$2"; then
        echo "  ok    $1"
    else
        echo "  FAIL  $1"
        failures=$((failures + 1))
    fi
}
expected=6
for device in alice-laptop alice-phone bob-desk; do
    peer=bob
    [ "$device" = bob-desk ] && peer=alice
    ctl "$device" history "$peer" --json >"$work/$device.json"
    grep -o '"id":"[^"]*"' "$work/$device.json" | sort >"$work/$device.ids"
done
check "every device holds all $expected messages" \
    '[ "$(wc -l <"$work/alice-laptop.ids")" -eq $expected ] &&
     [ "$(wc -l <"$work/alice-phone.ids")" -eq $expected ] &&
     [ "$(wc -l <"$work/bob-desk.ids")" -eq $expected ]'
check "no device holds any message twice (ids unique)" \
    '[ -z "$(cat "$work"/*.ids | sort | uniq -c | awk "\$1 != 3")" ]'
check "the three transcripts are identical, line for line" \
    'cmp -s "$work/alice-laptop.transcript" "$work/alice-phone.transcript" &&
     cmp -s "$work/alice-laptop.transcript" "$work/bob-desk.transcript"'
check "sequence numbers run 1..$expected with no gap" \
    '[ "$(grep -o "\"seq\":[0-9]*" "$work/bob-desk.json" | cut -d: -f2 | tr "\n" " ")" = "1 2 3 4 5 6 " ]'
check "every outbox is empty (all messages acknowledged)" \
    '! ctl alice-laptop status --json | grep -qv "\"outbox\":0" &&
     ! ctl alice-phone status --json | grep -qv "\"outbox\":0" &&
     ! ctl bob-desk status --json | grep -qv "\"outbox\":0"'
check "messages written offline kept their writers' order" \
    'grep -n "harbour cafe" "$work/bob-desk.transcript" | cut -d: -f1 >"$work/a" &&
     grep -n "good croissants" "$work/bob-desk.transcript" | cut -d: -f1 >"$work/b" &&
     [ "$(cat "$work/a")" -lt "$(cat "$work/b")" ]'

stop_server
if [ "$failures" -ne 0 ]; then
    echo "demo: $failures check(s) failed; logs in $work" >&2
    exit 1
fi
echo
echo "demo: all checks passed. Data, profiles and the server log are in $work"

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    echo "demo: no display (DISPLAY and WAYLAND_DISPLAY unset), so the app windows were skipped"
    exit 0
fi
if [ -n "${CI:-}" ]; then
    echo "demo: running in CI (CI is set), so the app windows were skipped"
    exit 0
fi
if [ ! -x "$app_bin" ]; then
    echo "demo: $app_bin is not built, so the app windows were skipped"
    exit 0
fi

say "The app: alice (laptop) and bob (desk) side by side, on the same server"
start_server "127.0.0.1:$port"
"$app_bin" --profile "$work/alice-laptop" --server "$server_url" --open bob \
    --size 560x760 --position 40,60 >>"$work/alice-app.log" 2>&1 &
window_pids+=($!)
"$app_bin" --profile "$work/bob-desk" --server "$server_url" --open alice \
    --size 560x760 --position 620,60 >>"$work/bob-app.log" 2>&1 &
window_pids+=($!)
echo "Two windows are open: write in one and watch the other. Close both windows (or press"
echo "Ctrl+C here) to end the demo; the server stops with them."
wait "${window_pids[@]}" || true
window_pids=()
stop_server
