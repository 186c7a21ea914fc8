"""The app's one clock: the time every view hands to the commands it calls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import current_app

from lots.base import utcnow


def now() -> dt.datetime:
    """The current time in UTC, or the configured CLOCK's (a test's clock) when one is set."""
    clock: Callable[[], dt.datetime] | None = current_app.config.get("CLOCK")
    return clock() if clock is not None else utcnow()
