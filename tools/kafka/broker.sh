#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft: broker and controller in one
# process) on 127.0.0.1, for development, tests and demos.
#
#   tools/kafka/broker.sh start [--port P] [--data-dir D]   fetch jars, format, start, wait until it serves
#   tools/kafka/broker.sh stop  [--data-dir D]              stop it cleanly (SIGTERM, then wait)
#   tools/kafka/broker.sh status [--data-dir D]
#
# Jars come from Maven Central through Maven (tools/kafka/pom.xml) into
# .kafka/libs-<version>; the data dir holds the KRaft log, the config, the pid
# and server.log. KAFKA_VERSION overrides the version (default 4.1.1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

command="${1:-}"
shift || true
port="${KAFKA_PORT:-19092}"
data_dir="${KAFKA_DATA_DIR:-$root/.kafka/data}"
version="${KAFKA_VERSION:-4.1.1}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    *) echo "broker: unknown option $1" >&2; exit 2 ;;
  esac
done
controller_port=$((port + 1))
libs="$root/.kafka/libs-$version"
pid_file="$data_dir/broker.pid"
start_timeout_s=120
stop_timeout_s=60

fetch_jars() {
  if [ -f "$libs/.complete" ]; then return; fi
  command -v mvn >/dev/null || { echo "broker: Maven (mvn) is needed to fetch the broker's jars" >&2; exit 2; }
  echo "broker: fetching Apache Kafka $version jars from Maven Central"
  rm -rf "$libs"
  mvn -q -B -f "$here/pom.xml" -Dkafka.version="$version" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime
  touch "$libs/.complete"
}

running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

write_config() {
  mkdir -p "$data_dir/kraft" "$data_dir/logs"
  cat > "$data_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data_dir/kraft
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
# Long enough for tests that kill producers mid-transaction.
transaction.max.timeout.ms=900000
PROPS
}

java_cmd() {
  java -Xms256m -Xmx768m -XX:+UseG1GC -Dkafka.logs.dir="$data_dir/logs" \
       -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$libs/*" "$@"
}

start() {
  if running; then echo "broker: already running (pid $(cat "$pid_file")) on 127.0.0.1:$port"; return; fi
  fetch_jars
  write_config
  if [ ! -f "$data_dir/kraft/meta.properties" ]; then
    java_cmd kafka.tools.StorageTool format --standalone -t "$(java_cmd kafka.tools.StorageTool random-uuid)" \
      -c "$data_dir/server.properties" > "$data_dir/logs/format.log" 2>&1 \
      || { echo "broker: formatting storage failed:" >&2; cat "$data_dir/logs/format.log" >&2; exit 1; }
  fi
  rm -f "$data_dir/logs/server.log"
  # Its own session, so it outlives this script and its terminal.
  setsid java -Xms256m -Xmx768m -XX:+UseG1GC -Dkafka.logs.dir="$data_dir/logs" \
    -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$libs/*" \
    kafka.Kafka "$data_dir/server.properties" > "$data_dir/logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$pid_file"
  for _ in $(seq 1 $((start_timeout_s * 2))); do
    if grep -q "Kafka Server started" "$data_dir/logs/server.log" 2>/dev/null; then
      echo "broker: Apache Kafka $version serving on 127.0.0.1:$port (data in $data_dir)"
      return
    fi
    if ! running; then
      echo "broker: it exited during start-up:" >&2
      tail -n 30 "$data_dir/logs/stdout.log" "$data_dir/logs/server.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.5
  done
  echo "broker: not serving after ${start_timeout_s}s; see $data_dir/logs" >&2
  exit 1
}

stop() {
  if ! running; then echo "broker: not running"; rm -f "$pid_file"; return; fi
  local pid
  pid="$(cat "$pid_file")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((stop_timeout_s * 2))); do
    running || { rm -f "$pid_file"; echo "broker: stopped"; return; }
    sleep 0.5
  done
  echo "broker: still running after ${stop_timeout_s}s, killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pid_file"
}

case "$command" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "broker: running (pid $(cat "$pid_file"))"; else echo "broker: not running"; exit 1; fi ;;
  *) echo "usage: tools/kafka/broker.sh start|stop|status [--port P] [--data-dir D]" >&2; exit 2 ;;
esac
