#!/usr/bin/env bash
# Sets up, builds and runs every test. This is the README's test command and what CI runs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FERRY_BUILD_DIR:-$root/build}"

bash "$root/packaging/build.sh"
export QT_QPA_PLATFORM=offscreen
cd "$build_dir"
# The integration tests spend most of their time waiting on processes and sockets, not on the
# CPU, so two of them at a time per core is safe and halves the wall time.
ctest --output-on-failure --timeout 300 -j "$(( $(nproc) * 2 ))"
