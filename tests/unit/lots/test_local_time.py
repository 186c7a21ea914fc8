"""Local calendars: which day it is at a site decides date-only limits."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lots.local_time import end_of_local_day, is_time_zone, local_date

ZONES = st.sampled_from(["Asia/Shanghai", "UTC", "America/Los_Angeles", "Pacific/Kiritimati"])
INSTANTS = st.datetimes(  # hypothesis takes naive bounds and attaches the zone
    min_value=dt.datetime(2020, 1, 1),  # noqa: DTZ001
    max_value=dt.datetime(2035, 1, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)


def test_guangzhou_is_already_on_the_next_day_at_17_00_utc():
    assert local_date(dt.datetime(2026, 12, 2, 17, 0, tzinfo=dt.UTC), "Asia/Shanghai") == dt.date(
        2026, 12, 3
    )


def test_a_date_in_guangzhou_ends_at_15_59_59_utc():
    assert end_of_local_day(dt.date(2026, 12, 2), "Asia/Shanghai") == dt.datetime(
        2026, 12, 2, 15, 59, 59, 999999, tzinfo=dt.UTC
    )


@pytest.mark.parametrize("name", ["Asia/Shanghai", "UTC", "Europe/Berlin"])
def test_iana_names_are_time_zones(name):
    assert is_time_zone(name)


@pytest.mark.parametrize("name", ["", "+08:00", "CST-8-China", "Asia/Nowhere", "../etc/passwd"])
def test_offsets_and_unknown_names_are_not_time_zones(name):
    assert not is_time_zone(name)


@given(INSTANTS, ZONES)
def test_a_moment_is_on_its_local_date_until_the_end_of_that_day(moment, zone):
    day = local_date(moment, zone)
    assert moment <= end_of_local_day(day, zone)
    assert moment > end_of_local_day(day - dt.timedelta(days=1), zone)
    assert day == moment.astimezone(zoneinfo.ZoneInfo(zone)).date()
