#!/usr/bin/env bash
# Installs the Python peers from tests/requirements.txt when any is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if python3 -c 'import moto.server, boto3, duckdb, pyarrow, cryptography, flask, confluent_kafka, confluent_kafka.schema_registry.avro, fastavro, schemathesis' 2>/dev/null; then
  exit 0
fi
echo "== installing Python test peers (tests/requirements.txt)"
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
python3 -c 'import moto.server, boto3, duckdb, pyarrow, cryptography, flask, confluent_kafka, confluent_kafka.schema_registry.avro, fastavro, schemathesis' \
  || { echo "Python test peers still missing after pip install" >&2; exit 1; }
