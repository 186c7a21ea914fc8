"""Electronic signatures (21 CFR 11.50, 11.70, 11.200): password re-entry and manifestation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from lots.accounts import authenticate
from lots.base import utcnow
from lots.errors import AuthenticationError, DomainError
from lots.models import User


class SignatureRefusedError(DomainError):
    """The password re-entered at signing was wrong: nothing was signed."""

    status = 403
    title = "Signature refused"

    def __init__(self, username: str) -> None:
        super().__init__(
            "The password re-entered for the signature is wrong; nothing was signed.",
            username=username,
        )


def sign(
    session: Session,
    hasher: PasswordHasher,
    signer: User,
    *,
    password: str,
    meaning: str,
    remote_addr: str = "unknown",
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Check the re-entered password and return the manifestation to embed in the event.

    The attempt is recorded like a login, so a guessed signature password is rate-limited
    too; a refusal carries `after_rollback`, which records the failed attempt after the
    request's own work is rolled back.
    """
    try:
        authenticate(
            session,
            hasher,
            username=signer.username,
            password=password,
            remote_addr=remote_addr,
            channel="signature",
        )
    except AuthenticationError as error:
        refused = SignatureRefusedError(signer.username)
        refused.after_rollback = error.after_rollback  # the failed attempt outlives the rollback
        raise refused from error
    signed_at = (now or utcnow()).astimezone(dt.UTC)
    return {
        "user": signer.username,
        "name": signer.full_name,
        "role": signer.role,
        "meaning": meaning,
        "signed_at": signed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
