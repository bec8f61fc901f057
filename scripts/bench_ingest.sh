#!/usr/bin/env bash
# Ingest benchmark, one run on the same topic (3 partitions, EVENTS events from
# scripts/gen_events.py, produced to a local Apache Kafka 4.4 broker started here):
#   raw:   a plain librdkafka consumer (confluent-kafka, batch consume) that only counts messages
#   cairn: `cairn ingest` from Kafka to sealed, verified segments (time until every offset of
#          every partition is in a stored manifest), plus its peak RSS
# Reports events/s and MB/s (message payload bytes) of both, their ratio, and cairn's peak RSS.
# A 5 GB backlog: EVENTS=14000000 (~376 B per event). Build first: cargo build --release -p cairn.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; cd "$ROOT"
CAIRN="${CAIRN_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}/release/cairn}"
EVENTS="${EVENTS:-1000000}"
DIR="${BENCH_DIR:-/tmp/cairn-bench-ingest}"
scripts/ensure-python-deps.sh
scripts/ensure-kafka.sh >/dev/null
. scripts/kafka.sh
[ -x "$CAIRN" ] || { echo "build cairn first: cargo build --release -p cairn" >&2; exit 1; }
if [ -d "$DIR" ]; then chmod -R u+w "$DIR"; rm -rf "$DIR"; fi
mkdir -p "$DIR"
PIDS=(); trap 'kill "${PIDS[@]}" 2>/dev/null || true; kafka_stop' EXIT

kafka_start "$DIR" "${KAFKA_HEAP:-1g}"
PORT="${KAFKA_ADDR##*:}"
kafka_topic audit 3
kafka_topic audit.dlq 1
python3 scripts/gen_events.py --count "$EVENTS" --out "$DIR/events.jsonl" --seed 1
python3 scripts/produce.py --brokers "$KAFKA_ADDR" --topic audit --partitions 3 "$DIR/events.jsonl"
# Payload bytes: the file without its newlines (each line is one message value).
BYTES=$(( $(stat -c %s "$DIR/events.jsonl") - EVENTS ))
rm -f "$DIR/events.jsonl"   # the broker has it; keep the disk for the vault

echo "== raw consumption (confluent-kafka, counting only)"
RAW=$(python3 - "$PORT" "$EVENTS" <<'PY'
import sys, time
from confluent_kafka import Consumer
port, n = sys.argv[1], int(sys.argv[2])
c = Consumer({"bootstrap.servers": f"127.0.0.1:{port}", "group.id": "raw-count",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe(["audit"])
got, t0, first = 0, time.time(), None
while got < n and time.time() - t0 < 3600:
    for m in c.consume(num_messages=10000, timeout=1.0):
        if m.error() is None:
            if first is None: first = time.time()
            got += 1
print(f"{got} {time.time() - first:.3f}")
PY
)
read -r RAW_N RAW_S <<<"$RAW"
echo "raw: $RAW_N messages in ${RAW_S}s (from the first message)"

echo "== cairn ingest"
"$CAIRN" keygen --out "$DIR/keys" >/dev/null
START=$(date +%s.%N)
/usr/bin/time -f '%e %M' -o "$DIR/ingest.time" "$CAIRN" ingest --brokers "127.0.0.1:$PORT" --topics audit \
  --group cairn-bench --store "$DIR/vault" --key "$DIR/keys/signing.key" --dlq-topic audit.dlq \
  --schema-dir "$ROOT/schemas" --segment-max-age-secs 2 --log-format json >"$DIR/ingest.out" 2>"$DIR/ingest.log" &
PIDS+=($!)
# Done when the stored manifests cover all offsets (the verify step below re-checks everything).
while :; do
  # Offsets covered by stored manifests, from their names (cheap: no interpreter start-up
  # stealing CPU from the process measured).
  covered=$( (ls "$DIR"/vault/v1/streams/audit/*/ 2>/dev/null || true) | awk -F'[-.]' '/manifest$/ {n += $2 - $1 + 1} END {print n+0}')
  [ "$covered" -ge "$EVENTS" ] && break
  sleep 0.1
done
END=$(date +%s.%N)
pkill -TERM -f "^$CAIRN ingest --brokers 127.0.0.1:$PORT" || true  # not /usr/bin/time itself
wait "${PIDS[0]}" 2>/dev/null || true
sleep 1
read -r _ RSS_KB < "$DIR/ingest.time"
# Startup: from launch to the group's first assignment (joining the group, opening streams).
ASSIGNED=$(python3 - "$DIR/ingest.log" <<'PY'
import json, sys, datetime
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    if e["fields"].get("message") == "partition assigned":
        print(datetime.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()); break
PY
)
echo "cairn ingest startup (launch to first partition assigned): $(python3 -c "print(f'{$ASSIGNED - $START:.2f}')") s"
"$CAIRN" verify --store "$DIR/vault" --pubkey "$DIR/keys/signing.pub" | grep -E "^(INTACT|INTEGRITY FAILURE|INCOMPLETE)"
python3 - "$RAW_N" "$RAW_S" "$START" "$END" "$RSS_KB" "$EVENTS" "$BYTES" <<'PY'
import sys
raw_n, raw_s, start, end, rss, n, b = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
cairn_s = end - start
mb = b / 1e6
print(f"payload: {n} events, {mb:,.0f} MB ({b/n:.0f} B per event)")
print(f"raw consumer : {raw_n:>9} msgs in {raw_s:6.2f}s = {raw_n/raw_s:>10,.0f} msg/s, {mb/raw_s:6.1f} MB/s")
print(f"cairn ingest : {n:>9} evts in {cairn_s:6.2f}s = {n/cairn_s:>10,.0f} ev/s,  {mb/cairn_s:6.1f} MB/s (start to last manifest, incl. startup/rebalance)")
print(f"ratio cairn/raw: {(n/cairn_s)/(raw_n/raw_s):.2f}x   (target >= 0.8x)")
print(f"cairn ingest peak RSS: {rss/1024:.1f} MiB (target <= 512 MiB)")
PY
