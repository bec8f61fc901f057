#!/usr/bin/env bash
# Installs the real OPA (Open Policy Agent) once into a persistent tools directory and prints
# the path of its binary. Used by the policy tests (`opa test policies/`, and `opa build -t
# wasm` for the opa-wasm engine) and by scripts/bench_policy.sh (`opa bench`).
#
# What it installs: github.com/open-policy-agent/opa@v1.22.3, built from the Go module proxy
# with the machine's Go (`go install`), so a clean CI cache rebuilds from the proxy alone.
#
# Found here (Go 1.26.8, 2 cores), November 2026:
# - A cold `go install` (empty module and build caches) takes about 2 min 15 s and downloads
#   about 1 GB of modules and build cache, deleted afterwards; the binary is 58 MB.
# - The binary reports "WebAssembly: unavailable": evaluating wasm inside OPA needs the
#   opa_wasm build tag and cgo, which cairn does not need. Compiling policies to wasm
#   (`opa build -t wasm`) works without it; cairn evaluates the bundle with opa-wasm.
# - Under OPA 1.22.3 a rule body `not is_number(input.request.now_us)` did not fire when
#   now_us was absent: policies bind such values in a helper rule first and test `not helper`
#   (see policies/authz.rego).
set -euo pipefail
TOOLS="${CAIRN_TOOLS_DIR:-$HOME/.cache/cairn/tools}"
VERSION=v1.22.3
DIR="$TOOLS/opa-$VERSION"
if [ -x "$DIR/bin/opa" ] && [ -f "$DIR/.complete" ]; then
  echo "$DIR/bin/opa"
  exit 0
fi
command -v go >/dev/null || { echo "ensure-opa: go is required (Go 1.26 builds OPA $VERSION)" >&2; exit 1; }
echo "== installing OPA $VERSION into $DIR (one-time, builds from the Go module proxy)" >&2
rm -rf "$DIR"
mkdir -p "$DIR/bin"
export GOBIN="$DIR/bin"
# Module and build caches only for this build (about 1 GB), removed afterwards: the binary
# is all the tests need.
export GOMODCACHE="$DIR/.build/mod"
export GOCACHE="$DIR/.build/cache"
export GOFLAGS=-modcacherw
go install "github.com/open-policy-agent/opa@$VERSION" >&2 \
  || { echo "ensure-opa: go install github.com/open-policy-agent/opa@$VERSION failed (is the Go module proxy reachable?)" >&2; exit 1; }
"$DIR/bin/opa" version >&2
chmod -R u+w "$DIR/.build" && rm -rf "$DIR/.build"
touch "$DIR/.complete"
echo "$DIR/bin/opa"
