#!/usr/bin/env python3
"""Independent writer of cairn sealed segments (`cairn.segment.v3`).

Written from docs/FORMAT.md alone, without reading cairn's Rust code. Uses only the standard
library, pyarrow (Parquet) and cryptography (Ed25519), plus the leaf/Merkle/time/name helpers of
tests/independent_verifier.py (imported, not copied).

Usage:
    python3 tests/independent_writer.py --input EVENTS.jsonl --source-id ID --store DIR \\
        --key SECRET_KEY_FILE --segment-events N [--variant NAME] [--parquet-only] \\
        [--pubkey-out FILE]
    python3 tests/independent_writer.py --self-test

Every line of EVENTS.jsonl must be one audit event (FORMAT.md §3): its offset is its 1-based
line number, the stream is (ID, partition 0). Segments of exactly N events are cut (lines
1..N, N+1..2N, ...; the last may be shorter); no rejected or absent offsets are written. For
each segment the Parquet file (§4) and then the signed manifest (§6) are created exclusively
under DIR at the names of §2, chained per §6.3 (seq from 0, first link = genesis).

--parquet-only   write only the first segment's Parquet file, and no manifest (a sealer that
                 crashed between its two writes; cairn must adopt that file by content, §7).
--variant NAME   how the Parquet file is encoded (see VARIANTS below):
                 accepted by §4: default, large_string, tz_offset, dictionary, bad_outcome;
                 refused by §4:  extra_column, ms_timestamps, naive_timestamps, binary_strings,
                                 reordered_columns.
                 Every manifest is signed truthfully over the file written and its merkle_root
                 is the root of the values written.
--pubkey-out F   also create F holding `cairn-ed25519-public:<hex>` of the signing key.
--self-test      check this writer's leaf bytes, root, body serialisation and signature against
                 the worked example of FORMAT.md §9, and every variant's Parquet schema
                 against §4; prints OK.

Exit status: 0 success; 1 when the input is not a file of audit events, an object already
exists, or a write fails (nothing is written when the input is bad or a name is taken); 2 for
usage errors (bad arguments, unreadable input or key file, malformed key file).
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
try:
    # Only names and signatures that exist in independent_verifier.py today.
    from independent_verifier import (  # noqa: E402
        chain_hash,  # (body: bytes) -> hex str
        key_id,  # (pk: bytes) -> 16-hex str
        leaf_bytes,  # (stream_id, partition, offset, ev dict) -> bytes
        leaf_hash,  # (leaf bytes) -> 32 bytes
        merkle_root_from_hashes,  # (list of 32-byte hashes) -> 32 bytes
        object_name,  # (sid, part, first, last, ext) -> str
        rfc3339_to_us,  # (str) -> int µs since the epoch, UTC
        us_to_rfc3339,  # (int µs) -> canonical YYYY-MM-DDTHH:MM:SS.ffffffZ
    )
except ImportError as _e:  # pragma: no cover - the verifier is edited in parallel
    print(f"error: cannot import helpers from tests/independent_verifier.py: {_e}",
          file=sys.stderr)
    raise SystemExit(2)

FORMAT = "cairn.segment.v3"  # §6.1 (and Versions)
ORIGIN_OBJECT = "v1/origin"  # §11
SIG_CONTEXT = b"cairn-manifest-v1\n"  # §6.2
GENESIS = "0" * 64  # §6.3
PARTITION = 0  # §1: file sources have partition 0
I64_MAX = 2**63 - 1
STREAM_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")  # §1
SECRET_KEY_RE = re.compile(rb"cairn-ed25519-secret:([0-9a-f]{64})\n?")  # §6.4
SCHEMA_PATH = REPO / "schemas" / "audit_event.avsc"

# variant -> (accepted by FORMAT.md §4?, description of what differs from `default`)
VARIANTS = {
    "default": (True, "pyarrow's natural choices: pa.string(), int32/int64, "
                      "timestamp('us', tz='UTC'), map_(string, string), nullable fields"),
    "large_string": (True, "every string (columns, struct fields, map key/value) as "
                           "pa.large_string()"),
    "tz_offset": (True, "occurred_at as timestamp('us', tz='+00:00')"),
    "dictionary": (True, "every string (columns, struct fields, map key/value) as "
                         "dictionary<int32, string>"),
    "bad_outcome": (True, "every outcome written (and leaf-hashed) as 'maybe'"),
    "extra_column": (False, "an additional trailing column `note` (string)"),
    "ms_timestamps": (False, "occurred_at as timestamp('ms', tz='UTC') (values floored to ms)"),
    "naive_timestamps": (False, "occurred_at as timestamp('us') without tz "
                                "(isAdjustedToUTC = false)"),
    "binary_strings": (False, "tenant as pa.binary() (no STRING annotation)"),
    "reordered_columns": (False, "tenant and event_id swapped"),
}

CONTRACT_COLUMNS = [
    "stream_id", "stream_partition", "stream_offset", "event_id", "occurred_at", "tenant",
    "actor", "action", "resource", "outcome", "source", "sensitivity", "details",
]
NOTE = "written by tests/independent_writer.py"


class InputError(Exception):
    """The input file is not a file of audit events (exit 1)."""


class UsageError(Exception):
    """Bad arguments or key file (exit 2)."""


class WriteError(Exception):
    """An object exists already, or writing failed (exit 1)."""


# ---------------------------------------------------------------------------
# Input (§3): JSONL -> events in the dict form independent_verifier.leaf_bytes takes
# ---------------------------------------------------------------------------


def _pairs_no_dup(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise InputError(f"duplicate member {k!r}")
        d[k] = v
    return d


def _no_constant(s):
    raise InputError(f"JSON constant {s} is not allowed")


def _utf8_ok(s: str, where: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{where} holds an unpaired surrogate (not encodable as UTF-8)")
    return s


def _obj(v, where: str, required: list[str], optional: list[str]) -> dict:
    if not isinstance(v, dict):
        raise InputError(f"{where} is not a JSON object")
    missing = [k for k in required if k not in v]
    if missing:
        raise InputError(f"{where} lacks required field(s) {', '.join(missing)}")
    unknown = [k for k in v if k not in required and k not in optional]
    if unknown:
        raise InputError(f"{where} has unknown field(s) {', '.join(unknown)}")
    return v


def _string(v, where: str) -> str:
    if not isinstance(v, str):
        raise InputError(f"{where} is not a string")
    return _utf8_ok(v, where)


def parse_event_line(raw: bytes) -> dict:
    """One JSONL line -> event dict (event_id, occurred_at_us, tenant, actor{id,type,ip},
    action, resource{type,id}, outcome, source, sensitivity, details: None | [(k, v)...]).
    Structure and types only; values (UUIDs, enums, IPs, non-emptiness) are not validated."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8: {e}")
    try:
        obj = json.loads(text, object_pairs_hook=_pairs_no_dup, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise InputError(f"not JSON: {e}")
    _obj(obj, "the line", ["event_id", "occurred_at", "tenant", "actor", "action", "resource",
                           "outcome", "source", "sensitivity"], ["details"])
    actor = _obj(obj["actor"], "actor", ["id", "type"], ["ip"])
    resource = _obj(obj["resource"], "resource", ["type", "id"], [])
    ip = actor.get("ip")
    if ip is not None:
        _string(ip, "actor.ip")
    occurred_at = _string(obj["occurred_at"], "occurred_at")
    try:
        us = rfc3339_to_us(occurred_at)
        us_to_rfc3339(us)  # must have a canonical form (years 0001-9999)
    except Exception as e:  # noqa: BLE001 - SpecError, ValueError, OverflowError
        raise InputError(f"occurred_at {occurred_at!r} is not a usable RFC 3339 timestamp "
                         f"(at most µs precision, year 0001-9999 in UTC): {e}")
    details = obj.get("details")
    if details is not None:
        if not isinstance(details, dict):
            raise InputError("details is neither null nor a JSON object")
        for k, v in details.items():
            _string(k, "a details key")
            _string(v, f"details[{k!r}]")
        details = list(details.items())  # input order; the leaf sorts by key bytes
    return {
        "event_id": _string(obj["event_id"], "event_id"),
        "occurred_at_us": us,
        "tenant": _string(obj["tenant"], "tenant"),
        "actor": {"id": _string(actor["id"], "actor.id"),
                  "type": _string(actor["type"], "actor.type"), "ip": ip},
        "action": _string(obj["action"], "action"),
        "resource": {"type": _string(resource["type"], "resource.type"),
                     "id": _string(resource["id"], "resource.id")},
        "outcome": _string(obj["outcome"], "outcome"),
        "source": _string(obj["source"], "source"),
        "sensitivity": _string(obj["sensitivity"], "sensitivity"),
        "details": details,
    }


def read_events(path: Path) -> list[tuple[int, dict]]:
    """(offset, event) for every line; offset = 1-based line number."""
    data = path.read_bytes()
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the final newline ends the last line; it starts no new one
    out = []
    for i, raw in enumerate(lines, start=1):
        try:
            out.append((i, parse_event_line(raw)))
        except InputError as e:
            raise InputError(f"{path}: line {i}: {e}") from None
    return out


def apply_variant_values(ev: dict, variant: str) -> dict:
    """The event values as the variant writes them (the leaf is built from these)."""
    ev = dict(ev)
    if variant == "bad_outcome":
        ev["outcome"] = "maybe"
    elif variant == "ms_timestamps":
        ev["occurred_at_us"] = (ev["occurred_at_us"] // 1000) * 1000  # floor to the ms written
    return ev


# ---------------------------------------------------------------------------
# Parquet (§4)
# ---------------------------------------------------------------------------


def build_table(sid: str, part: int, rows: list[tuple[int, dict]], variant: str) -> pa.Table:
    if variant not in VARIANTS:
        raise UsageError(f"unknown variant {variant!r}")
    n = len(rows)
    offsets = [o for o, _ in rows]
    evs = [ev for _, ev in rows]
    kind = {"large_string": "large", "dictionary": "dict"}.get(variant, "plain")

    def S(values):
        if kind == "large":
            return pa.array(values, type=pa.large_string())
        arr = pa.array(values, type=pa.string())
        return arr.dictionary_encode() if kind == "dict" else arr

    # occurred_at
    ts_type = {
        "tz_offset": pa.timestamp("us", tz="+00:00"),
        "ms_timestamps": pa.timestamp("ms", tz="UTC"),
        "naive_timestamps": pa.timestamp("us"),
    }.get(variant, pa.timestamp("us", tz="UTC"))
    if variant == "ms_timestamps":
        occurred = pa.array([ev["occurred_at_us"] // 1000 for ev in evs], type=ts_type)
    else:
        occurred = pa.array([ev["occurred_at_us"] for ev in evs], type=ts_type)

    actor = pa.StructArray.from_arrays(
        [S([ev["actor"]["id"] for ev in evs]), S([ev["actor"]["type"] for ev in evs]),
         S([ev["actor"]["ip"] for ev in evs])],
        names=["id", "type", "ip"])
    resource = pa.StructArray.from_arrays(
        [S([ev["resource"]["type"] for ev in evs]), S([ev["resource"]["id"] for ev in evs])],
        names=["type", "id"])

    dets = [ev["details"] for ev in evs]
    if kind == "dict":
        moffs = [0]
        for d in dets:
            moffs.append(moffs[-1] + (len(d) if d else 0))
        flat = [kv for d in dets if d for kv in d]
        details = pa.MapArray.from_arrays(
            pa.array(moffs, type=pa.int32()), S([k for k, _ in flat]), S([v for _, v in flat]),
            mask=pa.array([d is None for d in dets], type=pa.bool_()))
    else:
        st = pa.large_string() if kind == "large" else pa.string()
        details = pa.array(dets, type=pa.map_(st, st))

    if variant == "binary_strings":
        tenant = pa.array([ev["tenant"].encode("utf-8") for ev in evs], type=pa.binary())
    else:
        tenant = S([ev["tenant"] for ev in evs])

    cols = [
        ("stream_id", S([sid] * n)),
        ("stream_partition", pa.array([part] * n, type=pa.int32())),
        ("stream_offset", pa.array(offsets, type=pa.int64())),
        ("event_id", S([ev["event_id"] for ev in evs])),
        ("occurred_at", occurred),
        ("tenant", tenant),
        ("actor", actor),
        ("action", S([ev["action"] for ev in evs])),
        ("resource", resource),
        ("outcome", S([ev["outcome"] for ev in evs])),
        ("source", S([ev["source"] for ev in evs])),
        ("sensitivity", S([ev["sensitivity"] for ev in evs])),
        ("details", details),
    ]
    if variant == "reordered_columns":
        i, j = CONTRACT_COLUMNS.index("event_id"), CONTRACT_COLUMNS.index("tenant")
        cols[i], cols[j] = cols[j], cols[i]
    if variant == "extra_column":
        cols.append(("note", pa.array([NOTE] * n, type=pa.string())))
    return pa.Table.from_arrays([a for _, a in cols], names=[c for c, _ in cols])


def parquet_bytes(table: pa.Table) -> bytes:
    """pyarrow's defaults for everything but the schema (Parquet 2.6, snappy, dictionary
    encoding, statistics, embedded ARROW:schema)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def contract_problems(data: bytes) -> list[str]:
    """This writer's own reading of the §4 contract, applied to the Parquet schema (not the
    embedded Arrow schema). Used to check that each variant is what it claims to be."""
    pf = pq.ParquetFile(pa.BufferReader(data))
    ps = pf.schema
    problems = []
    top = ps.to_arrow_schema()
    if top.names != CONTRACT_COLUMNS:
        problems.append(f"columns are {top.names}")
        return problems
    if not pa.types.is_struct(top.field("actor").type):
        problems.append("actor is not a group")
    if not pa.types.is_struct(top.field("resource").type):
        problems.append("resource is not a group")
    if not pa.types.is_map(top.field("details").type):
        problems.append("details is not a MAP")

    def is_string(c):
        return c.physical_type == "BYTE_ARRAY" and (
            c.logical_type.type == "STRING"
            or (c.logical_type.type == "NONE" and c.converted_type == "UTF8"))

    def is_int(c, phys, bits):
        if c.physical_type != phys:
            return False
        lt = json.loads(c.logical_type.to_json())
        return lt["Type"] == "None" or (lt["Type"] == "Int" and lt.get("bitWidth") == bits
                                        and lt.get("isSigned") is True)

    def is_ts_us_utc(c):
        if c.physical_type != "INT64":
            return False
        lt = json.loads(c.logical_type.to_json())
        if lt["Type"] == "Timestamp":
            return lt["timeUnit"] == "microseconds" and lt["isAdjustedToUTC"] is True
        return lt["Type"] == "None" and c.converted_type == "TIMESTAMP_MICROS"

    leaves = [ps.column(i) for i in range(len(ps))]
    paths = [c.path.split(".") for c in leaves]
    want = [["stream_id"], ["stream_partition"], ["stream_offset"], ["event_id"],
            ["occurred_at"], ["tenant"], ["actor", "id"], ["actor", "type"], ["actor", "ip"],
            ["action"], ["resource", "type"], ["resource", "id"], ["outcome"], ["source"],
            ["sensitivity"], ["details", "*", "*"], ["details", "*", "*"]]
    if len(paths) != len(want) or any(
            len(p) != len(w) or any(a != b and b != "*" for a, b in zip(p, w))
            for p, w in zip(paths, want)):
        problems.append(f"leaf columns are {[c.path for c in leaves]}")
        return problems
    for c in leaves:
        name = c.path
        if name == "stream_partition":
            ok = is_int(c, "INT32", 32)
        elif name == "stream_offset":
            ok = is_int(c, "INT64", 64)
        elif name == "occurred_at":
            ok = is_ts_us_utc(c)
        else:
            ok = is_string(c)
        if not ok:
            problems.append(f"{name}: {c.physical_type} {c.logical_type.to_json()} "
                            f"(converted {c.converted_type})")
    return problems


def readback_root(data: bytes, sid: str, part: int) -> tuple[int, str]:
    """Read the rows back (by column name, whatever the types) and recompute the root; a
    self-check that the file holds the values this writer hashed."""
    t = pq.ParquetFile(pa.BufferReader(data)).read()

    def col(name):
        c = t.column(name).combine_chunks()
        if pa.types.is_dictionary(c.type):
            c = c.dictionary_decode()
        return c

    def strs(arr):
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in arr.to_pylist()]

    occ = col("occurred_at")
    scale = {"us": 1, "ms": 1000}[occ.type.unit]
    times = [v * scale for v in occ.cast(pa.int64()).to_pylist()]
    actor, resource = col("actor"), col("resource")

    def field(struct, i):
        f = struct.field(i)
        return strs(f.dictionary_decode() if pa.types.is_dictionary(f.type) else f)

    a_id, a_type, a_ip = field(actor, 0), field(actor, 1), field(actor, 2)
    r_type, r_id = field(resource, 0), field(resource, 1)
    dcol = col("details")
    details = []
    for i in range(len(dcol)):
        if not dcol[i].is_valid:
            details.append(None)
        else:
            details.append([(k, v) for k, v in dcol[i].as_py()])
    named = {n: strs(col(n)) for n in ["stream_id", "event_id", "tenant", "action", "outcome",
                                       "source", "sensitivity"]}
    offs = col("stream_offset").to_pylist()
    parts = col("stream_partition").to_pylist()
    hashes = []
    for i in range(t.num_rows):
        if named["stream_id"][i] != sid or parts[i] != part:
            raise WriteError(f"readback: row {i} is not of stream {sid}/{part}")
        ev = {
            "event_id": named["event_id"][i], "occurred_at_us": times[i],
            "tenant": named["tenant"][i],
            "actor": {"id": a_id[i], "type": a_type[i], "ip": a_ip[i]},
            "action": named["action"][i],
            "resource": {"type": r_type[i], "id": r_id[i]},
            "outcome": named["outcome"][i], "source": named["source"][i],
            "sensitivity": named["sensitivity"][i], "details": details[i],
        }
        hashes.append(leaf_hash(leaf_bytes(sid, part, offs[i], ev)))
    return t.num_rows, merkle_root_from_hashes(hashes).hex()


# ---------------------------------------------------------------------------
# Manifest (§6)
# ---------------------------------------------------------------------------


def merkle_root_hex(sid: str, part: int, rows: list[tuple[int, dict]]) -> str:
    return merkle_root_from_hashes(
        [leaf_hash(leaf_bytes(sid, part, off, ev)) for off, ev in rows]).hex()


def now_canonical() -> str:
    t = _dt.datetime.now(_dt.timezone.utc)
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"
            f"{t.second:02d}.{t.microsecond:06d}Z")


def manifest_body(*, sid: str, part: int, seq: int, first: int, last: int,
                  events: list[dict], merkle_root: str, pq_sha256: str, pq_size: int,
                  prev: str, schema_sha256: str, kid: str, sealed_at: str,
                  store: str, rejected=(), absent=()) -> bytes:
    """§6.1, as writers must: compact, members in table order, raw UTF-8."""
    times = [ev["occurred_at_us"] for ev in events]
    body = {
        "format": FORMAT,
        "store": store,
        "stream": {"id": sid, "partition": part},
        "seq": seq,
        "first_offset": first,
        "last_offset": last,
        "event_count": len(events),
        "rejected": [[a, b] for a, b in rejected],
        "absent": [[a, b] for a, b in absent],
        "lost": [],
        "min_occurred_at": us_to_rfc3339(min(times)) if times else None,
        "max_occurred_at": us_to_rfc3339(max(times)) if times else None,
        "tenants": sorted({ev["tenant"] for ev in events}, key=lambda t: t.encode("utf-8")),
        "merkle_root": merkle_root,
        "parquet": {
            "object": object_name(sid, part, first, last, "parquet"),
            "sha256": pq_sha256,
            "size": pq_size,
            "version_id": None,
        },
        "prev_manifest_sha256": prev,
        "schema_sha256": schema_sha256,
        "key_id": kid,
        "sealed_at": sealed_at,
    }
    # ensure_ascii=False: non-ASCII as raw UTF-8; json escapes only '"', '\\' and U+0000-U+001F.
    out = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    data = out.encode("utf-8")
    assert b"\n" not in data and b"\r" not in data
    return data


def signed_manifest(sk: Ed25519PrivateKey, kid: str, body: bytes) -> bytes:
    """§6.2: body line, then `ed25519 <key id> <base64 signature>`."""
    sig = sk.sign(SIG_CONTEXT + body)
    b64 = base64.b64encode(sig).decode("ascii")
    assert len(b64) == 88 and b64.endswith("==")
    return body + b"\n" + f"ed25519 {kid} {b64}\n".encode("ascii")


def load_secret_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read key file {path}: {e}")
    m = SECRET_KEY_RE.fullmatch(data)
    if not m:
        raise UsageError(f"{path} is not a `cairn-ed25519-secret:<64 lowercase hex>` key file")
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(m.group(1).decode("ascii")))


def public_bytes(sk: Ed25519PrivateKey) -> bytes:
    return sk.public_key().public_bytes_raw()


# ---------------------------------------------------------------------------
# Store (§2, §7)
# ---------------------------------------------------------------------------


def _check_no_links(root: Path, name: str) -> None:
    """§7: a local store neither writes nor follows a symbolic link."""
    p = root
    for part in name.split("/")[:-1]:
        p = p / part
        if p.is_symlink():
            raise WriteError(f"{p} is a symbolic link; refusing to write through it")


def create_exclusive(root: Path, name: str, data: bytes) -> None:
    """Create root/name with `data`, failing if the name exists (a temporary `.` file in the
    same directory, then an exclusive hard link, §7)."""
    _check_no_links(root, name)
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise WriteError(f"{name} already exists in {root}; objects are never replaced")
        except OSError:
            # No hard links on this file system: fall back to an exclusive open.
            try:
                with open(path, "xb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except FileExistsError:
                raise WriteError(f"{name} already exists in {root}; objects are never "
                                 "replaced") from None
    except OSError as e:
        raise WriteError(f"cannot write {name}: {e}") from None
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------


def prepare_segments(sid: str, part: int, rows: list[tuple[int, dict]], n_per: int,
                     variant: str) -> list[dict]:
    accepted = VARIANTS[variant][0]
    segs = []
    for start in range(0, len(rows), n_per):
        chunk = [(off, apply_variant_values(ev, variant)) for off, ev in rows[start:start + n_per]]
        first, last = chunk[0][0], chunk[-1][0]
        data = parquet_bytes(build_table(sid, part, chunk, variant))
        root = merkle_root_hex(sid, part, chunk)
        count, rb_root = readback_root(data, sid, part)
        if (count, rb_root) != (len(chunk), root):
            raise WriteError(f"internal: segment {first}-{last} reads back as {count} rows, root "
                             f"{rb_root}, not {len(chunk)} rows, root {root}")
        problems = contract_problems(data)
        if accepted and problems:
            raise WriteError(f"internal: variant {variant} should follow §4 but: {problems}")
        if not accepted and not problems:
            raise WriteError(f"internal: variant {variant} should break §4 but does not")
        segs.append({"first": first, "last": last, "rows": chunk, "parquet": data,
                     "root": root, "contract": problems})
    return segs


def store_origin(store: Path) -> str:
    """§11: the store's origin, created once (exclusively) as `cairn.store/<32 hex>`."""
    path = store / ORIGIN_OBJECT
    if not os.path.lexists(path):
        try:
            create_exclusive(store, ORIGIN_OBJECT, f"cairn.store/{os.urandom(16).hex()}\n".encode())
        except WriteError:
            pass  # another writer created it first: take theirs
    text = path.read_text(encoding="utf-8")
    if not (text.endswith("\n") and re.fullmatch(r"[A-Za-z0-9._/:-]{1,255}", text[:-1])
            and not text.startswith("/") and not text[:-1].endswith("/")):
        raise WriteError(f"{path} is not an origin object")
    return text[:-1]


def write_store(args) -> int:
    sid = args.source_id
    if not STREAM_ID_RE.fullmatch(sid) or sid in (".", ".."):
        raise UsageError(f"--source-id {sid!r} is not a stream id ([A-Za-z0-9._-]{{1,249}}, "
                         "not . or ..)")
    if args.segment_events < 1:
        raise UsageError("--segment-events must be at least 1")
    sk = load_secret_key(Path(args.key))
    pk = public_bytes(sk)
    kid = key_id(pk)
    try:
        schema_sha = hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest()
    except OSError as e:
        raise UsageError(f"cannot read {SCHEMA_PATH}: {e}")
    try:
        rows = read_events(Path(args.input))
    except OSError as e:
        raise UsageError(f"cannot read input {args.input}: {e}")
    if not rows:
        raise InputError(f"{args.input} holds no lines; nothing to seal")

    if args.parquet_only:
        rows = rows[:args.segment_events]  # the first segment only
    segs = prepare_segments(sid, PARTITION, rows, args.segment_events, args.variant)

    store = Path(args.store)
    if store.exists() and not store.is_dir():
        raise UsageError(f"--store {store} is not a directory")
    names = []
    for s in segs:
        names.append(object_name(sid, PARTITION, s["first"], s["last"], "parquet"))
        if not args.parquet_only:
            names.append(object_name(sid, PARTITION, s["first"], s["last"], "manifest"))
    taken = [n for n in names if os.path.lexists(store / n)]
    if taken:
        raise WriteError(f"object(s) already exist in {store}: {', '.join(taken)}")
    if args.pubkey_out:
        try:
            with open(args.pubkey_out, "x", encoding="ascii") as f:
                f.write(f"cairn-ed25519-public:{pk.hex()}\n")
        except OSError as e:
            raise UsageError(f"cannot create --pubkey-out {args.pubkey_out}: {e}")
    store.mkdir(parents=True, exist_ok=True)
    # A crash leftover (--parquet-only) is a Parquet file alone; a writer that seals creates
    # (or takes) the store's origin first.
    origin = "" if args.parquet_only else store_origin(store)

    prev = GENESIS
    accepted, what = VARIANTS[args.variant]
    lines = []
    for seq, s in enumerate(segs):
        pname = object_name(sid, PARTITION, s["first"], s["last"], "parquet")
        create_exclusive(store, pname, s["parquet"])
        sha = hashlib.sha256(s["parquet"]).hexdigest()
        lines.append(f"  {pname}  {len(s['rows'])} events  root {s['root']}  "
                     f"sha256 {sha}  size {len(s['parquet'])}")
        if args.parquet_only:
            break
        body = manifest_body(
            sid=sid, part=PARTITION, seq=seq, first=s["first"], last=s["last"],
            events=[ev for _, ev in s["rows"]], merkle_root=s["root"], pq_sha256=sha,
            pq_size=len(s["parquet"]), prev=prev, schema_sha256=schema_sha, kid=kid,
            sealed_at=now_canonical(), store=origin)
        mname = object_name(sid, PARTITION, s["first"], s["last"], "manifest")
        create_exclusive(store, mname, signed_manifest(sk, kid, body))
        lines.append(f"  {mname}  seq {seq}  chain {chain_hash(body)}")
        prev = chain_hash(body)

    n_events = sum(len(s["rows"]) for s in segs)
    verdict = "accepted by §4" if accepted else "refused by §4: " + "; ".join(segs[0]["contract"])
    print(f"independent writer: {len(segs)} segment(s), {n_events} events, "
          f"{0 if args.parquet_only else len(segs)} manifest(s)"
          f"{' (--parquet-only: first Parquet file only, no manifest)' if args.parquet_only else ''}"
          f", store {store}, stream {sid}/{PARTITION}", file=sys.stderr)
    print(f"  variant {args.variant} ({what}); {verdict}", file=sys.stderr)
    print(f"  key id {kid}, public key {pk.hex()}, schema_sha256 {schema_sha}", file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# Self-test (FORMAT.md §9)
# ---------------------------------------------------------------------------

# Values copied from FORMAT.md §9; the self-test also checks each still appears in the doc.
EX_SEED = bytes([0x2A]) * 32
EX_PUBLIC_KEY = "197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61"
EX_KEY_ID = "af5286f52fb6f481"
EX_LINE1 = ('{"event_id":"7f1c2a9e-3b4d-4c5e-8f60-718293a4b5c6","occurred_at":"2026-11-26T09:30:00.'
            '123456Z","tenant":"acme","actor":{"id":"u-42","type":"user","ip":"192.0.2.7"},'
            '"action":"invoice.read","resource":{"type":"invoice","id":"inv-1001"},"outcome":'
            '"success","source":"billing-api","sensitivity":"pii","details":{"request_id":"r-1",'
            '"region":"eu"}}')
EX_LINE3 = ('{"event_id":"0a1b2c3d-4e5f-4a6b-9c7d-8e9fa0b1c2d3","occurred_at":"2026-11-26T09:30:01Z"'
            ',"tenant":"globex","actor":{"id":"svc-7","type":"service"},"action":"user.login",'
            '"resource":{"type":"user","id":"u-9"},"outcome":"denied","source":"auth-service",'
            '"sensitivity":"internal"}')
EX_LEAF1 = (
    "010000000762696c6c696e670000000000000000000000010000002437663163326139652d336234642d3463"
    "35652d386636302d3731383239336134623563360006612a966718400000000461636d6500000004752d3432"
    "000000047573657201000000093139322e302e322e370000000c696e766f6963652e7265616400000007696e"
    "766f69636500000008696e762d3130303100000007737563636573730000000b62696c6c696e672d61706900"
    "000003706969010000000200000006726567696f6e0000000265750000000a726571756573745f6964000000"
    "03722d31")
EX_LEAF_HASH1 = "0f6352edab5e013f56bbb82c61893ebb345c0f9ebfd43c478c715ad232e440a9"
EX_LEAF_HASH3 = "5cdbd761f11c63392a9349bad5dbc8a2a3a7bff854d30e1ec85224eb4153628f"
EX_ROOT = "e0ed3d525a6ad8c6266cd0fc73605f20922b4300fcca923fe0582dec77f5f305"
EX_SCHEMA_SHA = "63a6b4a811eb1a878a2243dba3c9b9d8ed840dd871d2161e0989f0733e21ab98"
EX_PARQUET_SHA = "109d49a5babf82881aee5436a9636860a0422a08874ee2734f139eb9750d2c28"
EX_PARQUET_SIZE = 5699
EX_STORE = "example.com/vault"
EX_SEALED_AT = "2026-11-26T09:31:00.000000Z"
EX_MANIFEST = (
    '{"format":"cairn.segment.v3","store":"example.com/vault","stream":{"id":"billing",'
    '"partition":0},"seq":0,'
    '"first_offset":1,"last_offset":3,"event_count":2,"rejected":[[2,2]],"absent":[],"lost":[],'
    '"min_occurred_at":"2026-11-26T09:30:00.123456Z","max_occurred_at":"2026-11-26T09:30:01.'
    '000000Z","tenants":["acme","globex"],"merkle_root":"e0ed3d525a6ad8c6266cd0fc73605f20922b4'
    '300fcca923fe0582dec77f5f305","parquet":{"object":"v1/streams/billing/0/00000000000000000'
    '001-00000000000000000003.parquet","sha256":"109d49a5babf82881aee5436a9636860a0422a08874e'
    'e2734f139eb9750d2c28","size":5699,"version_id":null},"prev_manifest_sha256":"00000000000'
    '00000000000000000000000000000000000000000000000000000","schema_sha256":"63a6b4a811eb1a87'
    '8a2243dba3c9b9d8ed840dd871d2161e0989f0733e21ab98","key_id":"af5286f52fb6f481","sealed_at'
    '":"2026-11-26T09:31:00.000000Z"}\n'
    'ed25519 af5286f52fb6f481 I0t4IUQ/8Bw13HwbGLOUwaWvCOy/XcJXoWh8nMYBYfdxfnC85010/hgb9PY5r6sU'
    'OX2JkoV6n+mhHHxmHbm8BA==\n')
EX_MANIFEST_NAME = "v1/streams/billing/0/00000000000000000001-00000000000000000003.manifest"
EX_CHAIN = "7e994f8dbc2fdd5449eeac5c71f33329ca194dda30ea8cfd192658f4b9f78185"


def self_test() -> int:
    checks = 0

    def check(label, got, want):
        nonlocal checks
        if got != want:
            print(f"self-test FAIL {label}:\n  got  {got!r}\n  want {want!r}")
            raise SystemExit(1)
        checks += 1
        print(f"self-test ok   {label}")

    doc = (REPO / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    sec9 = doc[doc.index("## 9. Worked example"):]
    for label, const in [("public key", EX_PUBLIC_KEY), ("key id", EX_KEY_ID),
                         ("line 1", EX_LINE1), ("line 3", EX_LINE3), ("leaf bytes", EX_LEAF1),
                         ("leaf hash 1", EX_LEAF_HASH1), ("leaf hash 3", EX_LEAF_HASH3),
                         ("root", EX_ROOT), ("schema_sha256", EX_SCHEMA_SHA),
                         ("manifest", EX_MANIFEST), ("manifest name", EX_MANIFEST_NAME),
                         ("chain hash", EX_CHAIN)]:
        check(f"§9 still shows the embedded {label}", const in sec9, True)

    sk = Ed25519PrivateKey.from_private_bytes(EX_SEED)
    pk = public_bytes(sk)
    check("public key from seed 0x2a", pk.hex(), EX_PUBLIC_KEY)
    check("key id", key_id(pk), EX_KEY_ID)
    kf = f"/tmp/independent_writer_selftest_{os.getpid()}.key"
    try:
        with open(kf, "w", encoding="ascii") as f:
            f.write(f"cairn-ed25519-secret:{EX_SEED.hex()}\n")
        check("secret key file parses", public_bytes(load_secret_key(Path(kf))).hex(),
              EX_PUBLIC_KEY)
    finally:
        os.unlink(kf)

    ev1 = parse_event_line(EX_LINE1.encode())
    ev3 = parse_event_line(EX_LINE3.encode())
    rows = [(1, ev1), (3, ev3)]
    lb1 = leaf_bytes("billing", 0, 1, ev1)
    check("leaf bytes (offset 1)", lb1.hex(), EX_LEAF1)
    check("leaf hash (offset 1)", leaf_hash(lb1).hex(), EX_LEAF_HASH1)
    check("leaf hash (offset 3)", leaf_hash(leaf_bytes("billing", 0, 3, ev3)).hex(),
          EX_LEAF_HASH3)
    check("merkle root", merkle_root_hex("billing", 0, rows), EX_ROOT)
    check("schema_sha256 = SHA-256(schemas/audit_event.avsc)",
          hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest(), EX_SCHEMA_SHA)

    body = manifest_body(
        sid="billing", part=0, seq=0, first=1, last=3, events=[ev1, ev3], merkle_root=EX_ROOT,
        pq_sha256=EX_PARQUET_SHA, pq_size=EX_PARQUET_SIZE, prev=GENESIS,
        schema_sha256=EX_SCHEMA_SHA, kid=EX_KEY_ID, sealed_at=EX_SEALED_AT, store=EX_STORE,
        rejected=[(2, 2)])
    check("manifest object name", object_name("billing", 0, 1, 3, "manifest"), EX_MANIFEST_NAME)
    check("manifest body bytes", body.decode("utf-8"), EX_MANIFEST.split("\n")[0])
    check("signed manifest bytes (deterministic Ed25519)",
          signed_manifest(sk, EX_KEY_ID, body).decode("ascii"), EX_MANIFEST)
    check("chain hash", chain_hash(body), EX_CHAIN)
    check("canonical sealed_at form", bool(re.fullmatch(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", now_canonical())), True)

    # Serialisation of awkward strings (§6.1: escape only '"', '\\', controls; raw UTF-8).
    odd = dict(ev1, tenant='é"\\\x01\x7f/\u2028')
    b2 = manifest_body(
        sid="billing", part=0, seq=0, first=1, last=1, events=[odd], merkle_root=EX_ROOT,
        pq_sha256=EX_PARQUET_SHA, pq_size=1, prev=GENESIS, schema_sha256=EX_SCHEMA_SHA,
        kid=EX_KEY_ID, sealed_at=EX_SEALED_AT, store=EX_STORE)
    check("tenant escaping", '"tenants":["é\\"\\\\\\u0001\x7f/\u2028"]'.encode("utf-8") in b2,
          True)

    # Input parsing: occurred_at with an offset, details null vs {}.
    off = parse_event_line(EX_LINE3.replace("2026-11-26T09:30:01Z",
                                            "2026-11-26T10:30:01.000000+01:00").encode())
    check("occurred_at offset converted to UTC", off["occurred_at_us"], ev3["occurred_at_us"])
    empty = parse_event_line(EX_LINE3[:-1].encode() + b',"details":{}}')
    check("details {} is present and empty", empty["details"], [])
    check("details absent is null", ev3["details"], None)
    check("leaf differs for details null vs {}",
          leaf_bytes("billing", 0, 3, empty) != leaf_bytes("billing", 0, 3, ev3), True)

    # Every variant: the root of the values written, read back, and the §4 verdict.
    rows3 = rows + [(4, empty)]
    for variant, (accepted, _what) in VARIANTS.items():
        written = [(o, apply_variant_values(ev, variant)) for o, ev in rows3]
        data = parquet_bytes(build_table("billing", 0, written, variant))
        root = merkle_root_hex("billing", 0, written)
        check(f"variant {variant}: read back = written root",
              readback_root(data, "billing", 0), (3, root))
        if variant not in ("bad_outcome", "ms_timestamps"):
            check(f"variant {variant}: root = root of the input values",
                  root, merkle_root_hex("billing", 0, rows3))
        problems = contract_problems(data)
        check(f"variant {variant}: {'follows' if accepted else 'breaks'} §4 "
              f"{'' if accepted else problems}", not problems, accepted)

    print(f"independent writer self-test: {checks} checks, OK")
    return 0


# ---------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="independent_writer.py",
        description="Write cairn sealed segments from JSONL, from docs/FORMAT.md alone.")
    ap.add_argument("--input", help="JSONL file, one audit event per line")
    ap.add_argument("--source-id", help="stream id (file source id); partition is 0")
    ap.add_argument("--store", help="store root directory (created if missing)")
    ap.add_argument("--key", help="secret key file `cairn-ed25519-secret:<64 hex>`")
    ap.add_argument("--segment-events", type=int, help="events per segment (N >= 1)")
    ap.add_argument("--variant", default="default", choices=list(VARIANTS),
                    help="Parquet encoding variant (default: default)")
    ap.add_argument("--parquet-only", action="store_true",
                    help="write only the first segment's Parquet file, no manifest")
    ap.add_argument("--pubkey-out", help="also create this public key file")
    ap.add_argument("--self-test", action="store_true",
                    help="check against FORMAT.md §9 and exit")
    args = ap.parse_args(argv[1:])
    if args.self_test:
        return self_test()
    missing = [f"--{n.replace('_', '-')}" for n in
               ("input", "source_id", "store", "key", "segment_events")
               if getattr(args, n) is None]
    if missing:
        ap.print_usage(sys.stderr)
        print(f"{ap.prog}: error: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        return write_store(args)
    except UsageError as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    except (InputError, WriteError) as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    try:
        code = main(sys.argv)
    except SystemExit as e:  # argparse usage errors (2), self-test failures (1)
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Like independent_verifier.py: skip interpreter teardown (pyarrow's native libraries
    # have been seen to crash there), so the exit status is always the verdict.
    os._exit(code)
