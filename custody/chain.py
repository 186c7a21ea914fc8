"""The canonical form of a custody event, its hash, and chain verification. Pure code.

Format 1. An event's body is a JSON object with exactly these members:

    format       1
    chain        the subject chain, "kind:identifier" (e.g. "vial:XS228-2507-01-V0001")
    seq          position in the chain, from 1
    prev         hex SHA-256 of the previous event of the chain, or null for seq 1
    type         the event type, a past-tense fact (COMMISSIONED, HANDED_OFF, ...)
    occurred_at  when it happened, as the user says (RFC 3339, UTC, microseconds, "Z")
    recorded_at  when the server recorded it (same form)
    actor        {"user", "name", "role"} of the person, or null for the system
    site         the code of the site where it happened, or null
    payload      a JSON object of the facts of this event type

The event's hash is SHA-256 over the RFC 8785 (JCS) canonical UTF-8 bytes of the body.
Database ids are deliberately absent: an exported chain must verify without our database.
An auditor's own check is three lines: canonicalise, hash, compare with the next `prev`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
import rfc8785

FORMAT_VERSION: Final = 1
BODY_MEMBERS: Final = frozenset(
    {
        "format",
        "chain",
        "seq",
        "prev",
        "type",
        "occurred_at",
        "recorded_at",
        "actor",
        "site",
        "payload",
    }
)


@dataclass(frozen=True)
class Actor:
    """The person behind an event, as the hashed record names them."""

    user: str
    name: str
    role: str


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds: one spelling per instant, so one hash."""
    if moment.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_body(
    *,
    chain: str,
    seq: int,
    prev: str | None,
    event_type: str,
    occurred_at: dt.datetime,
    recorded_at: dt.datetime,
    actor: Actor | None,
    site: str | None,
    payload: Mapping[str, Any],
) -> dict[str, Any]:
    """The hashed body of an event in format 1."""
    if seq < 1:
        raise ValueError("seq starts at 1")
    if (seq == 1) != (prev is None):
        raise ValueError("only the first event of a chain has no predecessor")
    return {
        "format": FORMAT_VERSION,
        "chain": chain,
        "seq": seq,
        "prev": prev,
        "type": event_type,
        "occurred_at": format_time(occurred_at),
        "recorded_at": format_time(recorded_at),
        "actor": None
        if actor is None
        else {"user": actor.user, "name": actor.name, "role": actor.role},
        "site": site,
        "payload": dict(payload),
    }


def canonical_bytes(body: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of a body."""
    return rfc8785.dumps(dict(body))


def digest(canonical: bytes) -> str:
    """Hex SHA-256 of canonical bytes: the event's hash."""
    return hashlib.sha256(canonical).hexdigest()


def link(body: Mapping[str, Any]) -> tuple[bytes, str]:
    """Canonicalise and hash a body: what gets stored and what the next event points to."""
    canonical = canonical_bytes(body)
    return canonical, digest(canonical)


@dataclass(frozen=True)
class Break:
    """The first place a chain stops being trustworthy."""

    chain: str
    seq: int | None
    event_id: int | None
    reason: str


class ChainVerifier:
    """Checks events one at a time, in recording order, across every chain.

    Feed `check` the stored columns of each event in ascending id order; it returns the
    first `Break` it sees, or None. Memory is one (seq, hash) pair per chain.
    """

    def __init__(self) -> None:
        self.heads: dict[str, tuple[int, str]] = {}
        self.events = 0

    def check(  # noqa: PLR0911 - one return per kind of tampering keeps the reasons exact
        self,
        *,
        event_id: int,
        chain: str,
        seq: int,
        prev_hash: str | None,
        event_hash: str,
        event_type: str,
        site: str | None,
        occurred_at: str,
        recorded_at: str,
        actor: str | None,
        body: bytes,
    ) -> Break | None:
        """Verify one stored event against its own bytes and its predecessor.

        `site`, `occurred_at`, `recorded_at` and `actor` (the username) are the indexed
        columns, spelt as in the body. The actor's name and role may change later; the
        username may not, so it is the one compared.
        """
        self.events += 1
        if digest(body) != event_hash:
            return Break(chain, seq, event_id, "the stored body does not match its hash")
        try:
            parsed = _loads(body)
        except ValueError:
            return Break(chain, seq, event_id, "the stored body is not JSON")
        if not isinstance(parsed, dict) or parsed.get("format") != FORMAT_VERSION:
            return Break(chain, seq, event_id, "the body is not a format-1 event")
        indexed = (chain, seq, event_type, site, occurred_at, recorded_at, actor)
        hashed = (
            *(parsed.get(name) for name in ("chain", "seq", "type", "site", "occurred_at")),
            parsed.get("recorded_at"),
            (parsed.get("actor") or {}).get("user"),
        )
        if hashed != indexed:
            return Break(chain, seq, event_id, "the indexed columns disagree with the hashed body")
        if parsed.get("prev") != prev_hash:
            return Break(chain, seq, event_id, "the stored predecessor disagrees with the body")
        last_seq, last_hash = self.heads.get(chain, (0, None))
        if seq != last_seq + 1:
            missing = f"event {last_seq + 1} is missing" if seq > last_seq + 1 else "out of order"
            return Break(chain, seq, event_id, f"sequence broken: {missing}")
        if prev_hash != last_hash:
            return Break(chain, seq, event_id, "it does not point to the previous event's hash")
        self.heads[chain] = (seq, event_hash)
        return None

    def check_heads(self, recorded_heads: Mapping[str, tuple[int, str | None]]) -> Break | None:
        """Compare the chains seen with the recorded chain heads (catches a deleted tail)."""
        for chain in sorted(set(recorded_heads) | set(self.heads)):
            seen = self.heads.get(chain)
            recorded = recorded_heads.get(chain)
            if recorded is None:
                return Break(
                    chain, seen[0] if seen else None, None, "a chain with no recorded head"
                )
            if seen is None or seen != recorded:
                last = seen[0] if seen else 0
                return Break(
                    chain,
                    last,
                    None,
                    f"the chain ends at event {last} but its head says {recorded[0]}",
                )
        return None


def _loads(body: bytes) -> Any:
    # orjson's C parser keeps verification close to the speed of plain SHA-256.
    return orjson.loads(body)
