#!/usr/bin/env bash
# Builds tests/interop (cairn-interop) once into a persistent tools directory and prints the
# path of its binary. cairn-interop checks a store's log (docs/FORMAT.md §12) with Go's own
# golang.org/x/mod/sumdb/tlog and sumdb/note, the reference readers of C2SP tlog-tiles and
# signed notes, and nothing of cairn's:
#
#   cairn-interop --store DIR --pubkey FILE [--checkpoint FILE]... [--proof FILE]... [--consistency FILE]...
#
# exit 0 with one "ok ..." line per passed check, 1 naming the failed check on stderr, 2 on a
# usage error (including a malformed key file, §6.4).
#
# What it builds: tests/interop with golang.org/x/mod v0.43.0 (its only module; the standard
# library otherwise), from the Go module proxy with the machine's Go. The build directory is
# keyed by a hash of go.mod, go.sum and main.go, so an edited checker is rebuilt and an
# unchanged one is not.
#
# Found here (Go 1.26.8, 2 cores), November 2026:
# - x/mod v0.43.0 declares `go 1.26.0`, so tests/interop/go.mod must say `go 1.26.0`: with
#   `go 1.26` (which sorts before 1.26.0) every build stops with "updates to go.mod needed".
#   x/mod's go.mod requires golang.org/x/tools, but module graph pruning never fetches it:
#   go.sum holds x/mod's two lines only, and a cold build downloads x/mod alone (1.3 MB).
# - A cold run (empty module and build caches, so the standard library's crypto, json and
#   math/big packages are compiled too) took 11.8 s, 12.8 s and 16.5 s wall while cargo
#   builds shared the 2 cores; it leaves 52 MB of caches, deleted afterwards, and a 4.4 MB
#   binary. A warm call (binary present) takes about 10 ms.
# - GOTOOLCHAIN=local: an older Go must fail here, not try to download a toolchain.
# - Go's tlog reads the §12.2 layout as written: tile/<L>/<N>[.p/<W>] is Go's tile/8/<L>/...
#   minus the height, TileHashReader asks for exactly the right-edge partial tiles of a
#   checkpointed size (tile/1/000.p/1 alone for 256 entries, tile/2/000.p/1 for 65,536), and
#   RFC 9162 audit and consistency paths are tlog.RecordProof/TreeProof, bottom-up, as is.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$ROOT/tests/interop"
TOOLS="${CAIRN_TOOLS_DIR:-$HOME/.cache/cairn/tools}"
HASH="$(cd "$SRC" && sha256sum go.mod go.sum main.go | sha256sum | cut -c1-16)"
DIR="$TOOLS/cairn-interop-$HASH"
if [ -x "$DIR/bin/cairn-interop" ] && [ -f "$DIR/.complete" ]; then
  echo "$DIR/bin/cairn-interop"
  exit 0
fi
command -v go >/dev/null || { echo "ensure-go-interop: go is required (Go 1.26 or newer builds tests/interop)" >&2; exit 1; }
export GOTOOLCHAIN=local
GOV="$(go env GOVERSION)"
case "$GOV" in
  go1.2[6-9]*|go1.[3-9][0-9]*|go[2-9]*) ;;
  *) echo "ensure-go-interop: Go 1.26 or newer is required (golang.org/x/mod v0.43.0 needs it); found $GOV" >&2; exit 1 ;;
esac
echo "== building tests/interop into $DIR (one-time, golang.org/x/mod from the Go module proxy)" >&2
rm -rf "$DIR"
mkdir -p "$DIR/bin"
# Module and build caches only for this build (about 52 MB), removed afterwards.
export GOMODCACHE="$DIR/.build/mod"
export GOCACHE="$DIR/.build/cache"
export GOFLAGS="-modcacherw -mod=readonly -buildvcs=false"
(cd "$SRC" && go build -trimpath -o "$DIR/bin/cairn-interop" .) >&2 \
  || { echo "ensure-go-interop: go build in tests/interop failed (is the Go module proxy reachable?)" >&2; exit 1; }
# A smoke run: no arguments is a usage error (exit 2).
rc=0; "$DIR/bin/cairn-interop" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || { echo "ensure-go-interop: the built cairn-interop exited $rc without arguments, want 2" >&2; exit 1; }
chmod -R u+w "$DIR/.build" && rm -rf "$DIR/.build"
touch "$DIR/.complete"
echo "$DIR/bin/cairn-interop"
