#!/bin/bash
# Client benchmarks, scenarios 4-6 of docs/benchmarks.md: catch-up, client ingest, cold start.
#   tests/bench/client/run.sh <results-dir> [--short]
# Builds nothing: the programs come from $FERRY_BUILD_DIR (default build/ in the checkout),
#   ninja -C build bench_client_catchup bench_client_ingest bench_client_coldstart ferry-server
# Each scenario prints its figures and writes <results-dir>/<scenario>.json and .png.
# Sizes (full / --short):
#   4 catch-up      100,000 / 20,000 messages waiting, server --sync-batch 500, 2000 (its
#                   default) and 5000
#   5 ingest        200,000 / 50,000 messages, batches of 500, 2000 (the server's default
#                   batch) and 5000
#   6 cold start  1,000,000 / 100,000 messages in 200 conversations, 5 / 3 starts
# Seeded server data and the cold-start profile are kept in <results-dir>/cache and reused.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 <results-dir> [--short]" >&2
    exit 2
fi
results=$(mkdir -p "$1" && cd "$1" && pwd)
short=0
[[ "${2:-}" == "--short" ]] && short=1

here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../../.." && pwd)
build=${FERRY_BUILD_DIR:-$source_dir/build}
[[ "$build" = /* ]] || build="$source_dir/$build"
bench="$build/tests/bench/client"
for program in bench_client_catchup bench_client_ingest bench_client_coldstart; do
    if [[ ! -x "$bench/$program" ]]; then
        echo "run.sh: $bench/$program is missing; build it first:" >&2
        echo "  ninja -C $build bench_client_catchup bench_client_ingest bench_client_coldstart ferry-server" >&2
        exit 1
    fi
done

if ((short)); then
    catchup_messages=20000 ingest_messages=50000 coldstart_messages=100000 starts=3
else
    catchup_messages=100000 ingest_messages=200000 coldstart_messages=1000000 starts=5
fi

export FERRY_BENCH_MACHINE="${FERRY_BENCH_MACHINE:-$(nproc) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), load $(cut -d' ' -f1 /proc/loadavg) at start}"
export QT_QPA_PLATFORM=offscreen
# The programs' own log lines (store opened, engine state) are not figures.
export QT_LOGGING_RULES="ferry.*.info=false;ferry.*.warning=false"

cache="$results/cache"
mkdir -p "$cache"

echo "== 4. catch-up ($catchup_messages messages)"
seed="$cache/catchup-seed-$catchup_messages"
if [[ ! -f "$seed/messages" ]]; then
    "$bench/bench_client_catchup" seed "$seed" "$catchup_messages"
fi
"$bench/bench_client_catchup" run "$seed" "$results" 500 2000 5000

echo "== 5. client ingest ($ingest_messages messages)"
"$bench/bench_client_ingest" "$results" "$ingest_messages" 500 2000 5000

echo "== 6. cold start ($coldstart_messages messages)"
profile="$cache/coldstart-profile-$coldstart_messages"
if [[ ! -f "$profile/messages" ]]; then
    "$bench/bench_client_coldstart" build "$profile" "$coldstart_messages"
fi
"$bench/bench_client_coldstart" measure "$profile" "$results" "$starts"

# Charts: gnuplot from Debian (gnuplot-nox), installed when missing.
if ! command -v gnuplot >/dev/null; then
    apt-get install -y -q gnuplot-nox >/dev/null 2>&1 || true
fi
if ! command -v gnuplot >/dev/null || ! command -v python3 >/dev/null; then
    echo "run.sh: gnuplot or python3 missing, no charts drawn" >&2
    exit 0
fi
python3 - "$results" <<'PY'
import json, sys, os
results = sys.argv[1]
def load(name):
    with open(os.path.join(results, name + ".json")) as f:
        return json.load(f)
c = load("catch-up")
with open(os.path.join(results, "catch-up.dat"), "w") as f:
    for run in c["figures"]["runs"]:
        f.write('"--sync-batch %d" %f 3\n' % (run["sync_batch"], run["seconds"]))
i = load("client-ingest")
with open(os.path.join(results, "client-ingest.dat"), "w") as f:
    for run in i["figures"]["runs"]:
        f.write('"Ferry/%d" %f 100000\n' % (run["batch"], run["messages_per_second"]))
        f.write('"SQLite/%d" %f 100000\n' % (run["batch"], run["raw_sqlite_messages_per_second"]))
s = load("cold-start")
with open(os.path.join(results, "cold-start.dat"), "w") as f:
    f.write('"conversation list" %f 500\n' % s["figures"]["list_ms_median"])
    f.write('"newest page of the biggest" %f 500\n' % s["figures"]["page_ms_median"])
PY
chart() { # name, title, y label
    gnuplot <<GP
set terminal pngcairo size 720,420 noenhanced
set output "$results/$1.png"
set title "$2"
set ylabel "$3"
set style data histogram
set style fill solid 0.7
set boxwidth 0.6
set yrange [0:*]
set key top left
plot "$results/$1.dat" using 2:xtic(1) title "measured", "" using 0:3 with lines lw 2 title "target"
GP
}
chart catch-up "Catch-up: $catchup_messages messages to commit (s)" "seconds"
chart client-ingest "Client ingest: ClientStore (Ferry) and raw SQLite, per batch size" "messages per second"
chart cold-start "Cold start, $coldstart_messages messages (median ms)" "milliseconds"
rm -f "$results"/*.dat
echo "results in $results"
