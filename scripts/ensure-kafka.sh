#!/usr/bin/env bash
# Installs Apache Kafka's broker once into a persistent tools directory and prints that
# directory (its jars are in libs/). Used by the tests, scripts/demo.sh and
# scripts/bench_ingest.sh, which start and stop their own brokers (scripts/kafka.sh).
#
# What it installs: org.apache.kafka:kafka_2.13:4.4.0 with its runtime dependencies, resolved
# from Maven Central by Maven (dependency:copy-dependencies), plus log4j-slf4j-impl so the
# broker's slf4j 1.7 logging reaches log4j2 (without it the broker logs nothing).
#
# Found here (Java 17, Maven 3.8.7, 2 cores), November 2026:
# - 4.4.0 resolves to 45 jars, 43 MB (kafka_2.13, kafka-server, -raft, -metadata, -storage,
#   the coordinators, scala-library 2.13.18, log4j 2.25.5, …); a cold resolve takes seconds to
#   a minute, depending on the local Maven repository.
# - There is no kafka-storage.sh or kafka-server-start.sh: the classes are run directly.
#   Single-node KRaft: `java -cp 'libs/*' kafka.tools.StorageTool format -t <cluster id> -c
#   server.properties` (about 1 s), then `java -cp 'libs/*' kafka.Kafka server.properties`
#   (metadata answers about 3 s after start; about 360 MiB RSS with -Xmx512m).
# - The cluster id is any 16 random bytes in URL-safe base64 without padding.
set -euo pipefail
TOOLS="${CAIRN_TOOLS_DIR:-$HOME/.cache/cairn/tools}"
VERSION=4.4.0
LOG4J=2.25.5
DIR="$TOOLS/kafka-$VERSION"
if [ -f "$DIR/.complete" ]; then
  echo "$DIR"
  exit 0
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "ensure-kafka: $tool is required (Java 17 and Maven)" >&2; exit 1; }
done
echo "== installing Apache Kafka $VERSION into $DIR (one-time)" >&2
rm -rf "$DIR"
mkdir -p "$DIR"
cat >"$DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cairn.tools</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>$VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J</version>
    </dependency>
  </dependencies>
</project>
EOF
(cd "$DIR" && mvn -B -q dependency:copy-dependencies -DoutputDirectory=libs -DincludeScope=runtime) >&2 \
  || { echo "ensure-kafka: Maven could not resolve kafka_2.13:$VERSION" >&2; exit 1; }
[ -f "$DIR/libs/kafka_2.13-$VERSION.jar" ] || { echo "ensure-kafka: kafka_2.13-$VERSION.jar missing" >&2; exit 1; }
touch "$DIR/.complete"
echo "ensure-kafka: $(ls "$DIR/libs" | wc -l) jars in $DIR/libs" >&2
echo "$DIR"
