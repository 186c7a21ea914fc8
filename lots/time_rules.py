"""The time rules every capability shares: how far a device clock may be trusted."""

from __future__ import annotations

import datetime as dt
from typing import Final

# Device clocks drift (a scanner, a logger, a ward tablet, a lab instrument): a time stated
# up to this far ahead of the server, or this far before the step it follows, is accepted.
CLOCK_SKEW_TOLERANCE: Final = dt.timedelta(minutes=5)


def is_in_the_future(
    moment: dt.datetime, now: dt.datetime, *, tolerance: dt.timedelta = CLOCK_SKEW_TOLERANCE
) -> bool:
    """Whether a stated time lies beyond now, more than the clocks may drift apart."""
    return moment > now + tolerance


def is_before(
    moment: dt.datetime,
    earlier: dt.datetime,
    *,
    tolerance: dt.timedelta = CLOCK_SKEW_TOLERANCE,
) -> bool:
    """Whether a stated time lies before the step it must follow, beyond the drift allowed."""
    return moment < earlier - tolerance


def tolerance_minutes(tolerance: dt.timedelta = CLOCK_SKEW_TOLERANCE) -> int:
    """The tolerance in whole minutes, as a sentence states it."""
    return int(tolerance.total_seconds() // 60)
