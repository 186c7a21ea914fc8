"""Domain errors: each carries its facts as attributes and reads as a sentence."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class DomainError(Exception):
    """A request the domain refuses; the web layer maps each subclass to one status."""

    status = 409
    title = "Conflict"

    def __init__(self, detail: str, **facts: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.facts = facts
        # What must be kept although the request's transaction is rolled back (the audit
        # of a refused signature, say); the web layer runs it in a transaction of its own.
        self.after_rollback: Callable[[Session], None] | None = None


class NotFoundError(DomainError):
    """An object that does not exist, or that the user may not see."""

    status = 404
    title = "Not found"

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"No {kind} {key!s} was found.", kind=kind, key=str(key))


class AlreadyExistsError(DomainError):
    """A unique identifier already taken."""

    status = 409
    title = "Already exists"

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"A {kind} {key!s} already exists.", kind=kind, key=str(key))


class InvalidValueError(DomainError):
    """A value the domain rules refuse, with the field it belongs to."""

    status = 422
    title = "Invalid value"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class AuthenticationError(DomainError):
    """Wrong username or password, an unknown, expired or revoked token."""

    status = 401
    title = "Not authenticated"


class TooManyAttemptsError(DomainError):
    """The account (or, at rates no hospital reaches, the address) must wait before trying."""

    status = 429
    title = "Too many failed attempts"

    def __init__(self, retry_after_seconds: int, *, by_address: bool = False) -> None:
        super().__init__(
            "Too many failed sign-ins from this network address. Wait before trying again."
            if by_address
            else "Too many failed attempts for this account. Wait before trying again.",
            retry_after_seconds=retry_after_seconds,
        )
        self.retry_after_seconds = retry_after_seconds


class AccountLockedError(DomainError):
    """So many consecutive failures that only an administrator's password reset unlocks."""

    status = 423
    title = "Account locked"

    def __init__(self, failures: int) -> None:
        super().__init__(
            f"This account is locked after {failures} consecutive failed attempts. "
            "An administrator must reset its password."
        )


class PasswordChangeRequiredError(DomainError):
    """An administrator reset the password: nothing but choosing a new one is allowed."""

    status = 403
    title = "Password change required"

    def __init__(self) -> None:
        super().__init__(
            "Your password was reset by an administrator. Choose a new password first."
        )


class ForbiddenError(DomainError):
    """The user's role does not allow this action."""

    status = 403
    title = "Forbidden"

    def __init__(self, role: str, permission: str) -> None:
        super().__init__(
            f"The {role} role may not do this ({permission}).", role=role, permission=permission
        )
