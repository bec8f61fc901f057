#!/usr/bin/env bash
# Runs cairn end to end on generated sample data: keygen; Kafka ingest (a local Apache Kafka
# 4.4 broker, 3 partitions, some malformed messages → dead-letter topic) into a write-once
# vault; seal a JSONL file into S3 with Object Lock (a local moto_server); verify both; then
# serve policy-gated SQL over the vault (an analyst's masked query, a denied query, an
# auditor's query, a signed result checked offline), every decision recorded on Kafka first;
# seal the decisions topic with cairn ingest and let the auditor read the access log of the
# demo's own queries; checkpoint the vault's log, prove an event, cut a redacted tenant bundle;
# then tamper with copies and show verify catching it (a truncated stream only with the checkpoint). Installs what it needs (Kafka's jars from
# Maven Central once, the Python peers); starts and stops its own services; leaves its work in
# ${DEMO_DIR:-.demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
DIR="${DEMO_DIR:-$PWD/.demo}"
EVENTS="${EVENTS:-20000}"

scripts/ensure-python-deps.sh
scripts/ensure-kafka.sh >/dev/null
. scripts/kafka.sh
echo "== building cairn"
cargo build --release --locked -p cairn
CAIRN="$CARGO_TARGET_DIR/release/cairn"

if [ -d "$DIR" ]; then chmod -R u+w "$DIR"; rm -rf "$DIR"; fi
mkdir -p "$DIR"
echo "== generating $EVENTS events (every 500th line malformed)"
python3 scripts/gen_events.py --count "$EVENTS" --out "$DIR/events.jsonl" --seed 7 --malformed-every 500

echo "== cairn keygen"
"$CAIRN" keygen --out "$DIR/keys"
"$CAIRN" keygen --out "$DIR/service-keys"   # the query service's own key, for signed results

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 150); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$1))" 2>/dev/null && return 0; sleep 0.2; done; echo "port $1 did not open" >&2; return 1; }
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; kafka_stop' EXIT

echo "== Kafka: starting Apache Kafka 4.4 (KRaft) on 127.0.0.1, topics audit (3 partitions) and audit.dlq"
kafka_start "$DIR"
echo "broker at $KAFKA_ADDR"
kafka_topic audit 3
kafka_topic audit.dlq 1
kafka_topic cairn.decisions 1
kafka_topic cairn.alerts 1
kafka_topic cairn.checkpoints 1
python3 scripts/produce.py --brokers "$KAFKA_ADDR" --topic audit --partitions 3 "$DIR/events.jsonl"

MPORT=$(free_port)
cat >"$DIR/cairn.toml" <<TOML
brokers = "$KAFKA_ADDR"
topics = ["audit"]
group = "cairn-demo"
store = "$DIR/vault"
key = "$DIR/keys/signing.key"
dlq_topic = "audit.dlq"
schema_dir = "$PWD/schemas"
metrics_addr = "127.0.0.1:$MPORT"
[segment]
max_events = 5000
max_age_secs = 2
TOML
echo "== cairn ingest --config $DIR/cairn.toml (until all $EVENTS offsets are sealed)"
"$CAIRN" ingest --config "$DIR/cairn.toml" >"$DIR/ingest.out" 2>"$DIR/ingest.log" &
INGEST=$!
PIDS+=($INGEST)
for _ in $(seq 120); do
  sealed=$("$CAIRN" verify --store "$DIR/vault" --pubkey "$DIR/keys/signing.pub" --json 2>/dev/null \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(sum(s["events"]+s["rejected_offsets"]+s["absent_offsets"] for s in r["streams"]))' 2>/dev/null || echo 0)
  [ "$sealed" -ge "$EVENTS" ] && break
  sleep 1
done
sleep 1
echo "== a few of ingest's metrics (http://127.0.0.1:$MPORT/metrics)"
python3 - "$MPORT" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
keep = ("cairn_events_sealed_total{", "cairn_dead_lettered_total{", "cairn_consumer_lag{",
        "cairn_seal_latency_seconds_count", "cairn_seal_latency_seconds_sum", "cairn_store_failing")
print("\n".join(l for l in body.splitlines() if l.startswith(keep)))
PY
kill -TERM "$INGEST"; wait "$INGEST"
cat "$DIR/ingest.out"

echo "== cairn verify (local vault written by ingest)"
"$CAIRN" verify --store "$DIR/vault" --pubkey "$DIR/keys/signing.pub"

echo "== S3 with Object Lock: starting moto_server on 127.0.0.1, cairn seal of the JSONL file"
PORT=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$PORT" >"$DIR/moto.log" 2>&1 &
PIDS+=($!)
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
  AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
wait_port "$PORT"
python3 tests/services/s3_admin.py create-bucket audit --lock --default-retention-days 1
"$CAIRN" seal --input "$DIR/events.jsonl" --source-id billing --store s3://audit/demo \
  --key "$DIR/keys/signing.key" --segment-events 5000 --rejects "$DIR/rejects-s3.jsonl"
echo "first rejected line:"; head -n 1 "$DIR/rejects-s3.jsonl"
"$CAIRN" verify --store s3://audit/demo --pubkey "$DIR/keys/signing.pub"

echo "== cairn serve: policy-gated SQL over the verified local vault (policies/, API keys per role);"
echo "   every decision is acknowledged on the Kafka topic cairn.decisions before any data is read"
QPORT=$(free_port)
cat >"$DIR/serve.toml" <<TOML
[query]
listen = "127.0.0.1:$QPORT"
store = "$DIR/vault"
pubkeys = ["$DIR/keys/signing.pub"]
refresh_secs = 1
signing_key = "$DIR/service-keys/signing.key"
tables = [{ name = "events", streams = ["audit"] }, { name = "access_log", streams = ["cairn.decisions"] }]
[query.decision_log]
brokers = "$KAFKA_ADDR"
[query.policy]
dir = "$PWD/policies"
[[query.api_keys]]
name = "ann"
sha256 = "$(printf %s demo-analyst-key | sha256sum | cut -d' ' -f1)"
roles = ["analyst"]
tenant = "acme"
[[query.api_keys]]
name = "audrey"
sha256 = "$(printf %s demo-auditor-key | sha256sum | cut -d' ' -f1)"
roles = ["auditor"]
TOML
"$CAIRN" serve --config "$DIR/serve.toml" >"$DIR/serve.out" 2>"$DIR/serve.log" &
PIDS+=($!)
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$QPORT/readyz" >/dev/null && break; sleep 0.2; done
q() { # q KEY SQL: prints the HTTP status and the JSON answer, abridged
  curl -s -w '\n%{http_code}\n' -H "X-Api-Key: $1" -H 'content-type: application/json' \
    -d "$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$2")" "http://127.0.0.1:$QPORT/v1/query" \
  | python3 -c '
import json, sys
body, status = sys.stdin.read().rsplit("\n", 2)[0:2]
v = json.loads(body)
if "error" in v: print(f"HTTP {status}", json.dumps(v["error"]))
else: print(f"HTTP {status}", json.dumps({"rows": v["rows"][:4], "row_count": v["row_count"], "segments_read": len(v["segments"]), "policy": {k: v["policy"][k] for k in ("reasons", "flags")}}, indent=None))'
}
echo "-- analyst (tenant acme): pii/confidential rows have actor.ip and details masked"
q demo-analyst-key "SELECT tenant, sensitivity, actor['ip'] AS ip, details FROM events WHERE sensitivity IN ('pii', 'public') ORDER BY event_id LIMIT 4"
echo "-- analyst asking for another tenant's rows: the row filter sits beneath the query, so none"
q demo-analyst-key "SELECT count(*) AS n FROM events WHERE tenant = 'globex'"
echo "-- analyst reading the access log: denied by policy"
q demo-analyst-key "SELECT * FROM access_log"
echo "-- auditor: every tenant"
q demo-auditor-key "SELECT tenant, count(*) AS n FROM events GROUP BY tenant ORDER BY tenant"
echo "-- analyst asks for a signed result; cairn verify-result checks it offline with the service's public key"
curl -s -H "X-Api-Key: demo-analyst-key" -H 'content-type: application/json' \
  -d '{"sql": "SELECT action, count(*) AS n FROM events GROUP BY action ORDER BY action", "sign": true}' \
  "http://127.0.0.1:$QPORT/v1/query" >"$DIR/signed.json"
"$CAIRN" verify-result "$DIR/signed.json" --pubkey "$DIR/service-keys/signing.pub" | tail -n 2

echo "== cairn ingest seals the decisions topic like any other (the auditors are audited)"
sed -e 's/^topics = .*/topics = ["cairn.decisions"]/' -e 's/^group = .*/group = "cairn-demo-decisions"/' \
  -e '/^metrics_addr/d' "$DIR/cairn.toml" >"$DIR/decisions.toml"
"$CAIRN" ingest --config "$DIR/decisions.toml" >"$DIR/ingest-decisions.out" 2>"$DIR/ingest-decisions.log" &
INGEST=$!
PIDS+=($INGEST)
for _ in $(seq 60); do
  n=$("$CAIRN" verify --store "$DIR/vault" --pubkey "$DIR/keys/signing.pub" --json 2>/dev/null \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(sum(s["events"] for s in r["streams"] if s["stream"].startswith("cairn.decisions/")))' 2>/dev/null || echo 0)
  [ "$n" -ge 9 ] && break   # 5 decisions and 4 completions so far
  sleep 1
done
kill -TERM "$INGEST"; wait "$INGEST"
"$CAIRN" verify --store "$DIR/vault" --pubkey "$DIR/keys/signing.pub" | tail -n 3
sleep 2  # cairn serve admits the new segments (refresh_secs = 1)
echo "-- auditor: who read tenant acme's data, and what happened to each request"
q demo-auditor-key "SELECT actor.id AS who, outcome, details['code'] AS code, count(*) AS n FROM access_log WHERE tenant = 'acme' AND action = 'query.execute' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
echo "-- the decision log's own metrics"
curl -s "http://127.0.0.1:$QPORT/metrics" | grep -E '^cairn_query_decision_log_(records_total|ready|unavailable_total)' || true

echo "== the auditor's toolkit (docs/AUDITING.md): the log over the vault's segments"
"$CAIRN" keygen --out "$DIR/log-keys" >/dev/null   # the log's own key, apart from the sealing key
echo "-- cairn checkpoint: append every segment to the log, sign, publish for witnesses (topic cairn.checkpoints)"
"$CAIRN" checkpoint --store "$DIR/vault" --key "$DIR/log-keys/signing.key" \
  --publish-brokers "$KAFKA_ADDR" --publish-topic cairn.checkpoints >"$DIR/checkpoint.txt" 2>"$DIR/checkpoint.log"
cat "$DIR/checkpoint.txt"
KEYS=(--pubkey "$DIR/keys/signing.pub" --pubkey "$DIR/log-keys/signing.pub")
"$CAIRN" verify --store "$DIR/vault" "${KEYS[@]}" --checkpoint "$DIR/checkpoint.txt" | tail -n 3
ID=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    try: print(json.loads(l)["event_id"]); break
    except Exception: pass' "$DIR/events.jsonl")
echo "-- cairn prove $ID, then cairn verify-proof offline"
"$CAIRN" prove --store "$DIR/vault" --event-id "$ID" --pubkey "$DIR/log-keys/signing.pub" >"$DIR/proof.json" 2>/dev/null
"$CAIRN" verify-proof "$DIR/proof.json" "${KEYS[@]}"
echo "-- cairn bundle: tenant acme's events only (redacted), each with its proof, verified with no store"
"$CAIRN" bundle --store "$DIR/vault" --tenant acme --redacted --out "$DIR/acme.tar" --pubkey "$DIR/log-keys/signing.pub"
"$CAIRN" verify --bundle "$DIR/acme.tar" "${KEYS[@]}" | tail -n 1

echo "== tampering with a copy of the local vault (one flipped byte in a Parquet file)"
cp -r "$DIR/vault" "$DIR/tampered"; chmod -R u+w "$DIR/tampered"
f=$(find "$DIR/tampered" -name '*.parquet' | sort | sed -n 2p)
python3 - "$f" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 1; open(p, "wb").write(b)
PY
set +e
"$CAIRN" verify --store "$DIR/tampered" "${KEYS[@]}"
code=$?
set -e
echo "verify exit code on the tampered copy: $code (1 = integrity failure found)"
[ "$code" -eq 1 ]
echo "== deleting the newest segment of one stream in another copy: only the checkpoint can tell"
cp -r "$DIR/vault" "$DIR/truncated"; chmod -R u+w "$DIR/truncated"
m=$(find "$DIR/truncated/v1/streams/audit" -name '*.manifest' | sort | tail -n 1)
rm "$m" "${m%.manifest}.parquet"
set +e
"$CAIRN" verify --store "$DIR/truncated" --pubkey "$DIR/keys/signing.pub" --checkpoint "$DIR/checkpoint.txt" \
  --pubkey "$DIR/log-keys/signing.pub" | grep -E 'truncated_stream|INTEGRITY'
code=${PIPESTATUS[0]}
set -e
echo "verify --checkpoint exit code on the truncated copy: $code"
[ "$code" -eq 1 ]
echo "== demo complete; files in $DIR"
