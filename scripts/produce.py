#!/usr/bin/env python3
"""Produce a JSONL file's lines to a Kafka topic (round-robin over partitions), with the
independent confluent-kafka client. Used by the demo and the ingest benchmark.

  produce.py --brokers HOST:PORT --topic T --partitions N FILE
"""
import argparse
import sys
import time

from confluent_kafka import Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("file")
    a = ap.parse_args()
    p = Producer({"bootstrap.servers": a.brokers, "linger.ms": 20, "acks": "all",
                  "queue.buffering.max.messages": 200000})
    failed = []
    def report(err, _msg):
        if err is not None:
            failed.append(err)
    n = 0
    t0 = time.time()
    with open(a.file, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            while True:
                try:
                    p.produce(a.topic, value=line, partition=n % a.partitions, on_delivery=report)
                    break
                except BufferError:
                    p.poll(0.1)
            n += 1
            if n % 10000 == 0:
                p.poll(0)
    p.flush(60)
    if failed:
        print(f"produce: {len(failed)} deliveries failed: {failed[0]}", file=sys.stderr)
        return 1
    print(f"produced {n} messages to {a.topic} in {time.time() - t0:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
