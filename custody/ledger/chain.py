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
from collections.abc import Callable, Iterable, Mapping
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


EventRow = tuple[int, str, int, str | None, str, str, str | None, str, str, str | None, bytes]
"""One stored event as `ChainVerifier.check_rows` takes it, positionally:

(event_id, chain, seq, prev_hash, event_hash, event_type, site, occurred_at, recorded_at,
actor, body), with `site`, `occurred_at`, `recorded_at` and `actor` (the username) spelt
as in the body.
"""

_NO_HEAD: Final = (0, None)
_NOT_A_USER: Final = object()  # an "actor" that is neither null nor an object: never equal
_NEVER: Final = 1 << 64  # above any event id


def _no_hash(event_hash: str) -> None:
    pass


# How far an event may be recorded before one with a lower id: writers take their time
# before the database gives them an id, and a checkpoint is signed after it is settled.
RECORDING_SKEW: Final = dt.timedelta(minutes=5)


def _parse_time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


class ChainVerifier:
    """Checks events one at a time, in recording order, across every chain.

    Feed `check_rows` (or `check`, one event at a time) the stored columns of each event
    in ascending id order; it returns the first `Break` it sees, or None. Memory is one
    (seq, hash) pair per chain.
    """

    def __init__(self, *, skew: dt.timedelta = RECORDING_SKEW) -> None:
        self.heads: dict[str, tuple[int, str]] = {}
        self.events = 0
        # The latest recording time seen so far in id order (or a checkpoint's signing
        # time, `witness`), spelt as `format_time` spells it; `skew` is how far a later id
        # may be recorded before it (concurrent writers take their time before their id).
        self.latest = ""
        self.skew = skew

    def witness(self, moment: str) -> None:
        """A time the ledger is known to have reached (a checkpoint's signing time): no
        later event may be recorded more than `skew` before it."""
        self.latest = max(self.latest, moment)

    def _goes_back(self, recorded_at: str) -> bool:
        """Whether `recorded_at` lies more than `skew` before the latest time seen."""
        latest = _parse_time(self.latest)
        return (
            latest is not None
            and (_parse_time(recorded_at) or dt.datetime.min.replace(tzinfo=dt.UTC))
            < latest - self.skew
        )

    def check(
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
        row = (
            event_id,
            chain,
            seq,
            prev_hash,
            event_hash,
            event_type,
            site,
            occurred_at,
            recorded_at,
            actor,
            body,
        )
        return self.check_rows((row,))

    def check_rows(  # noqa: PLR0911, PLR0912 - one return per kind of tampering keeps the reasons exact
        self,
        rows: Iterable[EventRow],
        *,
        on_hash: Callable[[str], object] = _no_hash,
        pause_after: Iterable[int] = (),
        on_pause: Callable[[int], Break | None] | None = None,
    ) -> Break | None:
        """Verify stored events in ascending id order; the first `Break`, or None.

        Each event's body must hash to its stored hash, parse as a format-1 event and
        agree with its indexed columns (chain, seq, type, site, both times, the actor's
        username) and its stored predecessor; its seq must follow the last one seen on its
        chain, and its predecessor must be that event's hash.

        `on_hash` is given each sound event's hash in order (for the checkpoint root).
        `pause_after` are ascending event ids: once every event up to one of them is
        checked, and before any later event, `on_pause(i)` is called with its index; a
        `Break` it returns stops the verification. Pauses that no later event reaches are
        called at the end.
        """
        # orjson's C parser keeps verification close to the speed of plain SHA-256.
        sha256, loads, heads = hashlib.sha256, orjson.loads, self.heads
        last_of = heads.get
        pauses = iter(pause_after)
        pause, paused = next(pauses, _NEVER), 0
        count = self.events
        try:
            for row in rows:
                (
                    event_id,
                    chain,
                    seq,
                    prev_hash,
                    event_hash,
                    event_type,
                    site,
                    occurred_at,
                    recorded_at,
                    actor,
                    body,
                ) = row
                while event_id > pause:
                    found = on_pause(paused) if on_pause else None
                    if found:
                        return found
                    pause, paused = next(pauses, _NEVER), paused + 1
                count += 1
                if sha256(body).hexdigest() != event_hash:
                    return Break(chain, seq, event_id, "the stored body does not match its hash")
                try:
                    parsed = loads(body)
                except ValueError:
                    return Break(chain, seq, event_id, "the stored body is not JSON")
                if type(parsed) is not dict or parsed.get("format") != FORMAT_VERSION:
                    return Break(chain, seq, event_id, "the body is not a format-1 event")
                member = parsed.get
                user = member("actor")
                if user is not None:
                    user = user.get("user") if type(user) is dict else _NOT_A_USER
                if (
                    member("chain") != chain
                    or member("seq") != seq
                    or member("type") != event_type
                    or member("site") != site
                    or member("occurred_at") != occurred_at
                    or member("recorded_at") != recorded_at
                    or user != actor
                ):
                    return Break(
                        chain, seq, event_id, "the indexed columns disagree with the hashed body"
                    )
                if member("prev") != prev_hash:
                    return Break(
                        chain, seq, event_id, "the stored predecessor disagrees with the body"
                    )
                last_seq, last_hash = last_of(chain, _NO_HEAD)
                if seq != last_seq + 1:
                    missing = (
                        f"event {last_seq + 1} is missing" if seq > last_seq + 1 else "out of order"
                    )
                    return Break(chain, seq, event_id, f"sequence broken: {missing}")
                if prev_hash != last_hash:
                    return Break(
                        chain, seq, event_id, "it does not point to the previous event's hash"
                    )
                # Strings in `format_time`'s spelling order as times do: the usual case
                # costs one comparison; only an earlier time is parsed and judged.
                if recorded_at >= self.latest:
                    self.latest = recorded_at
                elif self._goes_back(recorded_at):
                    return Break(
                        chain,
                        seq,
                        event_id,
                        f"it is recorded at {recorded_at}, before the ledger had already "
                        f"reached {self.latest} (a recording time never goes back)",
                    )
                heads[chain] = (seq, event_hash)
                on_hash(event_hash)
            while pause != _NEVER:
                found = on_pause(paused) if on_pause else None
                if found:
                    return found
                pause, paused = next(pauses, _NEVER), paused + 1
            return None
        finally:
            self.events = count

    def check_heads(self, recorded_heads: Mapping[str, tuple[int, str | None]]) -> Break | None:
        """Compare the chains seen with the recorded chain heads (catches a deleted tail)."""
        if recorded_heads == self.heads:  # the usual answer, without sorting every chain
            return None
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
