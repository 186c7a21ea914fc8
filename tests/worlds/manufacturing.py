"""Manufacturing worlds: banks, lots and their QC and QA decisions, made through the services."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

from sqlalchemy.orm import Session

from app import demo
from custody.ledger import CustodyEvent, chain_events
from custody.manufacturing import (
    close_investigation,
    create_lot,
    decide,
    get_lot,
    lot_investigations,
    recall,
    record_result,
    record_step,
)
from lots.accounts import get_site, get_user, password_hasher
from lots.banks import create_bank
from lots.base import utcnow
from lots.batch import Lot


def own_bank(session: Session, prefix: str) -> str:
    """A new iPSC line with its master and working banks, for tests that commit lots: their
    lots stay out of the demo banks' genealogy (and so out of other tests' recalls and
    traces) once committed, since the ledger cannot be cleaned up. The working bank's code."""
    tag = uuid.uuid4().hex[:6].upper()
    site = get_site(session, "XSM-SZ")
    for code, kind, parent, passage in (
        (f"{prefix}-L-{tag}", "cell_line", None, 10),
        (f"{prefix}-M-{tag}", "master", f"{prefix}-L-{tag}", 15),
        (f"{prefix}-W-{tag}", "working", f"{prefix}-M-{tag}", 20),
    ):
        create_bank(
            session, actor="tests", code=code, kind=kind, site=site, parent_code=parent,
            passage=passage,
        )  # fmt: skip
    return f"{prefix}-W-{tag}"


HASHER = password_hasher("cheapest")


TEST_PASSWORD = "correct-horse-battery"  # for the users a test creates


def password(username: str) -> str:
    """A demo user's password, or the one every test-made user has."""
    return next((u.password for u in demo.USERS if u.username == username), TEST_PASSWORD)


def made_lot(
    session,
    number: str,
    *,
    vials: int = 3,
    product: str = "XS228",
    bank: str = "XS-WCB-01",
    maker: str = "manufacturing",
    **extra,
) -> Lot:
    """A lot made three days ago by the demo manufacturing user."""
    end = utcnow().replace(microsecond=0) - dt.timedelta(days=3)
    return create_lot(
        session,
        get_user(session, maker),
        number=number,
        product_code=product,
        bank_code=bank,
        manufacture_start=end - dt.timedelta(days=28),
        manufacture_end=end,
        vials_filled=vials,
        cells_per_vial=10_000_000,
        volume_ml=Decimal("1.0"),
        qc_site=get_site(session, "XSM-QC"),
        **extra,
    )


def step(session, number: str, name: str, *, by: str = "manufacturing", **details):
    """A process step signed with the signer's own password."""
    return record_step(
        session,
        HASHER,
        get_user(session, by),
        number,
        step=name,
        occurred_at=utcnow() - dt.timedelta(hours=1),
        password=password(by),
        details=details,
    )


def lot_in_quarantine(session, number: str, **kwargs) -> Lot:
    """A lot whose batch record is complete."""
    lot = made_lot(session, number, **kwargs)
    step(session, number, "batch_record_completed")
    return lot


def enter_results(session, number: str, *, by: str = "qc", **changed: str) -> None:
    """The demo's conforming XS228 results, with some values changed (by test name)."""
    for test, value, unit in demo.XS228_RESULTS:
        record_result(
            session,
            get_user(session, by),
            number,
            test=test,
            value=changed.get(test, value),
            unit=unit,
            method=None,
            tested_at=utcnow() - dt.timedelta(hours=2),
        )


def payload(event: CustodyEvent) -> dict:
    """The hashed payload of an event, read back from its canonical body."""
    return json.loads(event.body)["payload"]


def event_types(session, chain: str) -> list[str]:
    """The types of a chain's events in order."""
    return [event.event_type for event in chain_events(session, chain)]


RELEASE = "Released for clinical use"


def qa_decides(session, number, decision="release", *, by="qa", **kwargs):
    """A signed decision by a QA user with the right password."""
    kwargs.setdefault("meaning", RELEASE if "release" in decision else "Rejected")
    return decide(
        session,
        HASHER,
        get_user(session, by),
        number,
        decision=decision,
        password=kwargs.pop("password", password(by)),
        **kwargs,
    )


def qa_recalls(session, scope, code, *, reason="Bank found contaminated"):
    """A signed recall by the demo QA user."""
    return recall(
        session,
        HASHER,
        get_user(session, "qa"),
        scope=scope,
        code=code,
        reason=reason,
        password=password("qa"),
    )


def ready_lot(session, number, **changed):
    """A lot in quarantine with every result entered by the demo QC analyst."""
    lot = lot_in_quarantine(session, number)
    enter_results(session, number, **changed)
    return lot


def oos_confirmed(session, number: str, *, by: str = "qa") -> None:
    """QA confirms every open OOS investigation of the lot (phase I found no laboratory
    cause): the OOS stands, as an exceptional release requires."""
    lot = get_lot(session, number)
    for investigation in lot_investigations(session, lot):
        if investigation.is_open:
            close_investigation(
                session,
                HASHER,
                get_user(session, by),
                number,
                investigation.number,
                outcome="confirmed",
                reason="No laboratory error: the result stands.",
                password=password(by),
                now=utcnow(),
            )
