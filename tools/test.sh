#!/usr/bin/env bash
# Installs, builds and runs every test: the release build, then the same
# suite built with AddressSanitizer and UndefinedBehaviorSanitizer.
#   tools/test.sh               everything
#   CS_SKIP_SANITIZE=1 tools/test.sh   the release build only
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
bash tools/build.sh
echo "== tests (release build)"
ctest --test-dir build --output-on-failure -j 2

if [ "${CS_SKIP_SANITIZE:-0}" != "1" ]; then
  bash tools/build.sh --sanitize
  echo "== tests (ASan + UBSan build)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j 2
fi
