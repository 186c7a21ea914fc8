"""The handoff rules, without a database: one allowed scan, then each reason it is refused."""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from custody.shipping import HandoffFacts, ShipmentStatus, handoff_refusal
from lots.access import Role
from lots.time_rules import CLOCK_SKEW_TOLERANCE

SSCC = "095060000000000017"
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
SHIPPED_AT = NOW - dt.timedelta(hours=1)
PHARMACY, DEPOT = 31, 42  # site ids: the shipper goes to the SYSU3 pharmacy
KAI_LIN, BO_YANG, MEI_CHEN = 7, 8, 9  # user ids: courier, courier2, pharmacist
# Bo Yang scans the shipper Kai Lin has held since shipping, an hour ago.
ALLOWED = HandoffFacts(
    sscc=SSCC,
    status=ShipmentStatus.IN_TRANSIT,
    destination_site_id=PHARMACY,
    destination_name="Third Affiliated Hospital pharmacy",
    holder_id=KAI_LIN,
    holder_username="courier",
    holder_name="Kai Lin",
    holder_since=SHIPPED_AT,
    taker_id=BO_YANG,
    taker_role=Role.COURIER,
    taker_site_id=DEPOT,
    taker_site_name="Cryo courier depot",
    giver_username="courier",
    occurred_at=NOW,
    now=NOW,
)


def scan(**changes: object) -> str | None:
    """The rule's answer to the allowed scan with these facts changed."""
    return handoff_refusal(dataclasses.replace(ALLOWED, **changes))


def test_a_courier_takes_the_shipper_from_the_courier_who_holds_it() -> None:
    assert scan() is None


def test_an_open_shipper_is_not_in_a_couriers_hands_yet() -> None:
    assert scan(status=ShipmentStatus.OPEN) == (
        f"Shipper {SSCC} is not sealed: it is not in a courier's hands yet."
    )


def test_a_sealed_shipper_that_has_not_shipped_is_not_handed_off() -> None:
    assert scan(status=ShipmentStatus.SEALED) == (
        f"Shipper {SSCC} is sealed but not shipped: it is not in a courier's hands yet."
    )


def test_a_received_shipper_is_not_handed_off_again() -> None:
    assert scan(status=ShipmentStatus.RECEIVED) == (
        f"Shipper {SSCC} was already received at Third Affiliated Hospital pharmacy."
    )


def test_the_giver_must_be_the_holder() -> None:
    assert scan(giver_username="pharmacist") == (
        f"pharmacist does not hold shipper {SSCC}; it is in the custody of Kai Lin."
    )


def test_a_shipper_nobody_holds_is_handed_over_by_nobody() -> None:
    assert scan(holder_id=None, holder_username=None, holder_name=None) == (
        f"courier does not hold shipper {SSCC}; it is in the custody of nobody."
    )


def test_a_courier_cannot_hand_a_shipper_to_himself() -> None:
    assert scan(taker_id=KAI_LIN) == f"You already hold shipper {SSCC}."


def test_a_pharmacist_takes_only_what_is_addressed_to_the_pharmacy() -> None:
    elsewhere = scan(taker_id=MEI_CHEN, taker_role=Role.PHARMACIST, taker_site_name="AMU")
    assert elsewhere == (
        f"Shipper {SSCC} is addressed to Third Affiliated Hospital pharmacy; AMU cannot take "
        "custody of it."
    )
    assert scan(taker_id=MEI_CHEN, taker_role=Role.PHARMACIST, taker_site_id=PHARMACY) is None


def test_a_courier_relays_a_shipper_addressed_anywhere() -> None:
    assert scan(taker_site_id=DEPOT + 1) is None


def test_a_scan_in_the_future_beyond_the_tolerance_is_refused() -> None:
    ahead = NOW + CLOCK_SKEW_TOLERANCE + dt.timedelta(seconds=1)
    assert scan(occurred_at=ahead) == (
        "The time of the scan is in the future; check the device clock."
    )


def test_a_scan_a_little_ahead_of_the_server_is_within_the_tolerance() -> None:
    assert scan(occurred_at=NOW + CLOCK_SKEW_TOLERANCE) is None


def test_a_scan_before_the_previous_handoff_beyond_the_tolerance_is_refused() -> None:
    assert scan(occurred_at=SHIPPED_AT - dt.timedelta(minutes=6)) == (
        "The scan's time 2026-11-30 08:54 UTC is before the previous handoff "
        "(2026-11-30 09:00 UTC, 5 min tolerance)."
    )


def test_a_scan_slightly_before_the_previous_handoff_is_within_the_tolerance() -> None:
    assert scan(occurred_at=SHIPPED_AT - CLOCK_SKEW_TOLERANCE) is None


def test_the_tolerance_is_five_minutes() -> None:
    assert dt.timedelta(minutes=5) == CLOCK_SKEW_TOLERANCE


# Generated facts: the rule refuses exactly when one of its conditions holds.

USERNAMES = {KAI_LIN: "courier", BO_YANG: "courier2", MEI_CHEN: "pharmacist"}
users = st.sampled_from(list(USERNAMES))
sites = st.sampled_from([PHARMACY, DEPOT])
offsets = st.integers(min_value=-20 * 60, max_value=20 * 60).map(
    lambda seconds: dt.timedelta(seconds=seconds)
)


@st.composite
def handoff_facts(draw: st.DrawFn) -> HandoffFacts:
    holder = draw(st.none() | users)
    return HandoffFacts(
        sscc=SSCC,
        status=draw(st.sampled_from(list(ShipmentStatus))),
        destination_site_id=draw(sites),
        destination_name="Third Affiliated Hospital pharmacy",
        holder_id=holder,
        holder_username=None if holder is None else USERNAMES[holder],
        holder_name=None if holder is None else f"User {holder}",
        holder_since=draw(st.none() | offsets.map(lambda offset: SHIPPED_AT + offset)),
        taker_id=draw(users),
        taker_role=draw(st.sampled_from(list(Role))),
        taker_site_id=draw(sites),
        taker_site_name="Somewhere",
        giver_username=draw(st.sampled_from([*USERNAMES.values(), "someone-else"])),
        occurred_at=SHIPPED_AT + draw(offsets),
        now=SHIPPED_AT + draw(offsets),
    )


def _conditions(facts: HandoffFacts) -> list[bool]:
    """Each reason to refuse, stated independently of the rule's own code."""
    return [
        facts.status != ShipmentStatus.IN_TRANSIT,
        facts.holder_id is None or facts.holder_username != facts.giver_username,
        facts.taker_id == facts.holder_id,
        facts.taker_role == Role.PHARMACIST and facts.taker_site_id != facts.destination_site_id,
        facts.occurred_at - facts.now > facts.tolerance,
        facts.holder_since is not None and facts.holder_since - facts.occurred_at > facts.tolerance,
    ]


@given(handoff_facts())
def test_a_handoff_is_refused_exactly_when_one_of_the_rules_conditions_holds(
    facts: HandoffFacts,
) -> None:
    assert (handoff_refusal(facts) is not None) == any(_conditions(facts))
