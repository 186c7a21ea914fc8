"""A reference verifier for a celltrail ledger export, written from the published format only.

    python verify_ledger.py ledger.jsonl chains.json

`ledger.jsonl` is `GET /api/v1/ledger/export?format=jsonl`; `chains.json` is
`GET /api/v1/ledger/chains`, fetched at the same time. Needs only `rfc8785` and the standard
library. Prints "intact: N events in M chains" and exits 0, or prints the first problem and
exits 1. See docs/verifying-the-ledger.md.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable

import rfc8785


def verify(lines: Iterable[str], heads: list[dict[str, object]]) -> tuple[bool, str]:  # noqa: PLR0911
    """(intact, what was found)."""
    last: dict[str, tuple[int, str]] = {}
    events = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = json.loads(line)
        body_text: str = record["body"]
        body = json.loads(body_text)
        where = f"line {number} ({record['chain']} #{record['seq']})"
        if rfc8785.dumps(body) != body_text.encode():
            return False, f"{where}: the body is not in RFC 8785 canonical form"
        if hashlib.sha256(body_text.encode()).hexdigest() != record["hash"]:
            return False, f"{where}: sha256(body) is not its hash"
        if (body["chain"], body["seq"]) != (record["chain"], record["seq"]):
            return False, f"{where}: the body names another chain or seq"
        seq, previous = last.get(body["chain"], (0, None))
        if body["seq"] != seq + 1:
            return False, f"{where}: expected seq {seq + 1} (a missing or extra event)"
        if body["prev"] != previous:
            return False, f"{where}: it does not name the previous event's hash"
        last[body["chain"]] = (body["seq"], record["hash"])
        events += 1
    listed = {str(head["chain"]): (head["seq"], head["hash"]) for head in heads}
    for chain in sorted(set(listed) | set(last)):
        if listed.get(chain) != last.get(chain):
            return False, (
                f"{chain}: the export ends at {last.get(chain)}, the chain list at "
                f"{listed.get(chain)} (a truncated, extended or missing chain)"
            )
    return True, f"intact: {events} events in {len(last)} chains"


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as export, open(argv[2], encoding="utf-8") as chains:
        intact, found = verify(export, json.load(chains))
    print(found)  # noqa: T201 - a command-line tool
    return 0 if intact else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
