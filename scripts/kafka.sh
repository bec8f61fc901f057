# Start and stop a single-node Apache Kafka broker (KRaft) on 127.0.0.1 for the demo and the
# benchmarks. Source it, then:
#   kafka_start WORKDIR [HEAP]    formats WORKDIR/kafka, starts the broker on a free port, waits
#                                 until it answers metadata; sets KAFKA_ADDR and KAFKA_PID
#   kafka_topic NAME PARTITIONS   creates a topic
#   kafka_stop                    stops the broker (also call it from an EXIT trap)
# Needs scripts/ensure-kafka.sh (the jars) and Python's confluent-kafka (ensure-python-deps.sh).

_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

kafka_start() {
  local work="$1" heap="${2:-512m}" home port cport
  home="$("$(dirname "${BASH_SOURCE[0]}")/ensure-kafka.sh")"
  port="$(_free_port)"
  cport="$(_free_port)"
  mkdir -p "$work/kafka/data"
  cat >"$work/kafka/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$work/kafka/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
  cat >"$work/kafka/log4j2.properties" <<EOF
appender.file.type = File
appender.file.name = file
appender.file.fileName = $work/kafka/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
EOF
  local cid
  cid="$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))')"
  java -cp "$home/libs/*" -Dlog4j2.configurationFile="$work/kafka/log4j2.properties" \
    kafka.tools.StorageTool format "--cluster-id=$cid" -c "$work/kafka/server.properties" >"$work/kafka/format.log" 2>&1 \
    || { cat "$work/kafka/format.log" >&2; return 1; }
  java "-Xms128m" "-Xmx$heap" -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$work/kafka/log4j2.properties" -cp "$home/libs/*" \
    kafka.Kafka "$work/kafka/server.properties" >"$work/kafka/stdout.log" 2>&1 &
  KAFKA_PID=$!
  KAFKA_ADDR="127.0.0.1:$port"
  python3 - "$KAFKA_ADDR" <<'PY' || { echo "kafka did not start; see $work/kafka/broker.log" >&2; return 1; }
import sys, time
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})  # quiet while it starts
deadline = time.time() + 60
while time.time() < deadline:
    try:
        if a.list_topics(timeout=1).brokers:
            sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit(1)
PY
}

kafka_topic() {
  python3 - "$KAFKA_ADDR" "$1" "$2" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})  # quiet while it starts
for f in a.create_topics([NewTopic(sys.argv[2], int(sys.argv[3]), 1)]).values():
    f.result()
PY
}

kafka_stop() {
  if [ -n "${KAFKA_PID:-}" ]; then
    kill "$KAFKA_PID" 2>/dev/null || true
    wait "$KAFKA_PID" 2>/dev/null || true
    KAFKA_PID=""
  fi
}
