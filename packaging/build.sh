#!/usr/bin/env bash
# Installs the build dependencies (if missing) and builds Ferry into build/ with Ninja and ccache.
# Usage: packaging/build.sh [extra cmake arguments]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FERRY_BUILD_DIR:-$root/build}"

bash "$root/packaging/setup-debian.sh"

cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
# Two cores: two jobs. More only thrashes memory on the heavy Qt and protobuf headers.
ninja -C "$build_dir" -j "$(nproc)"
echo "build: binaries are in $build_dir"
