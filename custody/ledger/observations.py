"""Observations: the one generic custody fact, an inspection note on a known subject."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger.append import EventDraft, append_event
from custody.ledger.models import CustodyEvent
from lots.access import Permission, require, sees_all_sites
from lots.base import utcnow
from lots.errors import InvalidValueError, NotFoundError
from lots.models import Product, Site, User
from lots.time_rules import is_in_the_future

INSPECTED = "INSPECTED"


def _site_exists(session: Session, key: str) -> bool:
    return session.scalar(select(Site.id).where(Site.code == key)) is not None


def _product_exists(session: Session, key: str) -> bool:
    return session.scalar(select(Product.id).where(Product.code == key)) is not None


# Chains celltrail knows; later kinds (lot, vial, shipment) register their own lookups here.
SUBJECT_KINDS: dict[str, Callable[[Session, str], bool]] = {
    "site": _site_exists,
    "product": _product_exists,
}


def record_observation(
    session: Session,
    user: User,
    *,
    chain: str,
    occurred_at: dt.datetime,
    note: str,
    observations: Mapping[str, Any],
    now: dt.datetime | None = None,
) -> CustodyEvent:
    """Append an INSPECTED event to an existing subject's chain, at the user's site."""
    require(user, Permission.LEDGER_WRITE)
    kind, _, key = chain.partition(":")
    exists = SUBJECT_KINDS.get(kind)
    if exists is None:
        raise InvalidValueError("chain", f"celltrail has no subjects of kind {kind!r}.")
    # A site's chain is its own record: another site's user writes there never (it would
    # open that chain to the writer), and reads it as an unknown site.
    foreign_site = kind == "site" and key != user.site.code and not sees_all_sites(user)
    if foreign_site or not exists(session, key):
        raise NotFoundError(kind, key)
    if is_in_the_future(occurred_at, now or utcnow()):
        raise InvalidValueError("occurred_at", "The time of the observation is in the future.")
    return append_event(
        session,
        EventDraft(
            chain=chain,
            event_type=INSPECTED,
            occurred_at=occurred_at,
            payload={"note": note, "observations": dict(observations)},
            actor=user,
            site=user.site,
        ),
    )
