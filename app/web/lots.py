"""Lot pages: the list, a lot against its specification, QC results entry and QA's decision."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Response, redirect, render_template, request, url_for
from marshmallow import (
    ValidationError,
    fields,
    validate,
    validates_schema,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.auth import hasher
from app.db import get_session
from app.web import bp, signed_in
from app.web.forms import PageForm, messages
from app.writes import undo, write
from custody.ledger import chain_events
from custody.manufacturing import (
    PRINTABLE,
    Decision,
    ReleaseRefusedError,
    close_deviation,
    decide,
    deviation_label,
    get_lot,
    list_lots,
    lot_decisions,
    lot_deviations,
    lot_investigations,
    lot_print_jobs,
    lot_results,
    reconcile,
    record_result,
    render_coa,
)
from custody.trials import get_visible_lot, visible_lot_site_ids
from lots.access import Permission, can, can_see, sees_all_sites
from lots.base import utcnow
from lots.batch import Lot, LotStatus, QcResult, Vial
from lots.errors import DomainError
from lots.local_time import local_date
from lots.models import SpecificationLine, User
from lots.products import list_products
from lots.qc_rules import Conformance
from lots.rules import describe_line

RELEASE_MEANING = "Released for clinical use"
REJECT_MEANING = "Rejected: not for clinical use"
OPEN_STATUSES = (LotStatus.IN_PROCESS, LotStatus.QUARANTINE)


class ResultForm(PageForm):
    """A QC result, or (with `supersedes` and `reason`) the correction of one."""

    test = fields.String(validate=validate.Length(1, 120))
    value = fields.String(required=True, validate=validate.Length(1, 200))
    unit = fields.String(load_default=None, validate=validate.Length(1, 32))
    method = fields.String(load_default=None, validate=validate.Length(1, 200))
    tested_at = fields.AwareDateTime(required=True, default_timezone=dt.UTC)
    supersedes = fields.Integer(load_default=None, strict=False)
    reason = fields.String(load_default=None, validate=validate.Length(1, 2000))

    @validates_schema
    def _names_what_it_records(self, data: Mapping[str, Any], **_kwargs: Any) -> None:
        if data.get("supersedes") is None and not data.get("test"):
            raise ValidationError("Choose the test.", "test")
        if data.get("supersedes") is not None and not data.get("reason"):
            raise ValidationError("A correction states why it supersedes the result.", "reason")


class DecisionForm(PageForm):
    """QA's release or rejection, signed by re-entering the password."""

    decision = fields.String(
        required=True, validate=validate.OneOf([Decision.RELEASE, Decision.REJECT])
    )
    meaning = fields.String(required=True, validate=validate.Length(1, 200))
    reason = fields.String(load_default=None, validate=validate.Length(1, 2000))
    password = fields.String(required=True, validate=validate.Length(1, 256))

    @validates_schema
    def _meaning_fits(self, data: Mapping[str, Any], **_kwargs: Any) -> None:
        # A signature means what its words say: a rejection never carries the release text.
        if data.get("decision") == Decision.REJECT and data.get("meaning") == RELEASE_MEANING:
            raise ValidationError("State what your signature of a rejection means.", "meaning")


class ClosureForm(PageForm):
    """QA closes a deviation with a note and a signature."""

    note = fields.String(required=True, validate=validate.Length(1, 2000))
    password = fields.String(required=True, validate=validate.Length(1, 256))


@dataclass
class PageState:
    """What a re-rendered lot page shows of a refused form: which one, its values, why."""

    form: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)


@dataclass
class SpecRow:
    """One specification line with its result in force and the results it replaced."""

    line: SpecificationLine
    criterion: str
    current: QcResult | None
    superseded: list[tuple[QcResult, QcResult]]

    @property
    def oos(self) -> bool:
        """Whether the result in force is out of specification."""
        return (
            self.current is not None
            and self.current.conformance == Conformance.OUT_OF_SPECIFICATION
        )


@bp.get("/lots")
@signed_in(Permission.LOTS_READ)
def lots(user: User) -> str:
    """Lots the user's site touches (every lot for oversight roles), filtered by status."""
    db = get_session()
    status = request.args.get("status") or None
    product = request.args.get("product") or None
    products = list_products(db)
    if status not in set(LotStatus):
        status = None
    if product not in {p.code for p in products}:
        product = None
    found = [
        lot
        for lot in list_lots(db, status=status, product_code=product)
        if sees_all_sites(user) or can_see(user, visible_lot_site_ids(db, user, lot))
    ]
    return render_template(
        "lots.html",
        user=user,
        lots=found,
        statuses=list(LotStatus),
        status=status,
        product=product,
        products=products,
        today=local_date(utcnow(), user.site.time_zone),
    )


@bp.get("/lots/<number>")
@signed_in(Permission.LOTS_READ)
def lot(user: User, number: str) -> str:
    """One lot: its results against the specification, deviations, decisions and ledger.
    `?reprint=<serial>` opens the label form with that vial chosen (a scan's reprint)."""
    state = PageState()
    if serial := request.args.get("reprint"):
        state = PageState(form="labels", values={"vials": "listed", "serials": serial[:40]})
    return render_lot(user, visible_lot(get_session(), user, number), state)


@bp.get("/lots/<number>/coa.pdf")
@signed_in(Permission.LOTS_READ)
def lot_coa(user: User, number: str) -> Response:
    """The lot's Certificate of Analysis (marked NOT RELEASED until QA releases the lot)."""
    db = get_session()
    found = visible_lot(db, user, number)
    return Response(
        render_coa(db, found, now=clock.now()),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="CoA-{found.number}.pdf"'},
    )


@bp.post("/lots/<number>/qc-results")
@signed_in(Permission.QC_RESULTS_WRITE)
@write
def lot_result(user: User, number: str) -> Any:
    """Record a QC result or a correction; back to the lot page, or the page with the error."""
    db = get_session()
    found = visible_lot(db, user, number)
    posted = request.form.to_dict()
    kind = "correction" if posted.get("supersedes") else "result"
    try:
        form = ResultForm().load(posted)
        test = form.get("test") or _superseded_test(db, found, form["supersedes"])
        record_result(
            db,
            user,
            found.number,
            test=test,
            value=form["value"],
            unit=form["unit"],
            method=form["method"],
            tested_at=form["tested_at"],
            supersedes=form["supersedes"],
            reason=form["reason"],
        )
    except ValidationError as error:
        return render_lot(user, found, PageState(kind, posted, messages(error))), 422
    except DomainError as error:
        return refused(user, found, error, PageState(kind, posted, [error.detail]))
    return redirect(url_for("web.lot", number=found.number, _anchor="specification"), 303)


@bp.post("/lots/<number>/release")
@signed_in(Permission.LOTS_RELEASE)
@write
def lot_release(user: User, number: str) -> Any:
    """QA's signed release or rejection; every reason against a release is listed."""
    db = get_session()
    found = visible_lot(db, user, number)
    posted = {k: v for k, v in request.form.to_dict().items() if k != "password"}
    try:
        form = DecisionForm().load(request.form.to_dict())
        decide(
            db,
            hasher(),
            user,
            found.number,
            decision=form["decision"],
            password=form["password"],
            meaning=form["meaning"],
            reason=form["reason"],
            remote_addr=request.remote_addr or "unknown",
        )
    except ValidationError as error:
        return render_lot(user, found, PageState("decision", posted, messages(error))), 422
    except ReleaseRefusedError as error:
        state = PageState("decision", posted, [error.title], blockers=error.blockers)
        return refused(user, found, error, state)
    except DomainError as error:
        state = PageState("decision", posted, [f"{error.title}: {error.detail}"])
        return refused(user, found, error, state)
    return redirect(url_for("web.lot", number=found.number), 303)


@bp.post("/lots/<number>/deviations/<int:deviation>/close")
@signed_in(Permission.DEVIATIONS_CLOSE)
@write
def deviation_close(user: User, number: str, deviation: int) -> Any:
    """QA closes a deviation with a signature."""
    db = get_session()
    found = visible_lot(db, user, number)
    posted = {"note": request.form.get("note", ""), "deviation": str(deviation)}
    try:
        form = ClosureForm().load(request.form.to_dict())
        close_deviation(
            db,
            hasher(),
            user,
            found.number,
            deviation,
            note=form["note"],
            password=form["password"],
            remote_addr=request.remote_addr or "unknown",
        )
    except ValidationError as error:
        return render_lot(user, found, PageState("closure", posted, messages(error))), 422
    except DomainError as error:
        state = PageState("closure", posted, [f"{error.title}: {error.detail}"])
        return refused(user, found, error, state)
    return redirect(url_for("web.lot", number=found.number, _anchor="deviations"), 303)


def render_lot(user: User, found: Lot, state: PageState) -> str:
    db = get_session()
    rows = _spec_rows(found, lot_results(db, found))
    events = chain_events(db, found.chain)
    actor_ids = {event.actor_user_id for event in events if event.actor_user_id}
    actors = {u.id: u.full_name for u in db.scalars(select(User).where(User.id.in_(actor_ids)))}
    return render_template(
        "lot.html",
        user=user,
        lot=found,
        rows=rows,
        deviations=lot_deviations(db, found),
        investigations=lot_investigations(db, found),
        can_investigate=can(user, Permission.OOS_INVESTIGATE),
        can_decide_oos=can(user, Permission.OOS_DECIDE),
        deviation_label=deviation_label,
        decisions=lot_decisions(db, found),
        events=events,
        actors=actors,
        state=state,
        open_lot=found.status in OPEN_STATUSES,
        can_enter=can(user, Permission.QC_RESULTS_WRITE),
        can_decide=can(user, Permission.LOTS_RELEASE),
        can_close=can(user, Permission.DEVIATIONS_CLOSE),
        entry=_entry_values(rows, state),
        correction=_correction_values(rows, state),
        today=local_date(utcnow(), user.site.time_zone),
        release_meaning=RELEASE_MEANING,
        reject_meaning=REJECT_MEANING,
        labels=reconcile(db, found),
        print_jobs=lot_print_jobs(db, found),
        can_print=can(user, Permission.LABELS_PRINT),
        printable=found.status in PRINTABLE,
        label_preview=label_preview(user, found, _first_serial(db, found)),
    )


def _first_serial(db: Session, found: Lot) -> str | None:
    return db.scalar(
        select(Vial.serial).where(Vial.lot_id == found.id).order_by(Vial.position).limit(1)
    )


def label_preview(user: User, lot: Lot, serial: str | None) -> str | None:
    """The URL of a vial's label preview (a PNG marked PREVIEW), for those who print labels
    of a lot that prints."""
    if serial is None or not can(user, Permission.LABELS_PRINT) or lot.status not in PRINTABLE:
        return None
    query = urlencode({"format": "png", "serial": serial, "preview": 1})
    return f"/api/v1/lots/{lot.number}/labels?{query}"


def _spec_rows(found: Lot, results: Sequence[QcResult]) -> list[SpecRow]:
    replaced_by = {result.supersedes_id: result for result in results if result.supersedes_id}
    rows = []
    for line in found.product_version.specification:
        mine = [result for result in results if result.line_id == line.id]
        current = next((result for result in mine if result.id not in replaced_by), None)
        superseded = [
            (result, replaced_by[result.id]) for result in mine if result.id in replaced_by
        ]
        rows.append(SpecRow(line, describe_line(line), current, superseded))
    return rows


def _entry_values(rows: Sequence[SpecRow], state: PageState) -> dict[str, str]:
    if state.form == "result":
        return dict(state.values)
    missing = [row for row in rows if row.current is None]
    chosen = next((r for r in missing if r.line.test == request.args.get("test")), None)
    return _prefilled((chosen or (missing[0] if missing else None)), test=True)


def _correction_values(rows: Sequence[SpecRow], state: PageState) -> dict[str, str]:
    if state.form == "correction":
        return dict(state.values)
    done = [row for row in rows if row.current is not None]
    wanted = request.args.get("correct", type=int)
    chosen = next((r for r in done if r.current and r.current.id == wanted), None)
    chosen = chosen or next((r for r in done if r.oos), done[0] if done else None)
    values = _prefilled(chosen, test=False)
    if chosen is not None and chosen.current is not None:
        values["supersedes"] = str(chosen.current.id)
    return values


def _prefilled(row: SpecRow | None, *, test: bool) -> dict[str, str]:
    values = {"tested_at": utcnow().strftime("%Y-%m-%dT%H:%M")}
    if row is not None:
        values |= {"unit": row.line.unit or "", "method": row.line.method}
        if test:
            values["test"] = row.line.test
    return values


def visible_lot(db: Session, user: User, number: str) -> Lot:
    """The lot the page shows, as the API reads it (404 for a lot the user may not see)."""
    return get_visible_lot(db, user, number)


def _superseded_test(db: Session, found: Lot, result_id: int) -> str:
    result = next((r for r in lot_results(db, found) if r.id == result_id), None)
    if result is None:
        raise ValidationError(f"Result #{result_id} is not a result of this lot.", "supersedes")
    return result.line.test


def refused(user: User, found: Lot, error: DomainError, state: PageState) -> tuple[str, int]:
    # The page shows the refusal rather than raising it (a failed signature is kept).
    undo(error)
    db = get_session()
    return render_lot(user, get_lot(db, found.number), state), error.status
