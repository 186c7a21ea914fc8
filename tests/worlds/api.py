"""Test world builders."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from app import demo
from custody.ledger import CustodyEvent
from lots.base import utcnow
from lots.batch import Lot, QcResult, ReleaseDecision, Vial
from lots.models import LoginAttempt

PASSWORDS = {user.username: user.password for user in demo.USERS}


COUNTED = {
    "lots": Lot,
    "vials": Vial,
    "qc_results": QcResult,
    "release_decisions": ReleaseDecision,
    "custody_events": CustodyEvent,
}


def scalar(app, statement):
    """One answer from the test's database, in a session of its own.

    Not the `session` fixture: it keeps an app context pushed, and requests made meanwhile
    would share its `g` (the signed-in user, the request session).
    """
    with app.extensions["celltrail.db"].sessions() as session:
        return session.scalar(statement)


def row_counts(app) -> dict[str, int]:
    """Rows of the tables a refused request must leave alone."""
    return {
        name: scalar(app, select(func.count()).select_from(model))
        for name, model in COUNTED.items()
    }


def refused_signatures(app, username: str) -> int:
    return scalar(
        app,
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.username == username,
            LoginAttempt.channel == "signature",
            LoginAttempt.succeeded.is_(False),
        ),
    )


def make_lot(client, auth_headers, number="XS228-T1", *, vials=3, ended_days_ago=2, **extra):
    """A lot made by the demo manufacturing user, tested at XSM-QC."""
    end = utcnow() - dt.timedelta(days=ended_days_ago)
    body = {
        "number": number,
        "product": "XS228",
        "bank": "XS-WCB-01",
        "manufacture_start": (end - dt.timedelta(days=28)).isoformat(),
        "manufacture_end": end.isoformat(),
        "vials_filled": vials,
        "cells_per_vial": 10_000_000,
        "volume_ml": "1.0",
        "qc_site": "XSM-QC",
        **extra,
    }
    response = client.post("/api/v1/lots", json=body, headers=auth_headers("manufacturing"))
    assert response.status_code == 201, response.json
    return response.json


def sign_step(client, auth_headers, number, step, username="manufacturing", **extra):
    body = {
        "step": step,
        "occurred_at": (utcnow() - dt.timedelta(hours=1)).isoformat(),
        "password": PASSWORDS[username],
        "meaning": "Performed by",
        **extra,
    }
    return client.post(f"/api/v1/lots/{number}/steps", json=body, headers=auth_headers(username))


def quarantined_lot(client, auth_headers, number="XS228-T1", **extra):
    """A lot whose batch record is complete: in quarantine, waiting for QC and QA."""
    lot = make_lot(client, auth_headers, number, **extra)
    response = sign_step(client, auth_headers, number, "batch_record_completed")
    assert response.status_code == 201, response.json
    return lot


def release(client, auth_headers, number, username="qa", **body):
    body = {
        "decision": "release",
        "password": PASSWORDS[username],
        "meaning": "Released for clinical use (QA)",
        **body,
    }
    return client.post(f"/api/v1/lots/{number}/release", json=body, headers=auth_headers(username))


def recall(client, auth_headers, scope, code, username="qa", **extra):
    body = {
        "scope": scope,
        "code": code,
        "reason": "Donor found ineligible after release.",
        "password": PASSWORDS[username],
        "meaning": "Recall ordered (QA)",
        **extra,
    }
    return client.post("/api/v1/recalls", json=body, headers=auth_headers(username))
