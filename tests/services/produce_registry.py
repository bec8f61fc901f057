#!/usr/bin/env python3
"""Produce audit events framed by a real schema registry, with the real Confluent client.

usage: produce_registry.py BOOTSTRAP REGISTRY_URL TOPIC FIRST COUNT PARTITIONS AVSC [--evolved]

confluent-kafka's AvroSerializer registers the writer schema under TOPIC-value (AVSC as is, or
with --evolved a version that adds an optional `trace_id` field, which readers of AVSC skip)
and frames each value as 0x00 + 4-byte schema id + Avro body. Event i has event_id
00000000-0000-4000-8000-<i:012> and goes to partition i % PARTITIONS. Every message is
acknowledged (acks=all) before exit; prints the schema id. REGISTRY_BASIC_AUTH=user:password
authenticates to the registry.
"""
import json
import os
import struct
import sys
from datetime import datetime, timedelta, timezone

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

bootstrap, url, topic, first, count, partitions, avsc = sys.argv[1:8]
first, count, partitions = int(first), int(count), int(partitions)
schema = json.load(open(avsc))
if "--evolved" in sys.argv[8:]:
    schema["fields"].append({"name": "trace_id", "type": ["null", "string"], "default": None})
conf = {"url": url}
if os.environ.get("REGISTRY_BASIC_AUTH"):
    conf["basic.auth.user.info"] = os.environ["REGISTRY_BASIC_AUTH"]
serializer = AvroSerializer(SchemaRegistryClient(conf), json.dumps(schema))
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
failed = []


def delivered(err, _msg):
    if err is not None:
        failed.append(str(err))


schema_id = None
for i in range(first, first + count):
    record = {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "occurred_at": datetime(2026, 11, 26, tzinfo=timezone.utc) + timedelta(microseconds=i % 1_000_000),
        "tenant": "t",
        "actor": {"id": f"u{i}", "type": "user", "ip": None},
        "action": "read",
        "resource": {"type": "doc", "id": f"d{i}"},
        "outcome": "success",
        "source": "app",
        "sensitivity": "internal",
        "details": {"n": str(i)},
    }
    if "--evolved" in sys.argv[8:]:
        record["trace_id"] = f"trace-{i}"
    value = serializer(record, SerializationContext(topic, MessageField.VALUE))
    assert value[0] == 0, "Confluent framing"
    schema_id = struct.unpack(">I", value[1:5])[0]
    producer.produce(topic, value=value, partition=i % partitions, on_delivery=delivered)
    producer.poll(0)
if producer.flush(60) != 0 or failed:
    sys.exit(f"not delivered: {failed or 'flush timed out'}")
print(schema_id)
