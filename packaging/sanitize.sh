#!/usr/bin/env bash
# Builds everything with AddressSanitizer and UndefinedBehaviorSanitizer (-DFERRY_SANITIZE=ON) in
# build-asan/ and runs the whole ctest suite there, leak checking on. Any report fails the test
# that produced it, and so this script. Leaks inside system libraries that are not ours are
# suppressed by tests/lsan-suppressions.txt, each entry with its reason.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FERRY_ASAN_BUILD_DIR:-$root/build-asan}"

cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFERRY_SANITIZE=ON -DFERRY_BUILD_TESTS=ON >/dev/null
ninja -C "$build_dir" -j "$(nproc)"

export QT_QPA_PLATFORM=offscreen
# Every report goes to a file of its own in reports/, from the tests and from every ferry-server
# and ferryctl they start: a test does not always look at how a child process ended (a server
# stopped at the end of a test has done its part), so the files are what decides.
# quarantine_size_mb: freed memory is held back 32 MiB deep instead of 256 MiB, still enough to
# catch a use after free, because tst_server_limits bounds the server's resident memory under a
# 16 MiB burst and a 256 MiB quarantine alone breaks that bound (it measured 285 MiB of growth).
reports="$build_dir/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:quarantine_size_mb=32:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
export LSAN_OPTIONS="suppressions=$root/tests/lsan-suppressions.txt:print_suppressions=0"

cd "$build_dir"
status=0
# Sanitized code runs a few times slower: one test per core, and longer limits than test.sh.
# --no-tests=error: a build folder configured without tests must not pass for a clean run.
ctest --no-tests=error --output-on-failure --timeout 600 -j "$(nproc)" || status=$?

shopt -s nullglob
found=("$reports"/*)
if [ ${#found[@]} -gt 0 ]; then
    echo "sanitize: ${#found[@]} sanitizer report(s) in $reports:"
    for report in "${found[@]}"; do
        echo "sanitize: == $report"
        grep -E 'ERROR|SUMMARY|runtime error|^    #[0-9] ' "$report" | head -n 12 | sed 's/^/sanitize:   /'
    done
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "sanitize: FAILED"
    exit "$status"
fi
echo "sanitize: every test passed with ASan, UBSan and LeakSanitizer; no reports"
