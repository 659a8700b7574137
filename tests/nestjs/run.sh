#!/usr/bin/env bash
# The NestJS end-to-end test: starts the daemon (build/bin/customer-service)
# on a fresh data dir with a services file, runs e2e.js against it, stops the
# daemon with SIGTERM and checks it exits 0.
#   tests/nestjs/run.sh BIN_DIR      (CS_KAFKA_BROKERS set; tests/nestjs/setup.sh run)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="$1"
: "${CS_KAFKA_BROKERS:?set CS_KAFKA_BROKERS to a running broker}"
if [ ! -d "$here/node_modules/@nestjs/microservices" ]; then
  echo "nestjs e2e: run tests/nestjs/setup.sh first (npm ci)" >&2
  exit 1
fi
work="$(mktemp -d /tmp/cs-nestjs.XXXXXX)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export ADMIN_SECRET="admin-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
prefix="nest$$x$RANDOM."
cat > "$work/services.json" <<JSON
{"services":{"admin-service":{"secret":"$ADMIN_SECRET"}}}
JSON
"$bin_dir/customer-service" --data-dir "$work/data" --brokers "$CS_KAFKA_BROKERS" --services "$work/services.json" \
  --topic-prefix "$prefix" --group "${prefix}group" --transactional-id "${prefix}tx" --http 127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 900); do
  grep -q '^ready$' "$work/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "daemon exited:"; cat "$work/err"; exit 1; }
  sleep 0.1
done
grep -q '^ready$' "$work/out" || { echo "daemon not ready:"; cat "$work/err"; exit 1; }
CS_TOPIC_PREFIX="$prefix" node "$here/e2e.js" || { echo "daemon log:"; tail -50 "$work/err"; exit 1; }
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || { echo "daemon exited $status after SIGTERM"; tail -20 "$work/err"; exit 1; }
echo "daemon stopped cleanly"
