#!/usr/bin/env python3
"""Independent check of a signed query result (`cairn.result.v1`, docs/FORMAT.md §10).

Written from FORMAT.md §10 (and §6.4 for keys), not from cairn's Rust code; the Ed25519 and
key-file rules are those of tests/independent_verifier.py.

Usage:
    python3 tests/independent_result_verifier.py RESPONSE_JSON PUBKEY_FILE [PUBKEY_FILE...]

Prints one `FAIL <what>: <reason>` line per problem, then `intact` or `not as signed`.
Exit status: 0 intact, 1 not as signed, 2 usage error.

The rows are re-serialised as §10 says: no whitespace, members in the response's order,
JSON's minimal escapes, non-ASCII as UTF-8. Python and serde_json agree on strings and
integers; they may print some floats differently (exponent forms), which this checker does not
try to reproduce.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from independent_verifier import SpecError, key_id, parse_public_key_file, strict_verify  # noqa: E402

HEX64 = re.compile(r"[0-9a-f]{64}")
TOKEN = re.compile(r"[^\s\x00-\x1f\x7f]+")


def parse_statement(text: str) -> dict:
    """§10: exact line order, every line ending in \\n; raises ValueError otherwise."""
    if not text.endswith("\n"):
        raise ValueError("does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 6 or lines[0] != "cairn.result.v1":
        raise ValueError("the first line must be cairn.result.v1, then five fields")
    names = ["decision_id", "signed_at", "sql", "rows_sha256", "row_count"]
    fields = {}
    for i, name in enumerate(names, start=1):
        prefix = name + ": "
        if not lines[i].startswith(prefix):
            raise ValueError(f"line {i + 1}: expected `{name}: ...`")
        fields[name] = lines[i][len(prefix):]
    for name in ("decision_id", "signed_at"):
        if not TOKEN.fullmatch(fields[name]):
            raise ValueError(f"{name} is empty or has whitespace")
    sql = json.loads(fields["sql"])
    if not isinstance(sql, str) or json.dumps(sql, ensure_ascii=False) != fields["sql"]:
        raise ValueError("sql is not a JSON string in minimal form")
    if not HEX64.fullmatch(fields["rows_sha256"]):
        raise ValueError("rows_sha256 is not 64 lowercase hex digits")
    if not re.fullmatch(r"0|[1-9][0-9]*", fields["row_count"]):
        raise ValueError("row_count is not a decimal without leading zeros")
    segments = []
    for n, line in enumerate(lines[6:], start=7):
        if not line.startswith("segment: "):
            raise ValueError(f"line {n}: expected `segment: ...`")
        parts = line[len("segment: "):].split(" ")
        if len(parts) != 4 or not all(TOKEN.fullmatch(p) for p in parts):
            raise ValueError(f"line {n}: a segment line has four fields")
        segments.append(parts)
    return {
        "decision_id": fields["decision_id"],
        "sql": sql,
        "rows_sha256": fields["rows_sha256"],
        "row_count": int(fields["row_count"]),
        "segments": segments,
    }


def check(response: dict, keys: dict[str, bytes]) -> list[str]:
    sig = response.get("signature")
    if not isinstance(sig, dict):
        return ["signature: the response has none"]
    statement, kid, hexsig = sig.get("statement"), sig.get("key_id"), sig.get("ed25519")
    if not all(isinstance(x, str) for x in (statement, kid, hexsig)):
        return ["signature: statement, key_id and ed25519 must be strings"]
    if kid not in keys:
        return [f"key: {kid} is not a trusted key"]
    try:
        raw = bytes.fromhex(hexsig)
    except ValueError:
        return ["signature: ed25519 is not hex"]
    if not strict_verify(keys[kid], raw, statement.encode("utf-8")):
        return ["signature: does not verify over the statement"]
    try:
        st = parse_statement(statement)
    except ValueError as e:
        return [f"statement: {e}"]
    problems = []
    if response.get("decision_id") != st["decision_id"]:
        problems.append("decision_id: differs from the statement's")
    rows = response.get("rows")
    text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != st["rows_sha256"]:
        problems.append("rows: their SHA-256 is not the signed one")
    if not isinstance(rows, list) or len(rows) != st["row_count"]:
        problems.append("rows: not the signed number of rows")
    listed = [
        [s.get(k) for k in ("table", "manifest", "manifest_sha256", "merkle_root")]
        for s in response.get("segments") or []
    ]
    if listed != st["segments"]:
        problems.append("segments: not the signed ones")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        response = json.loads(Path(argv[1]).read_bytes())
        keys = {}
        for p in argv[2:]:
            pk = parse_public_key_file(Path(p).read_bytes())
            keys[key_id(pk)] = pk
    except (OSError, ValueError, SpecError) as e:
        print(f"usage error: {e}", file=sys.stderr)
        return 2
    problems = check(response, keys)
    for p in problems:
        print(f"FAIL {p}")
    print("not as signed" if problems else "intact")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
