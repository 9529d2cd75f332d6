#!/usr/bin/env bash
# The benchmarks of docs/benchmarks.md in one command. Builds the server, the load generator and
# the baselines in their own folder (build-bench/, Release), runs every scenario against a fresh
# ferry-server on 127.0.0.1, the baselines (a lean WebSocket echo server, raw SQLite), and the
# client benchmarks (tests/bench/client/run.sh, when present), and writes
# bench-results/<scenario>.json, .tsv and .png. Prints a markdown summary at the end.
#
# Usage: packaging/bench.sh [--short] [--ejabberd]
#   --short     a few small steps of each scenario, about 2-3 minutes in all
#   --ejabberd  also run the ejabberd peer (../shared/peers/ejabberd; needs its setup.sh first)
#
# Benchmarks print figures; this script never fails because something was slow. It fails only
# when the build fails. Heavy steps run under `nice`, as the machine is shared.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FERRY_BENCH_BUILD_DIR:-$root/build-bench}"
results="${FERRY_BENCH_RESULTS:-$root/bench-results}"
short=0
ejabberd=0
for argument in "$@"; do
    case "$argument" in
    --short) short=1 ;;
    --ejabberd) ejabberd=1 ;;
    *) echo "usage: packaging/bench.sh [--short] [--ejabberd]" >&2; exit 2 ;;
    esac
done

# ---- Build --------------------------------------------------------------------------------
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
nice ninja -C "$build_dir" -j 2 ferry-server ferry-load ferry-echo-bench ferry-sqlite-ceiling \
    bench_client_catchup bench_client_ingest bench_client_coldstart || exit 1
# The client's scenarios run from the same Release build, not from whatever build/ holds.
export FERRY_BUILD_DIR="$build_dir"
server_bin="$build_dir/server-stub/ferry-server"
load_bin="$build_dir/tests/bench/ferry-load"
echo_bin="$build_dir/tests/bench/ferry-echo-bench"
sqlite_bin="$build_dir/tests/bench/ferry-sqlite-ceiling"

rm -rf "$results"
mkdir -p "$results/tmp"
log() { echo "[bench $(date -u +%H:%M:%S)] $*"; }

# ---- The machine, for the record -----------------------------------------------------------
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
    echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "kernel: $(uname -r)"
    echo "open files per process: $(ulimit -n)"
    echo "mode: $([ "$short" = 1 ] && echo short || echo full)"
    # The machine may be shared: figures taken under a high load are noisier and slower.
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$results/machine.txt"

# ---- Server processes, each stopped by its own PID ------------------------------------------
server_pid=""
server_url=""
# start_server NAME [ferry-server flags...]: a fresh server on 127.0.0.1 with its own data folder.
start_server() {
    local name="$1"
    shift
    local data="$results/tmp/$name"
    mkdir -p "$data"
    nice "$server_bin" --listen 127.0.0.1:0 --http-listen off --data "$data" \
        --password-cost minimal "$@" > "$data/stdout" 2> "$data/server.log" &
    server_pid=$!
    for _ in $(seq 1 100); do
        server_url="$(grep -o 'ws://[0-9.:]*' "$data/stdout" 2>/dev/null | head -1)"
        [ -n "$server_url" ] && return 0
        sleep 0.1
    done
    log "server $name did not start; see $data/server.log"
    stop_server
    return 1
}
start_echo() {
    local out="$results/tmp/echo.stdout"
    nice "$echo_bin" --listen 127.0.0.1:0 > "$out" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 50); do
        server_url="$(grep -o 'ws://[0-9.:]*' "$out" 2>/dev/null | head -1)"
        [ -n "$server_url" ] && return 0
        sleep 0.1
    done
    stop_server
    return 1
}
stop_server() {
    [ -z "$server_pid" ] && return 0
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 300); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=""
}
trap stop_server EXIT

# load SCENARIO NAME [ferry-load options...]: one scenario against the running server, its
# output also kept in bench-results/NAME.txt.
load() {
    local scenario="$1" name="$2"
    shift 2
    log "$name: ferry-load $scenario $*"
    echo "ferry-load $scenario --url $server_url --server-pid <pid> --out $results --name $name $*" \
        > "$results/$name.txt"
    nice -n 5 "$load_bin" "$scenario" --url "$server_url" --server-pid "$server_pid" \
        --out "$results" --name "$name" "$@" 2>&1 | tee -a "$results/$name.txt"
}

# ---- The scenarios ---------------------------------------------------------------------------
if [ "$short" = 1 ]; then
    idle_steps="100,1000,2000"; rtt_samples=300
    direct_rates="250,500,1000,2000,4000"; echo_rates="1000,4000,16000,64000"; seconds=3
    group_members=1000; group_rates="2,5,10,25"
else
    idle_steps="100,1000,5000,10000,19500"; rtt_samples=2000
    # Up to past the peak (the steps stop at the first the server does not keep up with), so
    # that "half the peak" is half of a measured peak, not of the last step offered.
    direct_rates="250,500,1000,2000,4000,8000,12000,16000,20000,24000,32000,40000,48000,56000,64000,72000,80000"
    echo_rates="1000,4000,16000,64000,128000,256000"; seconds=10
    group_members=1000; group_rates="2,5,10,25,50,100,200,300,400,500"
fi
# The per-connection request limit is an abuse guard, not what is measured here.
no_rate_limit=(--request-rate 1000000 --request-burst 10000000)

# 1. Idle capacity.
if start_server idle; then
    load idle idle --steps "$idle_steps" --rtt-samples "$rtt_samples" --per-worker 5000
    stop_server
fi

# 2. Direct messages, and the echo ceiling with the same frames, users and steps.
if start_server direct "${no_rate_limit[@]}"; then
    load direct direct --users 1000 --workers 2 --rates "$direct_rates" --seconds "$seconds"
    stop_server
fi
if start_echo; then
    load direct echo --echo --users 1000 --workers 2 --rates "$echo_rates" --seconds "$seconds"
    stop_server
fi

# 3. Group fan-out.
if start_server group "${no_rate_limit[@]}"; then
    load group group --members "$group_members" --workers 2 --rates "$group_rates" \
        --seconds "$seconds"
    stop_server
fi

# The raw SQLite ceiling of the server's commit path, on the same disk.
log "sqlite-ceiling"
nice "$sqlite_bin" --dir "$results/tmp" --seconds "$([ "$short" = 1 ] && echo 3 || echo 10)" \
    --json "$results/sqlite-ceiling.json" | tee "$results/sqlite-ceiling.txt"

# Scenarios 4-6: the client's benchmarks, when they exist.
if [ -x "$root/tests/bench/client/run.sh" ] || [ -f "$root/tests/bench/client/run.sh" ]; then
    log "client benchmarks: tests/bench/client/run.sh"
    if [ "$short" = 1 ]; then
        bash "$root/tests/bench/client/run.sh" "$results" --short || log "client benchmarks failed"
    else
        bash "$root/tests/bench/client/run.sh" "$results" || log "client benchmarks failed"
    fi
fi

# The ejabberd peer, on request (it takes minutes per step).
if [ "$ejabberd" = 1 ]; then
    peer="$root/../shared/peers/ejabberd"
    [ -d "$peer" ] || peer="/work/shared/peers/ejabberd"
    if [ -x "$peer/idle.sh" ]; then
        log "ejabberd idle and msg (see $peer/README.md)"
        (cd "$peer" && PWFMT=plain nice ./idle.sh 1000 5000 10000 19500) 2>&1 \
            | tee "$results/ejabberd-idle.txt" | tail -1 > "$results/ejabberd-idle.json"
        (cd "$peer" && PWFMT=plain nice ./msg.sh 250 500 1000 2000 4000) 2>&1 \
            | tee "$results/ejabberd-msg.txt" | tail -1 > "$results/ejabberd-msg.json"
    else
        log "ejabberd peer not found at $peer"
    fi
fi

# ---- Charts ----------------------------------------------------------------------------------
if ! command -v gnuplot >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ -z "${CI:-}" ]; then
    log "installing gnuplot-nox for the charts"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 || true
fi
if command -v gnuplot >/dev/null 2>&1; then
    bash "$root/tests/bench/plot.sh" "$results" || log "charts failed"
else
    log "no gnuplot: no charts"
fi

# ---- Summary ---------------------------------------------------------------------------------
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$results/machine.txt"
rm -rf "$results/tmp"
python3 "$root/tests/bench/summary.py" "$results" | tee "$results/summary.md"
exit 0
