#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install, build, generate a
# deterministic demo history, append it to a log, and print a summary.
#   tools/demo.sh [--customers N] [--seed S] [--data-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

customers=200 seed=42 data_dir=demo-data
while [ $# -gt 0 ]; do
  case "$1" in
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
trap 'bash tools/kafka/broker.sh stop --data-dir "$kafka_dir" >/dev/null 2>&1 || true' EXIT
bash tools/kafka/broker.sh start --port 19292 --data-dir "$kafka_dir"
$csctl publish --data-dir "$data_dir" --brokers 127.0.0.1:19292 --once
