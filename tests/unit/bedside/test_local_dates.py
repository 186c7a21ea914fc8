"""The bedside judges expiry and visit days in the calendar of the site where it checks."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from custody.bedside import BedsideFacts, judge
from lots.local_time import local_date

ZONES = st.sampled_from(["Asia/Shanghai", "UTC", "America/Los_Angeles", "Asia/Kolkata"])
# Around midnight either side, in every zone: the hours where UTC and local dates differ.
INSTANTS = st.datetimes(  # hypothesis takes naive bounds and attaches the zone
    min_value=dt.datetime(2026, 11, 28),  # noqa: DTZ001
    max_value=dt.datetime(2026, 12, 6),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)
DAYS = st.dates(min_value=dt.date(2026, 11, 26), max_value=dt.date(2026, 12, 8))


def _checks(facts: BedsideFacts) -> dict[str, bool]:
    return {check.name: check.passed for check in judge(facts).checks}


def _facts(now: dt.datetime, zone: str, **facts) -> BedsideFacts:
    return BedsideFacts(
        now=now,
        time_zone=zone,
        lot="XS228-2611-01",
        visit=1,
        subject="SCI-001",
        wristband_authenticated=True,
        **facts,
    )


def test_a_vial_labelled_exp_2026_12_02_is_expired_at_07_50_on_12_03_in_guangzhou():
    now = dt.datetime(2026, 12, 2, 23, 50, tzinfo=dt.UTC)  # 07:50 on 12-03 in Guangzhou
    facts = _facts(now, "Asia/Shanghai", expires_on=dt.date(2026, 12, 2), validity=dt.timedelta())
    assert _checks(facts)["expiry"] is False


def test_the_same_moment_is_in_date_at_a_site_in_utc():
    now = dt.datetime(2026, 12, 2, 23, 50, tzinfo=dt.UTC)
    facts = _facts(now, "UTC", expires_on=dt.date(2026, 12, 2), validity=dt.timedelta())
    assert _checks(facts)["expiry"] is True


@given(INSTANTS, ZONES, DAYS)
def test_expiry_passes_exactly_while_the_site_s_date_is_not_after_it(now, zone, expires_on):
    facts = _facts(now, zone, expires_on=expires_on, validity=dt.timedelta())
    assert _checks(facts)["expiry"] is (local_date(now, zone) <= expires_on)


@given(INSTANTS, ZONES, DAYS, st.integers(0, 3), st.integers(0, 3))
def test_a_visit_is_due_exactly_on_the_site_s_days_of_its_window(now, zone, due, before, after):
    window = (due - dt.timedelta(days=before), due + dt.timedelta(days=after))
    facts = _facts(now, zone, visit_window=window)
    assert _checks(facts)["visit_window"] is (window[0] <= local_date(now, zone) <= window[1])
