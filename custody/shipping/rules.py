"""Handoff rules: plain facts about a scan in, the reason it is refused (or None) out.

Pure code: `custody.shipping.handoffs` gathers `HandoffFacts` from the shipment and the
people, and the scan page asks the same rule whether to offer taking custody. Every reason
is a sentence the courier or the pharmacist reads on the scanner.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from lots.access import Role
from lots.time_rules import CLOCK_SKEW_TOLERANCE, is_before, is_in_the_future, tolerance_minutes

# The values of ShipmentStatus (custody.shipping.models): the rules import no tables.
IN_TRANSIT: Final = "in_transit"
RECEIVED: Final = "received"
NOT_YET_SHIPPED: Final = {"open": "not sealed", "sealed": "sealed but not shipped"}


@dataclass(frozen=True)
class HandoffFacts:
    """A scan of a shipper by the person taking it, with the shipment as it stands."""

    sscc: str
    status: str
    destination_site_id: int
    destination_name: str
    holder_id: int | None  # the custodian: the courier (or pharmacist) holding it now
    holder_username: str | None
    holder_name: str | None
    holder_since: dt.datetime | None  # the last handoff (or shipping) time
    taker_id: int
    taker_role: str
    taker_site_id: int
    taker_site_name: str
    giver_username: str  # the person the taker names (or scans) as handing over
    occurred_at: dt.datetime  # the time of the scan
    now: dt.datetime
    tolerance: dt.timedelta = CLOCK_SKEW_TOLERANCE


def handoff_refusal(facts: HandoffFacts) -> str | None:
    """Why this handoff does not follow from the chain, or None when it does."""
    return (
        _status_refusal(facts)
        or _holder_refusal(facts)
        or _taker_refusal(facts)
        or _time_refusal(facts)
    )


def _status_refusal(facts: HandoffFacts) -> str | None:
    if facts.status in NOT_YET_SHIPPED:
        state = NOT_YET_SHIPPED[facts.status]
        return f"Shipper {facts.sscc} is {state}: it is not in a courier's hands yet."
    if facts.status == RECEIVED:
        return f"Shipper {facts.sscc} was already received at {facts.destination_name}."
    return None


def _holder_refusal(facts: HandoffFacts) -> str | None:
    if facts.holder_id is None or facts.holder_username != facts.giver_username:
        named = facts.holder_name if facts.holder_id is not None else "nobody"
        return (
            f"{facts.giver_username} does not hold shipper {facts.sscc}; it is in the custody "
            f"of {named}."
        )
    return None


def _taker_refusal(facts: HandoffFacts) -> str | None:
    if facts.taker_id == facts.holder_id:
        return f"You already hold shipper {facts.sscc}."
    if facts.taker_role == Role.PHARMACIST and facts.taker_site_id != facts.destination_site_id:
        # A pharmacy takes custody only of what is addressed to it; couriers relay anywhere.
        return (
            f"Shipper {facts.sscc} is addressed to {facts.destination_name}; "
            f"{facts.taker_site_name} cannot take custody of it."
        )
    return None


def _time_refusal(facts: HandoffFacts) -> str | None:
    if is_in_the_future(facts.occurred_at, facts.now, tolerance=facts.tolerance):
        return "The time of the scan is in the future; check the device clock."
    since = facts.holder_since
    if since is not None and is_before(facts.occurred_at, since, tolerance=facts.tolerance):
        return (
            f"The scan's time {facts.occurred_at:%Y-%m-%d %H:%M} UTC is before the previous "
            f"handoff ({since:%Y-%m-%d %H:%M} UTC, {tolerance_minutes(facts.tolerance)} min "
            "tolerance)."
        )
    return None
