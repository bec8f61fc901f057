#!/usr/bin/env bash
# Installs the test OpenID Connect provider once into a persistent tools directory and prints
# the path of its module entry point (tests/services/oidc_provider.mjs imports it from
# $CAIRN_OIDC_PROVIDER). Used by the query service's authentication tests, which start and
# stop their own provider process on 127.0.0.1 and obtain tokens from it over HTTP.
#
# What it installs: the npm package oauth2-mock-server@8.2.3 (discovery, JWKS and a token
# endpoint; hooks to shape a token's claims and header), with the machine's Node and npm.
#
# Found here (Node 20.20.2, npm 11), November 2026:
# - 8.2.3 installs 75 packages (5.3 MB) in about 4 s; 9.x needs Node 22.
# - It is an ES module only (dist/index.mjs): import it by file URL, NODE_PATH does not apply.
set -euo pipefail
TOOLS="${CAIRN_TOOLS_DIR:-$HOME/.cache/cairn/tools}"
VERSION=8.2.3
DIR="$TOOLS/oauth2-mock-server-$VERSION"
ENTRY="$DIR/node_modules/oauth2-mock-server/dist/index.mjs"
if [ -f "$DIR/.complete" ] && [ -f "$ENTRY" ]; then
  echo "$ENTRY"
  exit 0
fi
command -v npm >/dev/null || { echo "ensure-oidc-provider: npm is required (Node 20)" >&2; exit 1; }
echo "== installing oauth2-mock-server $VERSION into $DIR (one-time)" >&2
rm -rf "$DIR"
mkdir -p "$DIR"
(cd "$DIR" && echo '{"private":true}' >package.json && npm install --no-audit --no-fund --silent "oauth2-mock-server@$VERSION") >&2 \
  || { echo "ensure-oidc-provider: npm install oauth2-mock-server@$VERSION failed (is the npm registry reachable?)" >&2; exit 1; }
[ -f "$ENTRY" ] || { echo "ensure-oidc-provider: $ENTRY missing after install" >&2; exit 1; }
touch "$DIR/.complete"
echo "$ENTRY"
