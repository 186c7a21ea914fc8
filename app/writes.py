"""The transaction around every write, and Idempotency-Key replays.

A write view runs inside one transaction that commits only if the response is a success.
With an `Idempotency-Key`, the key's row is inserted first: a concurrent duplicate blocks on
it (row lock on PostgreSQL, write lock on SQLite), then finds the first answer and replays it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, g, make_response, request
from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.auth import require_user
from app.db import get_session
from lots.base import Base, utcnow
from lots.errors import DomainError

MAX_KEY_LENGTH = 255
REPLAYED_HEADERS = ("Location", "Content-Type", "ETag")


class IdempotencyRecord(Base):
    """The first answer to a write sent with an Idempotency-Key, per user."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    location: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class IdempotencyKeyReusedError(DomainError):
    """The same key sent with a different request."""

    status = 422
    title = "Idempotency key reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"The Idempotency-Key {key!r} was already used for a different request.", key=key
        )


class InvalidIdempotencyKeyError(DomainError):
    """A key that is empty or too long."""

    status = 400
    title = "Invalid Idempotency-Key"

    def __init__(self) -> None:
        super().__init__(f"An Idempotency-Key has 1 to {MAX_KEY_LENGTH} printable characters.")


def write(view: Callable[..., Any]) -> Callable[..., Response]:
    """Run a write view in one transaction, committed only on success, replayable by key."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        session = get_session()
        key = request.headers.get("Idempotency-Key")
        try:
            record = None
            if key is not None:
                record, replay = _claim(session, key)
                if replay is not None:
                    return replay
            response = make_response(view(*args, **kwargs))
            if response.status_code >= 400:
                session.rollback()
                return response
            if record is not None:
                _remember(record, response)
            session.commit()
            return response
        except BaseException as error:
            session.rollback()
            keep = getattr(error, "after_rollback", None)
            if keep is not None:
                keep(session)
                session.commit()
            raise

    return wrapper


def _claim(session: Session, key: str) -> tuple[IdempotencyRecord | None, Response | None]:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidIdempotencyKeyError()
    user = require_user()
    fingerprint = _fingerprint()
    existing = _find(session, user.id, key)
    if existing is None:
        record = IdempotencyRecord(user_id=user.id, key=key, fingerprint=fingerprint)
        try:
            with session.begin_nested():
                session.add(record)
                session.flush()
            g.idempotency_replayed = False
            return record, None
        except IntegrityError:
            # A concurrent duplicate committed first; its answer is now visible.
            session.rollback()
            user = require_user()
            existing = _find(session, user.id, key)
            if existing is None:
                raise
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReusedError(key)
    session.rollback()
    return None, _replay(existing)


def _find(session: Session, user_id: int, key: str) -> IdempotencyRecord | None:
    return session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
        )
    )


def _remember(record: IdempotencyRecord, response: Response) -> None:
    record.status_code = response.status_code
    record.content_type = response.content_type
    record.location = response.headers.get("Location")
    record.body = response.get_data()


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(record.body, status=record.status_code, content_type=record.content_type)
    if record.location:
        response.headers["Location"] = record.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _fingerprint() -> str:
    payload = request.method.encode() + b" " + request.path.encode() + b"\n" + request.get_data()
    return hashlib.sha256(payload).hexdigest()


def undo(error: DomainError) -> None:
    """For a page that shows a refusal instead of raising it: roll the request's work back as
    `write` would, and keep what the refusal records (a failed signature or password)."""
    session = get_session()
    session.rollback()
    if error.after_rollback is not None:
        error.after_rollback(session)
        session.commit()
