#!/usr/bin/env bash
# Installs, builds and runs every test: the release build, then the same
# suite built with AddressSanitizer and UndefinedBehaviorSanitizer.
#   tools/test.sh               everything
#   CS_SKIP_SANITIZE=1 tools/test.sh   the release build only
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
bash tests/nestjs/setup.sh
bash tools/build.sh

# A real Kafka broker for the distributor's tests, on its own port and data
# dir, stopped whatever happens.
kafka_port="${CS_TEST_KAFKA_PORT:-19192}"
kafka_dir="$(mktemp -d /tmp/cs-test-kafka.XXXXXX)"
trap 'bash tools/kafka/broker.sh stop --data-dir "$kafka_dir" >/dev/null 2>&1 || true; rm -rf "$kafka_dir"' EXIT
bash tools/kafka/broker.sh start --port "$kafka_port" --data-dir "$kafka_dir"
export CS_KAFKA_BROKERS="127.0.0.1:$kafka_port"

echo "== tests (release build)"
ctest --test-dir build --output-on-failure -j 2

if [ "${CS_SKIP_SANITIZE:-0}" != "1" ]; then
  bash tools/build.sh --sanitize
  echo "== tests (ASan + UBSan build)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j 2
fi
