#!/usr/bin/env bash
# The test command (README, and .ci/run): installs what the tests need, checks formatting and
# lints, then runs every test. Tests start their own services (Apache Kafka, moto_server for
# S3, Apicurio Registry, an OIDC provider, cairn serve) on 127.0.0.1 and fail, never skip, when one cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."
# A persistent target dir keeps CI and repeated runs warm (8 min 40 s on a clean clone); fully cold
# (no target dir, no tools) it took 35 min on 2 cores (README).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/ensure-python-deps.sh
# Apache Kafka's broker for the ingest tests (resolved from Maven Central once, then cached).
CAIRN_KAFKA="$(scripts/ensure-kafka.sh)"
export CAIRN_KAFKA
# A real schema registry (Apicurio, Confluent API) for the registry tests, likewise.
CAIRN_REGISTRY="$(scripts/ensure-registry.sh)"
export CAIRN_REGISTRY
# The real OPA (built from the Go module proxy once): `opa test policies/` and the wasm bundle
# for the three-way policy agreement test.
CAIRN_OPA="$(scripts/ensure-opa.sh)"
export CAIRN_OPA
# A real OpenID Connect provider (npm oauth2-mock-server) for the query service's auth tests.
CAIRN_OIDC_PROVIDER="$(scripts/ensure-oidc-provider.sh)"
export CAIRN_OIDC_PROVIDER
# The independent Go verifier of the transparency log (golang.org/x/mod's sumdb note and
# tlog, from the Go module proxy; ~15 s cold): tests/interop.
CAIRN_GO_INTEROP="$(scripts/ensure-go-interop.sh)"
export CAIRN_GO_INTEROP

echo "== opa test policies/"
"$CAIRN_OPA" test policies/

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
