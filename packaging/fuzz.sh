#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DFERRY_FUZZ=ON) in build-fuzz/ and runs each for a bounded
# time on a copy of its seed corpus in tests/fuzz/corpus/, so the committed corpus never changes
# under a run. Exits non-zero when a target crashes or breaks an invariant, naming the input
# that did it (re-run it with: build-fuzz/tests/fuzz/<target> <reproducer>).
# Usage: packaging/fuzz.sh [seconds per target, default 30]   (FERRY_FUZZ_SECONDS works too)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FERRY_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${1:-${FERRY_FUZZ_SECONDS:-30}}"
targets=(fuzz_server_frames fuzz_websocket_frames fuzz_client_frames fuzz_stored_data)

CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_FUZZ=ON -DFERRY_BUILD_TESTS=OFF >/dev/null
# Only the targets and what they link: the app and its QML are not fuzzed.
ninja -C "$build_dir" -j "$(nproc)" "${targets[@]}"

run_dir="$build_dir/fuzz-runs/$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir"
failed=0
for target in "${targets[@]}"; do
    corpus="$run_dir/$target-corpus"
    cp -r "$root/tests/fuzz/corpus/$target" "$corpus"
    log="$run_dir/$target.log"
    # Leaks are left to packaging/sanitize.sh: checking for them after every input costs nine
    # tenths of the run here. -timeout: an input that takes ten seconds is a hang.
    if "$build_dir/tests/fuzz/$target" -max_total_time="$seconds" -detect_leaks=0 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$run_dir/$target-" \
        "$corpus" >"$log" 2>&1; then
        summary="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"
        echo "fuzz: $target passed ${seconds}s: ${summary:-see $log}"
    else
        failed=1
        echo "fuzz: $target FAILED; log: $log"
        grep -E 'ERROR:|Invariant broken|SUMMARY:' "$log" | head -n 5 | sed 's/^/fuzz:   /' || true
        for reproducer in "$run_dir/$target"-*; do
            [ -f "$reproducer" ] && echo "fuzz:   reproducer: $reproducer"
        done
    fi
done

if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED (logs and reproducers in $run_dir)"
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed ${seconds}s each (logs in $run_dir)"
