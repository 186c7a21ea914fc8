"""The audit trail of master data and users: who changed what, with old and new values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from lots.models import AuditEntry
from lots.rules import plain_decimal


def record_change(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_key: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
) -> AuditEntry:
    """Append one audit entry in the caller's transaction."""
    entry = AuditEntry(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_key=entity_key,
        old=_jsonable(old),
        new=_jsonable(new),
    )
    session.add(entry)
    return entry


def _jsonable(value: Any) -> Any:
    # Decimals keep their exact digits as strings; JSON floats would round 0.1 away.
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
