#!/usr/bin/env bash
# Benchmark the query service against DuckDB, in one run, on the same sealed segments:
#   1. latency (p50, p99) of gated queries over HTTP (authentication + policy + DataFusion)
#      vs DuckDB running the same SQL in-process on the same Parquet files, for:
#        count by action for one tenant and day; top-10 actors; a point lookup by event_id
#   2. policy evaluation alone: regorus and opa-wasm (cairn's bench_policy example) vs
#      `opa bench` on the same policy and input
#   3. 60 s of concurrent clients: throughput, p99, errors
# Every query's decision record is produced to a real Apache Kafka broker (started here) and
# acknowledged before the query runs, so the latencies include it; the Server-Timing header
# gives the acknowledgement's own share (p50/p99 of produce-and-ack).
#
# Environment:
#   CAIRN_BIN  cairn binary (default: ${CARGO_TARGET_DIR:-target}/release/cairn)
#   EVENTS     events to seal (default: 1000000)
#   RUNS       timed requests per query and side (default: 50; plus 5 warm-up)
#   CLIENTS    concurrent clients for the load phase (default: 4)
#   LOAD_SECS  length of the load phase (default: 60)
#   BENCH_DIR  work directory, deleted and recreated (default: /tmp/cairn-bench-query)
#
# Build first: cargo build --release -p cairn --bin cairn --example bench_policy (see README).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-target}"
CAIRN_BIN="${CAIRN_BIN:-$TARGET/release/cairn}"
BENCH_POLICY="${BENCH_POLICY:-$TARGET/release/examples/bench_policy}"
EVENTS="${EVENTS:-1000000}"
RUNS="${RUNS:-50}"
CLIENTS="${CLIENTS:-4}"
LOAD_SECS="${LOAD_SECS:-60}"
DIR="${BENCH_DIR:-/tmp/cairn-bench-query}"
die() { echo "bench_query: $*" >&2; exit 1; }
[[ -x "$CAIRN_BIN" ]] || die "cairn binary not found at $CAIRN_BIN (cargo build --release -p cairn)"
[[ -x "$BENCH_POLICY" ]] || die "bench_policy not found at $BENCH_POLICY (cargo build --release -p cairn --example bench_policy)"
[[ -n "$DIR" && "$DIR" != "/" ]] || die "refusing BENCH_DIR=$DIR"
scripts/ensure-python-deps.sh
OPA="$(scripts/ensure-opa.sh)"
scripts/ensure-kafka.sh >/dev/null
. scripts/kafka.sh

if [[ -e "$DIR" ]]; then chmod -R u+w "$DIR" 2>/dev/null || true; rm -rf "$DIR"; fi
mkdir -p "$DIR"
echo "== generating and sealing $EVENTS events"
python3 scripts/gen_events.py --count "$EVENTS" --out "$DIR/events.jsonl" --seed 1
"$CAIRN_BIN" keygen --out "$DIR/keys" >/dev/null
"$CAIRN_BIN" seal --input "$DIR/events.jsonl" --source-id bench --store "$DIR/vault" \
  --key "$DIR/keys/signing.key" --rejects /dev/null >/dev/null

echo "== starting Apache Kafka for the decision log"
kafka_start "$DIR"
kafka_topic cairn.decisions 1
kafka_topic cairn.alerts 1

KEY="bench-auditor-key"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$DIR/cairn.toml" <<EOF
[query]
listen = "127.0.0.1:$PORT"
store = "$DIR/vault"
pubkeys = ["$DIR/keys/signing.pub"]
[query.decision_log]
brokers = "$KAFKA_ADDR"
[query.decision_log.alerts]
max_tenants = 0
max_rows = 0
[query.policy]
dir = "$ROOT/policies"
[query.limits]
max_concurrent = 64
[[query.api_keys]]
name = "bench"
sha256 = "$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)"
roles = ["auditor"]
EOF
echo "== starting cairn serve (admits every segment after verifying it)"
START=$(date +%s.%N)
"$CAIRN_BIN" serve --config "$DIR/cairn.toml" >"$DIR/serve.out" 2>"$DIR/serve.log" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; kafka_stop' EXIT
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  kill -0 $SERVE 2>/dev/null || { cat "$DIR/serve.log" >&2; die "cairn serve exited"; }
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || die "cairn serve not ready"
echo "ready after $(python3 -c "print(f'{$(date +%s.%N) - $START:.1f}')") s; RSS $(ps -o rss= -p $SERVE | awk '{printf "%.0f MiB", $1/1024}')"

POINT_ID="$(sed -n '500000p;500000q' "$DIR/events.jsonl" | python3 -c 'import json,sys; l=sys.stdin.readline(); print(json.loads(l)["event_id"] if l else "")')"
[[ -n "$POINT_ID" ]] || POINT_ID="$(head -1 "$DIR/events.jsonl" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["event_id"])')"

python3 - "$PORT" "$KEY" "$DIR" "$RUNS" "$CLIENTS" "$LOAD_SECS" "$POINT_ID" <<'PY'
import http.client, json, statistics, sys, threading, time, glob
import duckdb
port, key, d, runs, clients, load_secs, point = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
files = sorted(glob.glob(f"{d}/vault/v1/streams/*/*/*.parquet"))
queries = {
    "count by action, one tenant and day": "SELECT action, count(*) AS n FROM events WHERE tenant = 'acme' AND occurred_at >= '2026-11-01T00:00:00Z' AND occurred_at < '2026-11-02T00:00:00Z' GROUP BY action ORDER BY action",
    "top-10 actors": "SELECT actor['id'] AS actor, count(*) AS n FROM events GROUP BY 1 ORDER BY n DESC, actor LIMIT 10",
    "point lookup by event_id": f"SELECT event_id, action, tenant FROM events WHERE event_id = '{point}'",
}
con = duckdb.connect()
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet({files!r})")

log_ms = []
def cairn(conn, sql):
    conn.request("POST", "/v1/query", body=json.dumps({"sql": sql}), headers={"x-api-key": key, "content-type": "application/json"})
    r = conn.getresponse(); body = r.read()
    if r.status != 200: raise SystemExit(f"cairn {r.status}: {body[:300]!r}")
    timing = dict(p.strip().split(";dur=") for p in (r.getheader("server-timing") or "").split(",") if ";dur=" in p)
    if "log" in timing: log_ms.append(float(timing["log"]))
    return json.loads(body)["rows"]

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

print(f"\n== latency: {runs} timed requests per query and side (+5 warm-up), in one run; {len(files)} segments")
print(f"{'query':40} {'cairn p50':>10} {'cairn p99':>10} {'duckdb p50':>11} {'duckdb p99':>11} {'p50 ratio':>10}")
conn = http.client.HTTPConnection("127.0.0.1", int(port))
for name, sql in queries.items():
    rows_c = cairn(conn, sql); rows_d = con.execute(sql).fetchall()
    if len(rows_c) != len(rows_d): raise SystemExit(f"{name}: cairn {len(rows_c)} rows, duckdb {len(rows_d)}")
    tc, td = [], []
    for i in range(runs + 5):  # alternate sides so noise hits both
        t = time.perf_counter(); cairn(conn, sql); c = time.perf_counter() - t
        t = time.perf_counter(); con.execute(sql).fetchall(); k = time.perf_counter() - t
        if i >= 5: tc.append(c); td.append(k)
    p50c, p99c, p50d, p99d = pct(tc, 50), pct(tc, 99), pct(td, 50), pct(td, 99)
    print(f"{name:40} {p50c*1e3:8.1f}ms {p99c*1e3:8.1f}ms {p50d*1e3:9.1f}ms {p99d*1e3:9.1f}ms {p50c/p50d:9.2f}x")

ack = list(log_ms)
print(f"decision record produce-and-ack (Kafka, acks=all, in the latencies above): p50 {pct(ack,50):.2f} ms  p99 {pct(ack,99):.2f} ms  over {len(ack)} requests")

print(f"\n== load: {clients} concurrent clients for {load_secs} s, the three queries in turn")
lat, errors, lock = [], [0], threading.Lock()
stop = time.time() + load_secs
def client(n):
    c = http.client.HTTPConnection("127.0.0.1", int(port)); qs = list(queries.values()); i = n
    while time.time() < stop:
        t = time.perf_counter()
        try:
            cairn(c, qs[i % len(qs)])
            with lock: lat.append(time.perf_counter() - t)
        except BaseException:
            with lock: errors[0] += 1
            c = http.client.HTTPConnection("127.0.0.1", int(port))
        i += 1
ts = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"requests {len(lat)}  throughput {len(lat)/load_secs:.1f}/s  p50 {pct(lat,50)*1e3:.1f} ms  p99 {pct(lat,99)*1e3:.1f} ms  errors {errors[0]}")
PY

echo
echo "== policy evaluation alone (the shipped policy, an analyst's input)"
INPUT="$DIR/policy_input.json"
python3 - "$INPUT" <<'PY'
import json, sys, time
json.dump({"subject": {"id": "ann", "roles": ["analyst"], "tenant": "acme", "auth": "oidc"},
           "tables": {"events": {"columns": ["action", "actor", "occurred_at", "tenant"]}},
           "request": {"now_us": int(time.time() * 1e6), "client": "127.0.0.1", "justification": ""}},
          open(sys.argv[1], "w"))
PY
(cd "$ROOT/policies" && "$OPA" build -t wasm -e cairn/authz/decision --ignore '*_test.rego' --ignore '*.json' -o "$DIR/bundle.tar.gz" .)
"$OPA" bench --format json -d "$ROOT/policies/authz.rego" -i "$INPUT" 'data.cairn.authz.decision' >"$DIR/opa_bench.json"
# Go's testing.BenchmarkResult: N iterations in T nanoseconds.
OPA_NS="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["T"] / r["N"])' "$DIR/opa_bench.json")"
echo "opa bench  (Go OPA 1.22.3): mean $(python3 -c "print(f'{$OPA_NS/1000:.1f}')") µs per evaluation (opa bench reports means only)"
"$BENCH_POLICY" "$ROOT/policies" "$DIR/bundle.tar.gz" "$INPUT" "$OPA_NS"
