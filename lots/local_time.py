"""Local calendars: a site's IANA time zone decides which day it is there.

A date-only limit (a vial's expiry, a visit day) is judged in the local calendar of the site
where the check happens: EXP 2026-12-02 is usable through 23:59:59 on 12-02 in Guangzhou,
which is 15:59:59 UTC, not through the end of the UTC day.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo


@functools.lru_cache(maxsize=256)
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone of an IANA name; ValueError for a name that is none."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"{name!r} is not an IANA time zone") from error


def is_time_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone this machine knows (not a bare offset or path)."""
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        zone(name)
    except ValueError:
        return False
    return True


def local_date(moment: dt.datetime, time_zone: str) -> dt.date:
    """The calendar date at `moment` in the zone."""
    return moment.astimezone(zone(time_zone)).date()


def local_time(moment: dt.datetime, time_zone: str) -> dt.datetime:
    """`moment` as wall-clock time in the zone."""
    return moment.astimezone(zone(time_zone))


def end_of_local_day(day: dt.date, time_zone: str) -> dt.datetime:
    """The last instant (UTC) of `day` at the site: a date-only limit holds until then."""
    start_next = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone(time_zone))
    return (start_next - dt.timedelta(microseconds=1)).astimezone(dt.UTC)
