"""The ledger as JSON Lines: one event per line, each with the exact bytes that were hashed,
for an outside verifier (docs/verify_ledger.py) that needs nothing of celltrail.

A line is `{"chain", "seq", "hash", "body"}`, `body` being the event's RFC 8785 canonical
JSON as a string; `sha256(body)` is `hash`, and the body names its chain, seq and the previous
event's hash. No database id appears: the order is chain, then seq. A blinded reader's export
leaves out whole chains (a blinded kit's vials and any chain naming one), never single events,
so every chain it holds verifies on its own. `chain_heads` lists each chain's last seq and
hash, so a verifier can tell a truncated chain from a whole one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from custody.ledger import ChainHead, CustodyEvent
from custody.trials import hidden_kit_chains

VIAL_CHAIN_PREFIX = "vial:"


def ledger_lines(
    session: Session, *, blinded: bool, chain: str | None = None, batch: int = 2000
) -> Iterator[bytes]:
    """Every event (of one chain, or all) as JSON Lines, streamed from the database.

    For a blinded reader every chain that is or names a blinded kit's vial is left out whole:
    the kit vials' own chains, and any chain (a shipment's) whose bodies list such a vial,
    since a body is exported as it was hashed and cannot be edited."""
    left_out = _chains_naming_kit_vials(session, batch=batch) if blinded else frozenset()
    for name, seq, event_hash, body in session.execute(_events(chain, batch)):
        if name not in left_out:
            line = {"chain": name, "seq": seq, "hash": event_hash, "body": bytes(body).decode()}
            yield orjson.dumps(line) + b"\n"


def chain_heads(session: Session, *, blinded: bool) -> list[dict[str, Any]]:
    """Each chain's last seq and hash, in chain order, with the same chains left out as
    `ledger_lines` leaves out for a blinded reader."""
    left_out = _chains_naming_kit_vials(session) if blinded else frozenset()
    query = select(ChainHead.chain, ChainHead.seq, ChainHead.hash).where(ChainHead.seq > 0)
    return [
        {"chain": name, "seq": seq, "hash": head}
        for name, seq, head in session.execute(query.order_by(ChainHead.chain))
        if name not in left_out
    ]


def _events(chain: str | None, batch: int) -> Select[str, int, str, bytes]:
    query = select(CustodyEvent.chain, CustodyEvent.seq, CustodyEvent.hash, CustodyEvent.body)
    if chain is not None:
        query = query.where(CustodyEvent.chain == chain)
    return query.order_by(CustodyEvent.chain, CustodyEvent.seq).execution_options(yield_per=batch)


def _chains_naming_kit_vials(session: Session, *, batch: int = 2000) -> frozenset[str]:
    hidden = set(session.scalars(hidden_kit_chains()))
    if not hidden:
        return frozenset()
    serials = sorted(chain.removeprefix(VIAL_CHAIN_PREFIX) for chain in hidden)
    # A serial as a JSON string or at the end of a chain name: "LOT-V0001" or "vial:LOT-V0001"
    naming = re.compile(
        '(?:"|' + VIAL_CHAIN_PREFIX + ")(?:" + "|".join(map(re.escape, serials)) + ')"'
    )
    for name, _, _, body in session.execute(_events(None, batch)):
        if name not in hidden and naming.search(bytes(body).decode()):
            hidden.add(name)
    return frozenset(hidden)
