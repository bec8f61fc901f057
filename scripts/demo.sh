#!/usr/bin/env bash
# Runs cairn end to end on generated sample data: keygen, seal (with malformed lines) into a
# local write-once vault and into S3 with Object Lock (a local moto_server), verify both, then
# tamper with a copy and show verify catching it. Installs what it needs; leaves its work in
# ${DEMO_DIR:-.demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
DIR="${DEMO_DIR:-$PWD/.demo}"
EVENTS="${EVENTS:-20000}"

scripts/ensure-python-deps.sh
echo "== building cairn"
cargo build --release --locked -p cairn
CAIRN="$CARGO_TARGET_DIR/release/cairn"

if [ -d "$DIR" ]; then chmod -R u+w "$DIR"; rm -rf "$DIR"; fi
mkdir -p "$DIR"
echo "== generating $EVENTS events (every 500th line malformed)"
python3 scripts/gen_events.py --count "$EVENTS" --out "$DIR/events.jsonl" --seed 7 --malformed-every 500

echo "== cairn keygen"
"$CAIRN" keygen --out "$DIR/keys"

echo "== cairn seal → local vault"
"$CAIRN" seal --input "$DIR/events.jsonl" --source-id billing --store "$DIR/vault" \
  --key "$DIR/keys/signing.key" --segment-events 5000 --rejects "$DIR/rejects.jsonl"
echo "first rejected line:"; head -n 1 "$DIR/rejects.jsonl"

echo "== cairn verify (local)"
"$CAIRN" verify --store "$DIR/vault" --pubkey "$DIR/keys/signing.pub"

echo "== S3 with Object Lock: starting moto_server on 127.0.0.1"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$PORT" >"$DIR/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
  AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null && break; sleep 0.2; done
python3 tests/services/s3_admin.py create-bucket audit --lock --default-retention-days 1
"$CAIRN" seal --input "$DIR/events.jsonl" --source-id billing --store s3://audit/demo \
  --key "$DIR/keys/signing.key" --segment-events 5000 --rejects "$DIR/rejects-s3.jsonl"
"$CAIRN" verify --store s3://audit/demo --pubkey "$DIR/keys/signing.pub"

echo "== tampering with a copy of the local vault (one flipped byte in a Parquet file)"
cp -r "$DIR/vault" "$DIR/tampered"; chmod -R u+w "$DIR/tampered"
f=$(find "$DIR/tampered" -name '*.parquet' | sort | sed -n 2p)
python3 - "$f" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 1; open(p, "wb").write(b)
PY
set +e
"$CAIRN" verify --store "$DIR/tampered" --pubkey "$DIR/keys/signing.pub"
code=$?
set -e
echo "verify exit code on the tampered copy: $code (1 = integrity failure found)"
[ "$code" -eq 1 ]
echo "== demo complete; files in $DIR"
