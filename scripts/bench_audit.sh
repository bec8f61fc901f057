#!/usr/bin/env bash
# Benchmark of the auditor's toolkit (issue 12) on one store, with peers measured in the same run:
#   a. cairn checkpoint of SEGMENTS new segments (target < 1 s)  vs  sha256sum of their manifests
#   b. cairn prove of one event (target well under 1 s)          vs  DuckDB's point lookup of the
#                                                                    same event_id over the same files
#   c. cairn verify-proof on one core (target >= 10,000 proofs/s), PROOFS proofs of distinct events
#
# Environment:
#   CAIRN_BIN       cairn binary (default: ${CARGO_TARGET_DIR:-target}/release/cairn)
#   EVENTS          events in the store (default: 1000000)
#   SEGMENT_EVENTS  events per segment (default: 1000, so 1,000 segments)
#   RUNS            repetitions of a and b, and of c (default: 5); medians are reported
#   PROOFS          proofs for c (default: 10000)
#   BENCH_DIR       work directory, deleted and recreated (default: /tmp/cairn-bench-audit)
#
# Build cairn first (cargo build --release). Exits non-zero if any step fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CAIRN_BIN="${CAIRN_BIN:-${CARGO_TARGET_DIR:-target}/release/cairn}"
EVENTS="${EVENTS:-1000000}"
SEGMENT_EVENTS="${SEGMENT_EVENTS:-1000}"
RUNS="${RUNS:-5}"
PROOFS="${PROOFS:-10000}"
DIR="${BENCH_DIR:-/tmp/cairn-bench-audit}"

die() { echo "bench_audit: $*" >&2; exit 1; }
[[ -x "$CAIRN_BIN" ]] || die "cairn binary not found at '$CAIRN_BIN' (cargo build --release, or set CAIRN_BIN)"
CAIRN_BIN="$(cd "$(dirname "$CAIRN_BIN")" && pwd)/$(basename "$CAIRN_BIN")"
python3 -c 'import duckdb' 2>/dev/null || die "duckdb is not importable (scripts/ensure-python-deps.sh)"
[[ -n "$DIR" && "$DIR" != "/" ]] || die "refusing BENCH_DIR='$DIR'"
if [[ -e "$DIR" ]]; then chmod -R u+w "$DIR" 2>/dev/null || true; rm -rf "$DIR"; fi
mkdir -p "$DIR"
export CAIRN_LOG=warn

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "bench_audit: $EVENTS events, $SEGMENT_EVENTS per segment, $RUNS runs" >&2
python3 scripts/gen_events.py --count "$EVENTS" --out "$DIR/events.jsonl" --seed 1 >/dev/null 2>&1
"$CAIRN_BIN" keygen --out "$DIR/keys" >/dev/null
KEY="$DIR/keys/signing.key"; PUB="$DIR/keys/signing.pub"
t0=$(now_ms)
"$CAIRN_BIN" seal --input "$DIR/events.jsonl" --source-id app --store "$DIR/vault" --key "$KEY" \
    --segment-events "$SEGMENT_EVENTS" --rejects /dev/null >/dev/null 2>&1
SEAL_MS=$(( $(now_ms) - t0 ))
SEGMENTS=$(find "$DIR/vault/v1/streams" -name '*.manifest' | wc -l)
echo "bench_audit: sealed $SEGMENTS segments in $SEAL_MS ms" >&2

# a. checkpointing SEGMENTS new segments (a fresh copy of the unlogged vault each run).
: > "$DIR/cp.ms"; : > "$DIR/sha.ms"
for i in $(seq 1 "$RUNS"); do
    rm -rf "$DIR/copy"; cp -r "$DIR/vault" "$DIR/copy"; sync
    t0=$(now_ms)
    "$CAIRN_BIN" checkpoint --store "$DIR/copy" --key "$KEY" > "$DIR/cp-copy.txt" 2>/dev/null
    echo $(( $(now_ms) - t0 )) >> "$DIR/cp.ms"
    t0=$(now_ms)
    find "$DIR/copy/v1/streams" -name '*.manifest' -print0 | xargs -0 sha256sum > /dev/null
    echo $(( $(now_ms) - t0 )) >> "$DIR/sha.ms"
    chmod -R u+w "$DIR/copy"
done
rm -rf "$DIR/copy"
CP_MS=$(median < "$DIR/cp.ms"); SHA_MS=$(median < "$DIR/sha.ms")
"$CAIRN_BIN" checkpoint --store "$DIR/vault" --key "$KEY" > "$DIR/cp.txt" 2>/dev/null

# b. proving one event, RUNS distinct events, against DuckDB finding the same rows.
python3 - "$DIR/events.jsonl" "$RUNS" "$PROOFS" "$DIR" <<'PY'
import json, random, sys
path, runs, proofs, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ids = [json.loads(l)["event_id"] for l in open(path)]
rnd = random.Random(7)
open(f"{d}/one.ids", "w").write("\n".join(rnd.sample(ids, runs)) + "\n")
open(f"{d}/many.ids", "w").write("\n".join(rnd.sample(ids, min(proofs, len(ids)))) + "\n")
PY
: > "$DIR/prove.ms"
while read -r id; do
    t0=$(now_ms)
    "$CAIRN_BIN" prove --store "$DIR/vault" --event-id "$id" --pubkey "$PUB" > "$DIR/proof.json"
    echo $(( $(now_ms) - t0 )) >> "$DIR/prove.ms"
    "$CAIRN_BIN" verify-proof "$DIR/proof.json" --pubkey "$PUB" > /dev/null
done < "$DIR/one.ids"
PROVE_MS=$(median < "$DIR/prove.ms"); PROVE_MAX=$(sort -n "$DIR/prove.ms" | tail -1)
DUCK_MS=$(python3 - "$DIR" <<'PY'
import duckdb, statistics, sys, time
d = sys.argv[1]
ts = []
for eid in open(f"{d}/one.ids").read().split():
    con = duckdb.connect()          # a fresh process-like start each time, as cairn prove is
    t = time.perf_counter()
    rows = con.execute(
        f"SELECT * FROM read_parquet('{d}/vault/v1/streams/*/*/*.parquet') WHERE event_id = ?",
        [eid]).fetchall()
    ts.append((time.perf_counter() - t) * 1e3)
    assert len(rows) == 1, (eid, rows)
print(round(statistics.median(ts)))
PY
)

# c. verify-proof throughput on one core.
t0=$(now_ms)
"$CAIRN_BIN" prove --store "$DIR/vault" --event-ids "$DIR/many.ids" --pubkey "$PUB" > "$DIR/proofs.jsonl"
BATCH_MS=$(( $(now_ms) - t0 ))
NPROOFS=$(wc -l < "$DIR/proofs.jsonl")
: > "$DIR/vp.rate"
for i in $(seq 1 "$RUNS"); do
    taskset -c 0 "$CAIRN_BIN" verify-proof "$DIR/proofs.jsonl" --pubkey "$PUB" 2> "$DIR/vp.err" > /dev/null
    sed -n 's/.*(\([0-9]*\) proofs\/s on one core).*/\1/p' "$DIR/vp.err" >> "$DIR/vp.rate"
done
VP_RATE=$(median < "$DIR/vp.rate")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "auditor toolkit, $EVENTS events in $SEGMENTS segments, median of $RUNS runs"
echo "| measure | cairn | peer | ratio | target |"
echo "|---|---|---|---|---|"
echo "| checkpoint $SEGMENTS new segments | $CP_MS ms | sha256sum of the manifests: $SHA_MS ms | $(ratio "$CP_MS" "$SHA_MS")x | < 1000 ms |"
echo "| prove one event (max $PROVE_MAX ms) | $PROVE_MS ms | DuckDB point lookup: $DUCK_MS ms | $(ratio "$PROVE_MS" "$DUCK_MS")x | well under 1000 ms |"
echo "| verify-proof, one core, $NPROOFS proofs | $VP_RATE proofs/s | target 10,000/s | $(ratio "$VP_RATE" 10000)x | >= 10,000/s |"
echo "(prove of the $NPROOFS events in one pass: $BATCH_MS ms; seal: $SEAL_MS ms)"
echo "per-run checkpoint ms: $(tr '\n' ' ' < "$DIR/cp.ms"); prove ms: $(tr '\n' ' ' < "$DIR/prove.ms"); verify-proof /s: $(tr '\n' ' ' < "$DIR/vp.rate")"
