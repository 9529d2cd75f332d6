#!/usr/bin/env bash
# Sets up, builds and runs every test. This is the README's test command and what CI runs:
#  1. the test suite on the normal build (build/);
#  2. the same suite built with ASan, UBSan and LeakSanitizer (packaging/sanitize.sh, build-asan/);
#  3. each fuzz target for a bounded time (packaging/fuzz.sh, build-fuzz/; FERRY_FUZZ_SECONDS).
# Any failure stops the run with a non-zero exit. The last lines sum up all three.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FERRY_BUILD_DIR:-$root/build}"
fuzz_seconds="${FERRY_FUZZ_SECONDS:-30}"

bash "$root/packaging/build.sh"
export QT_QPA_PLATFORM=offscreen
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

# The integration tests spend most of their time waiting on processes and sockets, not on the
# CPU, so two of them at a time per core is safe and halves the wall time.
(cd "$build_dir" && ctest --no-tests=error --output-on-failure --timeout 300 -j "$(( $(nproc) * 2 ))") \
    | tee "$logs/tests.log"

echo "== Sanitizers (packaging/sanitize.sh)"
bash "$root/packaging/sanitize.sh" | tee "$logs/sanitize.log"

echo "== Fuzzing (packaging/fuzz.sh, ${fuzz_seconds}s per target)"
bash "$root/packaging/fuzz.sh" "$fuzz_seconds" | tee "$logs/fuzz.log"

echo "== Summary"
echo "tests:      $(grep -E 'tests passed' "$logs/tests.log" | tail -n 1)"
echo "sanitizers: $(grep -E 'tests passed' "$logs/sanitize.log" | tail -n 1)"
echo "fuzzing:    $(tail -n 1 "$logs/fuzz.log")"
