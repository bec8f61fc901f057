#!/usr/bin/env bash
# Benchmark cairn against peers, RUNS times (interleaved, so each run's ratios compare steps
# measured seconds apart on this noisy machine), on the same files:
#   a. DuckDB      JSONL -> Parquet (zstd, DuckDB's default level 3)  vs  b. cairn seal (zstd 3)
#   c. sha256sum over the sealed *.parquet segments                   vs  d. cairn verify
#   e. DuckDB reading every column of every row of the same segments  vs  d. cairn verify
#   f. (S3=1, the default) cairn seal to, then cairn verify of, S3 with Object Lock on a local
#      moto_server, once: times only (moto, a Python server, is the bottleneck; no peer).
# plus the peak RSS of cairn seal (target <= 512 MiB).
#
# DuckDB is timed two ways: the whole `python3` process (interpreter start and `import duckdb`
# included, as the issue's baseline was) and the query alone, in-process (stricter). Ratios
# are given against both.
#
# Environment:
#   CAIRN_BIN  cairn binary   (default: ${CARGO_TARGET_DIR:-target}/release/cairn, relative to the repo root)
#   EVENTS     events to generate (default: 1000000)
#   RUNS       measured runs (default: 3); the report gives each run's ratios and their medians
#   S3         1 (default) to add step f, 0 to skip it
#   BENCH_DIR  work directory, deleted and recreated (default: /tmp/cairn-bench)
#
# Build cairn first (cargo build --release). Exits non-zero if any step fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CAIRN_BIN="${CAIRN_BIN:-${CARGO_TARGET_DIR:-target}/release/cairn}"
EVENTS="${EVENTS:-1000000}"
DIR="${BENCH_DIR:-/tmp/cairn-bench}"
RUNS="${RUNS:-3}"
S3="${S3:-1}"
TIME=/usr/bin/time

die() { echo "bench: $*" >&2; exit 1; }

[[ "$EVENTS" =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be a positive integer (got '$EVENTS')"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ "$S3" == 0 || "$S3" == 1 ]] || die "S3 must be 0 or 1 (got '$S3')"
[[ -n "$DIR" && "$DIR" != "/" ]] || die "refusing to use BENCH_DIR='$DIR'"
[[ -x "$CAIRN_BIN" ]] || command -v "$CAIRN_BIN" >/dev/null 2>&1 || die "cairn binary not found at '$CAIRN_BIN' (build with: cargo build --release, or set CAIRN_BIN)"
if [[ "$CAIRN_BIN" == */* ]]; then
    CAIRN_BIN="$(cd "$(dirname "$CAIRN_BIN")" && pwd)/$(basename "$CAIRN_BIN")"
else
    CAIRN_BIN="$(command -v "$CAIRN_BIN")"
fi

# --- prerequisites -----------------------------------------------------------------------
if [[ ! -x "$TIME" ]]; then
    echo "bench: installing GNU time" >&2
    SUDO=""
    [[ "$(id -u)" -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get install -y time >/dev/null || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y time >/dev/null; }
    [[ -x "$TIME" ]] || die "GNU time is still missing at $TIME"
fi
if ! python3 -c 'import duckdb' 2>/dev/null; then
    echo "bench: installing duckdb" >&2
    pip install --quiet duckdb
    python3 -c 'import duckdb' || die "duckdb is not importable after pip install"
fi

# --- work dir, data, keys ----------------------------------------------------------------
make_writable_and_remove() {   # sealed segments are read-only
    if [[ -e "$1" ]]; then
        chmod -R u+w "$1" 2>/dev/null || true
        rm -rf "$1"
    fi
}
make_writable_and_remove "$DIR"
mkdir -p "$DIR"

echo "bench: generating $EVENTS events" >&2
python3 scripts/gen_events.py --count "$EVENTS" --out "$DIR/events.jsonl" --seed 1
INPUT_BYTES=$(stat -c %s "$DIR/events.jsonl")

"$CAIRN_BIN" keygen --out "$DIR/keys" >"$DIR/keygen.log" 2>&1 || { cat "$DIR/keygen.log" >&2; die "cairn keygen failed"; }
[[ -f "$DIR/keys/signing.key" && -f "$DIR/keys/signing.pub" ]] || die "cairn keygen did not write $DIR/keys/signing.{key,pub}"

# --- measurement helper ------------------------------------------------------------------
# timed NAME -- CMD...   runs CMD once under GNU time (stdout+stderr to $DIR/NAME.log) and
# appends "SECONDS RSS_KiB" to $DIR/NAME.times; records the exact command (first run) for the report.
declare -a CMD_LINES=()
shell_quote() {   # readable, copy-pasteable quoting of one argument
    local a="$1"
    if [[ "$a" =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then
        printf '%s' "$a"
    elif [[ "$a" != *"'"* ]]; then
        printf "'%s'" "$a"
    else
        a="${a//\\/\\\\}"; a="${a//\"/\\\"}"; a="${a//\$/\\\$}"; a="${a//\`/\\\`}"
        printf '"%s"' "$a"
    fi
}
timed() {
    local name="$1"; shift
    [[ "$1" == "--" ]] && shift
    local shown="" arg
    for arg in "$@"; do shown+="${shown:+ }$(shell_quote "$arg")"; done
    [[ "$RUN" == 1 ]] && CMD_LINES+=("$name: $shown")
    echo "bench: run $RUN: $name" >&2
    if ! "$TIME" -f '%e %M' -o "$DIR/$name.time" "$@" >"$DIR/$name.log" 2>&1; then
        echo "bench: '$name' failed; last lines of $DIR/$name.log:" >&2
        tail -n 20 "$DIR/$name.log" >&2 || true
        [[ -f "$DIR/$name.time" ]] && cat "$DIR/$name.time" >&2
        exit 1
    fi
    tail -n 1 "$DIR/$name.time" >>"$DIR/$name.times"
}

# The DuckDB steps: duck.py also writes the query's own time (perf_counter) to OUT.
cat >"$DIR/duck.py" <<'PY'
import sys, time
import duckdb
out, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
t0 = time.perf_counter()
con.sql(sql).fetchall()
elapsed = time.perf_counter() - t0
with open(out, "a") as f:
    f.write(f"{elapsed:.4f}\n")
PY

DUCK_SQL="COPY (SELECT * FROM read_json('$DIR/events.jsonl')) TO '$DIR/duck.parquet' (FORMAT parquet, COMPRESSION zstd)"
# Every column of every row: hashing a value needs it decoded.
READ_SQL="SELECT count(*), sum(hash(COLUMNS(*))) FROM read_parquet('$DIR/vault/**/*.parquet')"
SHA_CMD="find $(printf '%q' "$DIR/vault") -name '*.parquet' -print0 | xargs -0 -r sha256sum > /dev/null"

for RUN in $(seq "$RUNS"); do
    # Untimed: put the input in the page cache so (a) and (b) start from the same state.
    cat "$DIR/events.jsonl" >/dev/null
    rm -f "$DIR/duck.parquet"
    timed duckdb -- python3 "$DIR/duck.py" "$DIR/duckdb.query" "$DUCK_SQL"

    # b. cairn seal (fresh store)
    make_writable_and_remove "$DIR/vault"
    timed seal -- "$CAIRN_BIN" seal --input "$DIR/events.jsonl" --source-id bench \
        --store "$DIR/vault" --key "$DIR/keys/signing.key"
    SEGMENTS=$(find "$DIR/vault" -name '*.parquet' | wc -l)
    [[ "$SEGMENTS" -gt 0 ]] || die "cairn seal wrote no *.parquet segments under $DIR/vault"

    # c. sha256sum over all segments (one untimed warm-up run first)
    bash -c "$SHA_CMD"
    timed sha256 -- bash -c "$SHA_CMD"

    # d. cairn verify (must exit 0)
    timed verify -- "$CAIRN_BIN" verify --store "$DIR/vault" --pubkey "$DIR/keys/signing.pub"

    # e. DuckDB reads the same segments
    timed duckread -- python3 "$DIR/duck.py" "$DIR/duckread.query" "$READ_SQL"
done
SEG_BYTES=$(find "$DIR/vault" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
DUCK_BYTES=$(stat -c %s "$DIR/duck.parquet")

# f. S3 with Object Lock (moto_server on 127.0.0.1), once.
S3_LINE=""
if [[ "$S3" == 1 ]]; then
    scripts/ensure-python-deps.sh >/dev/null
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 -m moto.server -H 127.0.0.1 -p "$PORT" >"$DIR/moto.log" 2>&1 &
    MOTO=$!
    trap 'kill "$MOTO" 2>/dev/null || true' EXIT
    export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
        AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
    for _ in $(seq 150); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null && break
        sleep 0.2
    done
    python3 tests/services/s3_admin.py create-bucket bench --lock --default-retention-days 1 >/dev/null
    RUN=1
    timed s3seal -- "$CAIRN_BIN" seal --input "$DIR/events.jsonl" --source-id bench \
        --store s3://bench/vault --key "$DIR/keys/signing.key" --rejects "$DIR/s3-rejects.jsonl"
    timed s3verify -- "$CAIRN_BIN" verify --store s3://bench/vault --pubkey "$DIR/keys/signing.pub"
    read -r S3SEAL _ <"$DIR/s3seal.time"
    read -r S3VERIFY _ <"$DIR/s3verify.time"
    S3_LINE="S3 on moto_server (1 run): cairn seal ${S3SEAL} s, cairn verify ${S3VERIFY} s (segments read concurrently, --concurrency default: 2 per core)"
    kill "$MOTO" 2>/dev/null || true
fi

# --- report ------------------------------------------------------------------------------
echo
echo "== cairn benchmark =="
echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc:    $(nproc)"
echo "cpu:      $(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//' || echo unknown)"
echo "cairn:    $CAIRN_BIN ($("$CAIRN_BIN" --version 2>/dev/null | head -n 1 || echo 'version unknown'))"
echo "duckdb:   $(python3 -c 'import duckdb; print(duckdb.__version__)')"
echo "events:   $EVENTS ($INPUT_BYTES bytes of JSONL)"
echo "segments: $SEGMENTS *.parquet files, $SEG_BYTES bytes (duckdb parquet: $DUCK_BYTES bytes)"
echo "runs:     $RUNS"
echo
echo "commands measured (each run, with /usr/bin/time -f '%e %M'):"
for line in "${CMD_LINES[@]}"; do
    echo "  $line"
done
echo "  (duckdb and duckread: $DIR/duck.py also times the query alone, in-process)"
echo

python3 - "$DIR" "$EVENTS" "$SEG_BYTES" <<'EOF'
import statistics, sys

d, events, seg_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def times(name):
    return [tuple(float(x) for x in l.split()) for l in open(f"{d}/{name}.times")]
def query(name):
    return [float(l) for l in open(f"{d}/{name}.query")]
duck, seal, sha, ver, read = (times(n) for n in ("duckdb", "seal", "sha256", "verify", "duckread"))
duck_q, read_q = query("duckdb"), query("duckread")
# GNU time reports 10 ms resolution; avoid dividing by zero on tiny runs.
floor = lambda s: max(s, 0.01)
mib = lambda kib: kib / 1024

print(f"{'run':<5}{'duckdb s':>10}{'(query)':>9}{'seal s':>8}{'sha256 s':>10}{'verify s':>10}{'read s':>8}{'(query)':>9}{'seal RSS MiB':>14}")
rows = []
for i in range(len(seal)):
    r = dict(duck=duck[i][0], duck_q=duck_q[i], seal=seal[i][0], sha=sha[i][0], ver=ver[i][0],
             read=read[i][0], read_q=read_q[i], rss=mib(seal[i][1]))
    rows.append(r)
    print(f"{i + 1:<5}{r['duck']:>10.2f}{r['duck_q']:>9.2f}{r['seal']:>8.2f}{r['sha']:>10.2f}"
          f"{r['ver']:>10.2f}{r['read']:>8.2f}{r['read_q']:>9.2f}{r['rss']:>14.1f}")
print()
def ratios(r):
    return dict(
        seal=floor(r["duck"]) / floor(r["seal"]),      # events/s ratio, whole DuckDB process
        seal_q=floor(r["duck_q"]) / floor(r["seal"]),  # against DuckDB's query alone
        sha=floor(r["sha"]) / floor(r["ver"]),         # bytes/s ratio
        read=floor(r["ver"]) / floor(r["read"]),       # time ratio, whole DuckDB process
        read_q=floor(r["ver"]) / floor(r["read_q"]),   # against DuckDB's query alone
    )
rs = [ratios(r) for r in rows]
med = lambda k: statistics.median(x[k] for x in rs)
runs = lambda k: ", ".join(f"{x[k]:.2f}" for x in rs)
print(f"seal / duckdb events/s           {med('seal'):.2f}x median (runs: {runs('seal')}; target >= 1.0x)")
print(f"  against DuckDB's query alone   {med('seal_q'):.2f}x median (runs: {runs('seal_q')})")
print(f"verify / sha256sum bytes/s       {med('sha'):.2f}x median (runs: {runs('sha')}; target >= 0.5x)")
print(f"verify time / DuckDB full read   {med('read'):.2f}x median (runs: {runs('read')}; target <= 1.2x)")
print(f"  against DuckDB's query alone   {med('read_q'):.2f}x median (runs: {runs('read_q')})")
ms = statistics.median(r["seal"] for r in rows)
mv = statistics.median(r["ver"] for r in rows)
print(f"cairn seal {events / floor(ms):,.0f} events/s, cairn verify {seg_bytes / floor(mv) / 1e6:,.1f} MB/s (medians)")
rss = max(r["rss"] for r in rows)
print(f"cairn seal peak RSS (max of runs): {rss:.1f} MiB (target <= 512 MiB: {'ok' if rss <= 512 else 'OVER TARGET'})")
if min(min(r["seal"], r["sha"], r["ver"]) for r in rows) < 0.1:
    print("note: some steps took < 0.1 s; GNU time's 10 ms resolution dominates those rates (raise EVENTS)")
EOF
if [[ -n "$S3_LINE" ]]; then echo "$S3_LINE"; fi
