#!/usr/bin/env python3
"""Generate synthetic cairn audit events as JSONL (stdlib only).

Usage:
    python3 scripts/gen_events.py --count N --out FILE [--seed S] [--malformed-every K]

Each line is one JSON object matching schemas/audit_event.avsc (the strict parser in
crates/format/src/event.rs rejects unknown fields). Output is deterministic for a given
seed. Lines average about 376 bytes (the required fields alone take ~312).

With --malformed-every K (K > 0), every K-th line (1-based line number % K == 0) is a
malformed line instead, cycling through these kinds:
    0. invalid JSON               ({"event_id": )
    1. unknown field              (valid event plus "extra":1)
    2. missing required field     (valid event without "tenant")
    3. bad enum value             (valid event with "outcome":"maybe")
    4. bad timestamp              (valid event with "occurred_at":"yesterday")

A one-line summary (lines, bytes, average bytes/line) is printed to stderr.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

TENANTS = ("acme", "globex", "initech", "umbrella")

# action -> (resource type, source)
ACTIONS = (
    ("invoice.read", "invoice", "billing-api"),
    ("invoice.update", "invoice", "billing-api"),
    ("user.login", "user", "auth-service"),
    ("report.export", "report", "reports-worker"),
    ("payment.refund", "payment", "billing-api"),
)

SENSITIVITIES = ("public", "internal", "confidential", "pii")

REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-2")

USER_AGENTS = (
    "curl/8.5.0",
    "okhttp/4.12.0",
    "Go-http-client/2.0",
    "python-requests/2.32.3",
    "billing-cli/4.2.1 (linux; amd64)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
)

DENY_REASONS = (
    "missing permission invoice:write",
    "tenant mismatch for resource",
    "mfa required for this action",
    "ip address not in allow list",
)
ERROR_REASONS = (
    "upstream timeout after 5000 ms",
    "database connection reset by peer",
    "rate limit exceeded, retry later",
)

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
MALFORMED_KINDS = 5


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, required=True, help="number of lines to write")
    p.add_argument("--out", required=True, help="output JSONL file ('-' for stdout)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--malformed-every",
        type=int,
        default=0,
        metavar="K",
        help="make every K-th line malformed (default 0: none)",
    )
    a = p.parse_args(argv)
    if a.count < 0:
        p.error("--count must be >= 0")
    if a.malformed_every < 0:
        p.error("--malformed-every must be >= 0")
    return a


def generate(count: int, out, seed: int, malformed_every: int) -> int:
    """Writes `count` lines to the text stream `out`; returns the number of bytes written."""
    rng = random.Random(seed)
    r = rng.random
    bits = rng.getrandbits
    encode = json.JSONEncoder(separators=(",", ":")).encode
    UUID = uuid.UUID

    user_ids = [f"user-{n}" for n in range(1, 2001)]
    service_ids = [f"svc-{s}" for s in ("billing", "auth", "reports", "scheduler", "exporter")]
    n_users = len(user_ids)
    n_services = len(service_ids)
    n_tenants = len(TENANTS)
    n_actions = len(ACTIONS)
    n_sens = len(SENSITIVITIES)
    n_regions = len(REGIONS)
    n_ua = len(USER_AGENTS)

    start_s = int(START.timestamp())
    t_us = 0  # microseconds since START
    cur_sec = -1
    sec_prefix = ""

    total = 0
    buf: list[str] = []
    flush_at = 4096
    malformed_no = 0

    for line_no in range(1, count + 1):
        # Timestamp: a few ms after the previous event (1..5 ms, mean ~3 ms).
        t_us += 1000 + bits(12)
        sec = t_us // 1_000_000
        if sec != cur_sec:
            cur_sec = sec
            sec_prefix = (START + timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S")
        occurred_at = f"{sec_prefix}.{t_us % 1_000_000:06d}Z"

        action, rtype, source = ACTIONS[int(r() * n_actions)]
        if r() < 0.8:
            actor = {"id": user_ids[int(r() * n_users)], "type": "user"}
        else:
            actor = {"id": service_ids[int(r() * n_services)], "type": "service"}
        if r() < 0.8:
            ip = bits(24)
            actor["ip"] = f"10.{ip >> 16}.{(ip >> 8) & 255}.{ip & 255}"

        x = r()
        outcome = "success" if x < 0.9 else ("denied" if x < 0.96 else "error")

        event = {
            "event_id": str(UUID(int=bits(128), version=4)),
            "occurred_at": occurred_at,
            "tenant": TENANTS[int(r() * n_tenants)],
            "actor": actor,
            "action": action,
            "resource": {"type": rtype, "id": f"{rtype}-{1 + bits(13)}"},
            "outcome": outcome,
            "source": source,
            "sensitivity": SENSITIVITIES[int(r() * n_sens)],
        }
        if r() < 0.9:
            # 2-4 entries: two or three of request_id / region / user_agent, plus a reason
            # for non-success outcomes. The mix (and USER_AGENTS) tunes the average line
            # length to ~376 bytes, near the floor for 2+ entries.
            x = r()
            if x < 0.8:
                details = {"request_id": f"req-{bits(24):06x}", "region": REGIONS[int(r() * n_regions)]}
            elif x < 0.85:
                details = {"request_id": f"req-{bits(24):06x}", "user_agent": USER_AGENTS[int(r() * n_ua)]}
            elif x < 0.95:
                details = {"region": REGIONS[int(r() * n_regions)], "user_agent": USER_AGENTS[int(r() * n_ua)]}
            else:
                details = {
                    "request_id": f"req-{bits(24):06x}",
                    "region": REGIONS[int(r() * n_regions)],
                    "user_agent": USER_AGENTS[int(r() * n_ua)],
                }
            if outcome == "denied":
                details["reason"] = DENY_REASONS[int(r() * len(DENY_REASONS))]
            elif outcome == "error":
                details["reason"] = ERROR_REASONS[int(r() * len(ERROR_REASONS))]
            event["details"] = details

        if malformed_every > 0 and line_no % malformed_every == 0:
            kind = malformed_no % MALFORMED_KINDS
            malformed_no += 1
            if kind == 0:
                line = '{"event_id": '
            else:
                if kind == 1:
                    event["extra"] = 1
                elif kind == 2:
                    del event["tenant"]
                elif kind == 3:
                    event["outcome"] = "maybe"
                else:
                    event["occurred_at"] = "yesterday"
                line = encode(event)
        else:
            line = encode(event)

        buf.append(line)
        if len(buf) >= flush_at:
            chunk = "\n".join(buf) + "\n"
            out.write(chunk)
            total += len(chunk)  # ASCII only: characters == bytes
            buf.clear()

    if buf:
        chunk = "\n".join(buf) + "\n"
        out.write(chunk)
        total += len(chunk)
    return total


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    if args.out == "-":
        total = generate(args.count, sys.stdout, args.seed, args.malformed_every)
        sys.stdout.flush()
    else:
        with open(args.out, "w", encoding="ascii", newline="\n", buffering=1 << 20) as f:
            total = generate(args.count, f, args.seed, args.malformed_every)
    elapsed = time.perf_counter() - t0
    avg = total / args.count if args.count else 0.0
    print(
        f"gen_events: wrote {args.count} lines, {total} bytes, "
        f"avg {avg:.1f} bytes/line in {elapsed:.2f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
