"""What a new password must be (NIST SP 800-63B §5.1.1.2, memorized secrets).

Long enough, not too long to hash, not a breached or common password (the list ships in
lots/data/, so the check runs offline), not the username, not a run of one character or of
consecutive keys. No composition rules and no forced periodic change: NIST advises against
both. Pure: no database, no Flask.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

MIN_LENGTH = 12
MAX_LENGTH = 128  # NIST: allow at least 64; argon2 takes any length, a cap bounds the work
_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm")
_PADDING = re.compile(r"[\W\d_]*")  # digits and symbols, as padded around a word


@functools.cache
def common_passwords() -> frozenset[str]:
    """The breached and common passwords, lower-cased."""
    text = resources.files("lots").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def password_problem(password: str, *, username: str = "") -> str | None:
    """Why `password` cannot be a new password, in one sentence, or None when it can."""
    if len(password) < MIN_LENGTH:
        return f"A password needs at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"A password has at most {MAX_LENGTH} characters."
    folded = password.casefold()
    if any(candidate in common_passwords() for candidate in _undecorated(folded)):
        return "This password is in a list of breached or common passwords; choose another."
    if len(set(folded)) <= 2 or _is_a_run(folded):
        return "A password must not be one repeated character or a run of consecutive keys."
    name = username.casefold()
    if name and name in folded and _PADDING.fullmatch(folded.replace(name, "")):
        return "A password must not be the username."
    return None


def _undecorated(folded: str) -> set[str]:
    """The password with any part of the digits and symbols padded on either end taken off:
    a breached word with "2026!" after it is the same guess ("!qaz2wsx" keeps its "!")."""
    lead, trail = _padding(folded), _padding(folded[::-1])
    return {
        folded[start : len(folded) - end]
        for start in range(lead + 1)
        for end in range(trail + 1)
        if len(folded) - end - start >= 4
    }


def _padding(text: str) -> int:
    """How many digits and symbols `text` starts with."""
    match = _PADDING.match(text)
    return match.end() if match else 0


def _is_a_run(text: str) -> bool:
    for sequence in _SEQUENCES:
        for line in (sequence, sequence[::-1]):
            cycled = line * (len(text) // len(line) + 2)
            if text in cycled:
                return True
    return False
