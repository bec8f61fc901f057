#!/usr/bin/env bash
# Benchmark cairn against peers in one run:
#   a. DuckDB      JSONL -> Parquet (zstd)              vs  b. cairn seal   (events/s)
#   c. sha256sum over the sealed *.parquet segments     vs  d. cairn verify (bytes/s)
# plus the peak RSS of cairn seal (target <= 512 MiB).
#
# Environment:
#   CAIRN_BIN  cairn binary   (default: ${CARGO_TARGET_DIR:-target}/release/cairn, relative to the repo root)
#   EVENTS     events to generate (default: 1000000)
#   BENCH_DIR  work directory, deleted and recreated (default: /tmp/cairn-bench)
#
# Build cairn first (cargo build --release). Exits non-zero if any step fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CAIRN_BIN="${CAIRN_BIN:-${CARGO_TARGET_DIR:-target}/release/cairn}"
EVENTS="${EVENTS:-1000000}"
DIR="${BENCH_DIR:-/tmp/cairn-bench}"
TIME=/usr/bin/time

die() { echo "bench: $*" >&2; exit 1; }

[[ "$EVENTS" =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be a positive integer (got '$EVENTS')"
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
if [[ -e "$DIR" ]]; then
    chmod -R u+w "$DIR" 2>/dev/null || true   # sealed segments are read-only
    rm -rf "$DIR"
fi
mkdir -p "$DIR"

echo "bench: generating $EVENTS events" >&2
python3 scripts/gen_events.py --count "$EVENTS" --out "$DIR/events.jsonl" --seed 1
INPUT_BYTES=$(stat -c %s "$DIR/events.jsonl")

"$CAIRN_BIN" keygen --out "$DIR/keys" >"$DIR/keygen.log" 2>&1 || { cat "$DIR/keygen.log" >&2; die "cairn keygen failed"; }
[[ -f "$DIR/keys/signing.key" && -f "$DIR/keys/signing.pub" ]] || die "cairn keygen did not write $DIR/keys/signing.{key,pub}"

# --- measurement helper ------------------------------------------------------------------
# timed NAME -- CMD...   runs CMD once under GNU time (stdout+stderr to $DIR/NAME.log) and sets
# ELAPSED_<NAME> (seconds) and RSS_<NAME> (KiB); records the exact command for the report.
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
    CMD_LINES+=("$name: $shown")
    echo "bench: running $name" >&2
    if ! "$TIME" -f '%e %M' -o "$DIR/$name.time" "$@" >"$DIR/$name.log" 2>&1; then
        echo "bench: '$name' failed; last lines of $DIR/$name.log:" >&2
        tail -n 20 "$DIR/$name.log" >&2 || true
        [[ -f "$DIR/$name.time" ]] && cat "$DIR/$name.time" >&2
        exit 1
    fi
    local e m
    read -r e m < <(tail -n 1 "$DIR/$name.time")
    printf -v "ELAPSED_$name" '%s' "$e"
    printf -v "RSS_$name" '%s' "$m"
}

# Untimed: put the input in the page cache so (a) and (b) start from the same state.
cat "$DIR/events.jsonl" >/dev/null

# a. DuckDB
DUCK_SQL="COPY (SELECT * FROM read_json('$DIR/events.jsonl')) TO '$DIR/duck.parquet' (FORMAT parquet, COMPRESSION zstd)"
timed duckdb -- python3 -c "import duckdb; duckdb.sql(\"$DUCK_SQL\")"

# b. cairn seal (fresh store)
rm -rf "$DIR/vault"
timed seal -- "$CAIRN_BIN" seal --input "$DIR/events.jsonl" --source-id bench \
    --store "$DIR/vault" --key "$DIR/keys/signing.key"

SEGMENTS=$(find "$DIR/vault" -name '*.parquet' | wc -l)
[[ "$SEGMENTS" -gt 0 ]] || die "cairn seal wrote no *.parquet segments under $DIR/vault"
SEG_BYTES=$(find "$DIR/vault" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
DUCK_BYTES=$(stat -c %s "$DIR/duck.parquet")

# c. sha256sum over all segments (one untimed warm-up run first)
SHA_CMD="find $(printf '%q' "$DIR/vault") -name '*.parquet' -print0 | xargs -0 -r sha256sum > /dev/null"
bash -c "$SHA_CMD"
timed sha256 -- bash -c "$SHA_CMD"

# d. cairn verify (must exit 0)
timed verify -- "$CAIRN_BIN" verify --store "$DIR/vault" --pubkey "$DIR/keys/signing.pub"

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
echo
echo "commands measured (each once, with /usr/bin/time -f '%e %M'):"
for line in "${CMD_LINES[@]}"; do
    echo "  $line"
done
echo

python3 - "$EVENTS" "$SEG_BYTES" \
    "$ELAPSED_duckdb" "$RSS_duckdb" "$ELAPSED_seal" "$RSS_seal" \
    "$ELAPSED_sha256" "$RSS_sha256" "$ELAPSED_verify" "$RSS_verify" <<'EOF'
import sys

events, seg_bytes = int(sys.argv[1]), int(sys.argv[2])
e_duck, m_duck, e_seal, m_seal, e_sha, m_sha, e_ver, m_ver = (float(x) for x in sys.argv[3:11])
# GNU time reports 10 ms resolution; avoid dividing by zero on tiny runs.
rate = lambda n, s: n / max(s, 0.01)
mib = lambda kib: kib / 1024

duck_eps, seal_eps = rate(events, e_duck), rate(events, e_seal)
sha_bps, ver_bps = rate(seg_bytes, e_sha), rate(seg_bytes, e_ver)

print(f"{'step':<16}{'seconds':>10}{'peak RSS MiB':>14}{'throughput':>22}")
print(f"{'duckdb':<16}{e_duck:>10.2f}{mib(m_duck):>14.1f}{duck_eps:>16,.0f} ev/s")
print(f"{'cairn seal':<16}{e_seal:>10.2f}{mib(m_seal):>14.1f}{seal_eps:>16,.0f} ev/s")
print(f"{'sha256sum':<16}{e_sha:>10.2f}{mib(m_sha):>14.1f}{sha_bps / 1e6:>16,.1f} MB/s")
print(f"{'cairn verify':<16}{e_ver:>10.2f}{mib(m_ver):>14.1f}{ver_bps / 1e6:>16,.1f} MB/s")
print()
print(f"seal / duckdb events/s:        {seal_eps / duck_eps:.2f}x")
print(f"verify / sha256sum bytes/s:    {ver_bps / sha_bps:.2f}x")
status = "ok" if mib(m_seal) <= 512 else "OVER TARGET"
print(f"cairn seal peak RSS:           {mib(m_seal):.1f} MiB (target <= 512 MiB: {status})")
if min(e_duck, e_seal, e_sha, e_ver) < 0.1:
    print("note: some steps took < 0.1 s; GNU time's 10 ms resolution dominates those rates (raise EVENTS)")
EOF
