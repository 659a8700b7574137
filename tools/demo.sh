#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install, build, generate a
# deterministic demo history, append it to a log, print a summary, publish it
# to a local Kafka broker, then run the customer-service daemon on it and
# send it the seed's admin action.
#   tools/demo.sh [--customers N] [--seed S] [--data-dir DIR] [--serve | --no-serve]
# --serve (the default on a terminal) keeps the daemon and the broker running
# until Ctrl-C; --no-serve (the default otherwise) stops them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

customers=200 seed=42 data_dir=demo-data
serve=0
[ -t 1 ] && serve=1
while [ $# -gt 0 ]; do
  case "$1" in
    --serve) serve=1; shift ;;
    --no-serve) serve=0; shift ;;
    --customers) customers="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
done

bash tools/setup.sh
bash tools/build.sh
csctl=build/bin/csctl

rm -rf "$data_dir"
echo "== generating a history of $customers customers (seed $seed)"
$csctl generate --customers "$customers" --seed "$seed" > "$data_dir.jsonl"
echo "== appending $(wc -l < "$data_dir.jsonl") events to $data_dir"
$csctl append --data-dir "$data_dir" < "$data_dir.jsonl"
echo "== stats"
$csctl stats --data-dir "$data_dir"
echo "== verify"
$csctl verify --data-dir "$data_dir"
echo "== the last 3 token events"
$csctl read --data-dir "$data_dir" --category token --backward --limit 3
echo "== projections: one customer's view"
customer=$($csctl read --data-dir "$data_dir" --type customer.created --limit 1 | sed 's/.*"customerId":"\([^"]*\)".*/\1/')
$csctl state view "$customer" --data-dir "$data_dir"
echo "== token audit"
$csctl audit tokens --data-dir "$data_dir" --html "$data_dir.audit.html" | tail -n 3
echo "   (chart: $data_dir.audit.html)"
echo "== publishing the log to a local Kafka broker, exactly once"
kafka_dir="$(pwd)/.kafka/demo"
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  bash tools/kafka/broker.sh stop --data-dir "$kafka_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
brokers=127.0.0.1:19292
# The demo's history is new on every run: so is its broker's data.
bash tools/kafka/broker.sh stop --data-dir "$kafka_dir" >/dev/null 2>&1 || true
rm -rf "$kafka_dir"
bash tools/kafka/broker.sh start --port 19292 --data-dir "$kafka_dir"
$csctl publish --data-dir "$data_dir" --brokers "$brokers" --once

# A pending customer for the seed's admin action (read before the daemon holds the store).
pending=$($csctl list customers --status pending --data-dir "$data_dir" |
  sed -n 's/.*"customerId":"\([^"]*\)".*/\1/p' | head -1)
echo "== the customer-service daemon on $data_dir (requests from Kafka, answers and events to Kafka)"
services="$data_dir.services.json"
( umask 077
  printf '{"services":{'
  sep=""
  for s in admin-service accounting-service app-mobile-service portfolio-sme-service portfolio-institution-service; do
    printf '%s"%s":{"secret":"%s","token":"%s"}' "$sep" "$s" "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
      "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    sep=","
  done
  printf '}}\n' ) > "$services"
# The same transactional id as csctl publish: the daemon continues from its checkpoint.
http="127.0.0.1:${CS_DEMO_HTTP_PORT:-8080}"
build/bin/customer-service --data-dir "$data_dir" --brokers "$brokers" --services "$services" --http "$http" \
  --transactional-id customer-service-distributor > "$data_dir.daemon.out" 2> "$data_dir.daemon.log" &
daemon_pid=$!
for _ in $(seq 1 600); do
  grep -q '^ready$' "$data_dir.daemon.out" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$data_dir.daemon.log"; exit 1; }
  sleep 0.1
done
grep -q '^ready$' "$data_dir.daemon.out" || { echo "demo: the daemon did not become ready"; cat "$data_dir.daemon.log"; exit 1; }
echo "   ready (structured log: $data_dir.daemon.log)"
request='{"customerId":"'"$pending"'","adminId":"00000000-0000-4000-8000-000000000001","action":"validate","details":{"notes":"KYC documents checked"}}'
echo "== the seed's admin action through Kafka: validate pending customer $pending"
$csctl request --brokers "$brokers" --topic admin.customer.action --service admin-service --services "$services" "$request"
admin_token=$(sed 's/.*"admin-service":{[^}]*"token":"\([^"]*\)".*/\1/' "$services")
echo "== the same customer over HTTP"
curl -s "http://$http/v1/customers/$pending" -H "Authorization: Bearer $admin_token"
echo
echo
echo "Try it yourself (tokens and secrets are in $services):"
echo "  1. a customer's view over HTTP:"
echo "     curl -s http://$http/v1/customers/$pending/view -H 'Authorization: Bearer $admin_token'"
echo "  2. the seed's admin action through Kafka (csctl request signs it with admin-service's secret):"
echo "     $csctl request --brokers $brokers --topic admin.customer.action --service admin-service \\"
echo "       --services $services '{\"customerId\":\"$pending\",\"adminId\":\"00000000-0000-4000-8000-000000000001\",\"action\":\"suspend\",\"reason\":\"demo\"}'"
echo "  3. the metrics Prometheus scrapes (docs/prometheus.yml, dashboard docs/grafana/customer-service.json):"
echo "     curl -s http://$http/metrics"
echo "  4. erase that customer's personal data for good (its data key destroyed; names and emails read null):"
echo "     $csctl request --brokers $brokers --topic admin.customer.action --service admin-service \\"
echo "       --services $services '{\"customerId\":\"$pending\",\"adminId\":\"00000000-0000-4000-8000-000000000001\",\"action\":\"erase\"}'"
echo "  personal data is sealed under the master key $data_dir.master-key (keep it apart and backed up)"
echo "  answers on Kafka: customer.request.result (commands), customer.data.response (reads), customer-service.dlq"
if [ "$serve" = 1 ]; then
  echo "The daemon serves on Kafka ($brokers) and HTTP ($http) until Ctrl-C."
  wait "$daemon_pid" || true
  daemon_pid=""
fi
