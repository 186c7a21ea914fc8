"""GET /healthz: the service and its database answer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.db import get_session
from app.errors import problem

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """200 when the database answers a query, 503 otherwise."""
    try:
        get_session().execute(text("SELECT 1"))
    except SQLAlchemyError:
        return problem(503, "Service Unavailable", "The database does not answer.")
    return {"status": "ok", "database": "ok"}
