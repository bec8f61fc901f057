#!/usr/bin/env bash
# Installs the tansu Kafka-protocol broker used by the ingest tests and the demo, once, into a
# persistent tools directory (a cold build takes ~7 min on 2 cores). Prints its path.
set -euo pipefail
TOOLS="${CAIRN_TOOLS_DIR:-$HOME/.cache/cairn/tools}"
VERSION=0.6.0
BIN="$TOOLS/bin/tansu"
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "$BIN"; exit 0
fi
echo "== installing tansu $VERSION into $TOOLS (one-time, ~7 min)" >&2
CARGO_TARGET_DIR="$TOOLS/target" cargo install --quiet --locked --root "$TOOLS" \
  tansu --version "$VERSION" --features dynostore >&2
rm -rf "$TOOLS/target"
"$BIN" --version >&2
echo "$BIN"
