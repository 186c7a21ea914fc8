"""Test world builders."""

from __future__ import annotations

MISSING_CHROMIUM = (
    "Chromium not found at /usr/bin/chromium; install Debian's chromium to run the browser tests"
)


# Chromium runs as root in CI containers, without a GPU, a sandbox or a large /dev/shm.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def demo_password(username: str) -> str:
    """The public password of a demo user."""
    return f"{username}-demo-2026"
