#!/usr/bin/env bash
# Configures and builds the project. Binaries land in build/bin/.
#   tools/build.sh             release build with debug info, in build/
#   tools/build.sh --sanitize  ASan + UBSan build of everything, in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags+=(-DCS_SANITIZE=ON -DCS_BUILD_BENCHMARKS=OFF)
fi
jobs="${CS_BUILD_JOBS:-2}"
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
ninja -C "$dir" -j "$jobs"
