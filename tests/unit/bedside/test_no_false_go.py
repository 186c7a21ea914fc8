"""No false GO, over random worlds: subjects of two trials whose codes collide, vials
allocated to anyone or no one, lots of every status (exceptional releases naming any
trial and code), expiry dates either side of local midnight in three time zones, custody
received at either pharmacy (or none), thaws early and late, excursions, transits without
the temperature record their product requires, withdrawals.

The invariant: GO implies the wristband's subject is the very subject (by id) the vial is
allocated to, the lot is released (or exceptionally released for this subject's trial and
code together), in date on the local calendar of the site, not recalled, received by the
pharmacy that supplies this ward, thawed within its window, with no open excursion, every
transit covered by a temperature record where the product requires one, and the subject not
withdrawn. And the converse, so the test fails in both directions: a world where
all of that holds is GO.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from custody.bedside import BedsideFacts, Dose, Outcome, VialEvent, judge

WARD = "WARD-A"
PHARMACIES = ("PH-A", "PH-B")
# Subject ids are identities; (trial, code) is how people name them: code S-1 is in both.
SUBJECTS = {1: ("T-A", "S-1"), 2: ("T-B", "S-1"), 3: ("T-A", "S-2")}
STATUSES = ("released", "exceptionally_released", "quarantine", "recalled", "rejected")
ZONES = ("Asia/Shanghai", "America/Bogota", "UTC")
BASE = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
WINDOW = 120  # minutes after thaw


def _events(now: dt.datetime, received_at: str | None, thawed: int | None) -> tuple:
    def at(minutes_ago: float) -> dt.datetime:
        return now - dt.timedelta(minutes=minutes_ago)

    events = [
        VialEvent("COMMISSIONED", at(60 * 24 * 30), "MAKER", "manufacturing"),
        VialEvent("PACKED", at(60 * 30), "MAKER", "manufacturing"),
        VialEvent("SHIPPED", at(60 * 29), "MAKER", "manufacturing", taker="courier"),
    ]
    if received_at is not None:
        events += [
            VialEvent(
                "HANDED_OFF", at(60 * 21), received_at, "pharmacist", "courier", "pharmacist"
            ),
            VialEvent("RECEIVED", at(60 * 21), received_at, "pharmacist"),
            VialEvent("STORED", at(60 * 20), received_at, "pharmacist"),
            VialEvent("DISPENSED", at(60), WARD, "pharmacist"),
        ]
    if thawed is not None:
        events.append(VialEvent("THAWED", at(thawed), WARD, "clinician"))
    return tuple(events)


# Each fact's whole domain; a world starts from one that may be given and changes a few.
DOMAINS: dict[str, st.SearchStrategy[Any]] = {
    "subject_id": st.sampled_from(sorted(SUBJECTS)),
    "allocated_to": st.sampled_from([None, *sorted(SUBJECTS)]),
    "status": st.sampled_from(STATUSES),
    "exceptional_for": st.sampled_from([None, *sorted(set(SUBJECTS.values()))]),
    "expires_in_days": st.integers(-2, 2),
    "pharmacy": st.sampled_from([None, *PHARMACIES]),
    "received_at": st.sampled_from([None, *PHARMACIES]),
    "thawed": st.sampled_from([None, 5, WINDOW - 1, WINDOW + 30]),
    "excursions": st.sets(st.sampled_from(["temperature", "hold_time", "gap"])).map(tuple),
    "withdrawn": st.booleans(),
    # Received shippers whose required temperature record does not cover the transit.
    "uncovered": st.sets(st.sampled_from(["SSCC-1", "SSCC-2"])).map(lambda s: tuple(sorted(s))),
}


@st.composite
def worlds(draw: Any) -> dict[str, Any]:
    zone = draw(st.sampled_from(ZONES))
    # Within a day either side of midnight at the site, to the minute.
    now = BASE + dt.timedelta(minutes=draw(st.integers(-24 * 60, 24 * 60)))
    today = now.astimezone(zoneinfo.ZoneInfo(zone)).date()
    subject = draw(DOMAINS["subject_id"])
    world = {
        "zone": zone,
        "now": now,
        "today": today,
        "subject_id": subject,
        "allocated_to": subject,
        "status": "released",
        "exceptional_for": None,
        "expires_in_days": 1,
        "pharmacy": "PH-A",
        "received_at": "PH-A",
        "thawed": 5,
        "excursions": (),
        "withdrawn": False,
        "uncovered": (),
    }
    # Up to three facts anywhere in their domain: single faults, pairs that might mask
    # each other, and worlds that are still allowed.
    for name in draw(st.sets(st.sampled_from(sorted(DOMAINS)), max_size=3)):
        world[name] = draw(DOMAINS[name])
    return world


def facts_of(world: dict[str, Any]) -> BedsideFacts:
    trial, code = SUBJECTS[world["subject_id"]]
    today = world["today"]
    return BedsideFacts(
        now=world["now"],
        time_zone=world["zone"],
        item="vial L-1-V0001",
        subject=code,
        subject_id=world["subject_id"],
        wristband_authenticated=True,
        trial=trial,
        withdrawn_on=today if world["withdrawn"] else None,
        visit=1,
        visit_window=(today, today + dt.timedelta(days=1)),
        allocated_to=world["allocated_to"],
        allocated_visit=1,
        visit_allocation="vial L-1-V0001",
        lot="L-1",
        lot_status=world["status"],
        exceptional_for=world["exceptional_for"],
        recall_scope="lot:L-1" if world["status"] == "recalled" else None,
        expires_on=today + dt.timedelta(days=world["expires_in_days"]),
        open_excursions=world["excursions"],
        uncovered_transit=world.get("uncovered", ()),
        events=_events(world["now"], world["received_at"], world["thawed"]),
        places=frozenset({WARD, *PHARMACIES}),
        pharmacy=world["pharmacy"],
        check_site=WARD,
        post_thaw_window_minutes=WINDOW,
        dose=Dose(ordered_route="intravenous", product_route="intravenous"),
        validity=dt.timedelta(minutes=10),
    )


def may_be_given(world: dict[str, Any]) -> bool:
    """The invariant, stated from the world (ids and pairs), not from the rule's code."""
    facts = facts_of(world)
    local_in_ten_minutes = (world["now"] + dt.timedelta(minutes=10)).astimezone(
        zoneinfo.ZoneInfo(world["zone"])
    )
    released = world["status"] == "released" or (
        world["status"] == "exceptionally_released"
        and world["exceptional_for"] == SUBJECTS[world["subject_id"]]
    )
    return (
        world["allocated_to"] == world["subject_id"]
        and released
        and facts.expires_on is not None
        and facts.expires_on >= local_in_ten_minutes.date()
        and world["pharmacy"] is not None
        and world["received_at"] == world["pharmacy"]
        and world["thawed"] is not None
        and world["thawed"] <= WINDOW
        and not world["excursions"]
        and not world.get("uncovered")
        and not world["withdrawn"]
    )


@settings(max_examples=600, deadline=None)
@given(world=worlds())
# The wrong patient: trial B's S-1 scans a vial allocated to trial A's S-1.
@example(
    world={
        "zone": "Asia/Shanghai", "now": BASE, "today": dt.date(2026, 12, 2), "subject_id": 2,
        "allocated_to": 1, "status": "released", "exceptional_for": None, "expires_in_days": 1,
        "pharmacy": "PH-A", "received_at": "PH-A", "thawed": 5, "excursions": (),
        "withdrawn": False,
    }
)  # fmt: skip
def test_go_if_and_only_if_the_world_allows_the_dose(world):
    outcome = judge(facts_of(world)).outcome
    assert (outcome is Outcome.GO) == may_be_given(world), judge(facts_of(world)).failed


def test_the_generator_reaches_go_and_no_go():
    # A world that must be GO, and the same world for the other S-1: the test is not vacuous.
    world = {
        "zone": "Asia/Shanghai", "now": BASE, "today": dt.date(2026, 12, 2), "subject_id": 1,
        "allocated_to": 1, "status": "released", "exceptional_for": None, "expires_in_days": 0,
        "pharmacy": "PH-A", "received_at": "PH-A", "thawed": 5, "excursions": (),
        "withdrawn": False,
    }  # fmt: skip
    assert judge(facts_of(world)).outcome is Outcome.GO
    other = dataclasses.replace(facts_of(world), subject_id=2, trial="T-B")
    assert judge(other).outcome is Outcome.NO_GO
