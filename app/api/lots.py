"""Lots: manufacture, QC results, QA's signed decisions, recalls, the CoA, and their vials."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.api.lot_schemas import (
    DecisionSchema,
    DeviationCloseSchema,
    DeviationCreateSchema,
    DeviationSchema,
    LotCreateSchema,
    LotDetailSchema,
    LotQuerySchema,
    LotSummarySchema,
    PageQuerySchema,
    QcResultCreateSchema,
    QcResultSchema,
    RecallSchema,
    ReleaseSchema,
    StepSchema,
    VialDetailSchema,
    VialSchema,
    decision_fields,
    deviation_fields,
    lot_summary,
    result_fields,
)
from app.api.schemas import EventSchema
from app.auth import hasher, require_user, requires
from app.db import get_session
from app.writes import write
from custody.ledger import CustodyEvent, chain_events
from custody.manufacturing import (
    ExceptionalRequest,
    close_deviation,
    create_lot,
    current_results,
    decide,
    list_lots,
    lot_decisions,
    lot_deviations,
    lot_results,
    lot_vials,
    raise_deviation,
    recall,
    record_result,
    record_step,
    render_coa,
)
from custody.shipping import vial_states
from custody.trials import (
    get_visible_lot,
    get_visible_vial,
    reader_states,
    visible_lot_site_ids,
)
from lots.access import Permission, can_see
from lots.accounts import get_site
from lots.batch import Lot, LotStatus, ReleaseDecision, Vial
from lots.errors import NotFoundError
from lots.models import User
from lots.rules import describe_line

MAX_INTEGER = 2**31 - 1  # a path number beyond an INTEGER column names nothing

blp = Blueprint("lots", __name__, url_prefix="", description="Lots, QC, release, recalls and vials")


@blp.route("/lots")
class Lots(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.arguments(LotQuerySchema, location="query")
    @blp.response(200, LotSummarySchema(many=True))
    def get(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Lots, newest first, by status and product; only those touching your site."""
        session, user = get_session(), require_user()
        lots = list_lots(session, status=query.get("status"), product_code=query.get("product"))
        return [lot_summary(lot) for lot in lots if _can_see_lot(session, user, lot)]

    @requires(Permission.LOTS_MANUFACTURE)
    @write
    @blp.arguments(LotCreateSchema)
    @blp.response(201, LotDetailSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Record a lot and commission its vials, one COMMISSIONED event per vial."""
        session = get_session()
        qc_code = data.pop("qc_site")
        qc_site = get_site(session, qc_code) if qc_code else None
        lot = create_lot(
            session,
            require_user(),
            product_code=data.pop("product"),
            bank_code=data.pop("bank"),
            qc_site=qc_site,
            **data,
        )
        return _detail(session, lot)


@blp.route("/lots/<number>")
class LotByNumber(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.response(200, LotDetailSchema)
    def get(self, number: str) -> dict[str, Any]:
        """One lot: its results against the specification, deviations and signed decisions."""
        return _detail(get_session(), _visible_lot(number))


@blp.route("/lots/<number>/vials")
class LotVials(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, VialSchema(many=True), headers={"X-Total-Count": {"type": "integer"}})
    def get(
        self, query: dict[str, Any], number: str
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The lot's vials in fill order with their derived states; X-Total-Count counts all.

        A reader without the unblinded flag sees a blinded trial's kit vial as
        `in_blinded_kit`: no state, so nothing ties the lot to a subject's dose."""
        session, user = get_session(), require_user()
        vials = lot_vials(session, _visible_lot(number))
        page = vials[query["offset"] : query["offset"] + query["limit"]]
        states = reader_states(session, user, page)
        rows = [
            {"serial": vial.serial, "position": vial.position, "state": states[vial.serial]}
            for vial in page
        ]
        return rows, {"X-Total-Count": str(len(vials))}


@blp.route("/lots/<number>/events")
class LotEvents(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.response(200, EventSchema(many=True))
    def get(self, number: str) -> list[CustodyEvent]:
        """The lot's ledger chain in order."""
        return list(chain_events(get_session(), _visible_lot(number).chain))


@blp.route("/lots/<number>/steps")
class LotSteps(MethodView):
    @requires(Permission.LOTS_MANUFACTURE)
    @write
    @blp.arguments(StepSchema)
    @blp.response(201, EventSchema)
    def post(self, data: dict[str, Any], number: str) -> CustodyEvent:
        """Record an e-signed process step; batch_record_completed moves the lot to quarantine."""
        _visible_lot(number)
        return record_step(
            get_session(), hasher(), require_user(), number, remote_addr=_remote(), **data
        )


@blp.route("/lots/<number>/deviations")
class LotDeviations(MethodView):
    @requires(Permission.DEVIATIONS_RAISE)
    @write
    @blp.arguments(DeviationCreateSchema)
    @blp.response(201, DeviationSchema)
    def post(self, data: dict[str, Any], number: str) -> dict[str, Any]:
        """Raise a deviation; while it is open the lot cannot be released."""
        lot = _visible_lot(number)
        return deviation_fields(lot, raise_deviation(get_session(), require_user(), number, **data))


@blp.route("/lots/<number>/deviations/<int:deviation>/close")
class DeviationClose(MethodView):
    @requires(Permission.DEVIATIONS_CLOSE)
    @write
    @blp.arguments(DeviationCloseSchema)
    @blp.response(200, DeviationSchema)
    def post(self, data: dict[str, Any], number: str, deviation: int) -> dict[str, Any]:
        """QA closes a deviation with a signature."""
        lot = _visible_lot(number)
        if deviation > MAX_INTEGER:
            raise NotFoundError("deviation", f"{deviation} of lot {number}")
        closed = close_deviation(
            get_session(),
            hasher(),
            require_user(),
            number,
            deviation,
            remote_addr=_remote(),
            **data,
        )
        return deviation_fields(lot, closed)


@blp.route("/lots/<number>/qc-results")
class QcResults(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.response(200, QcResultSchema(many=True))
    def get(self, number: str) -> list[dict[str, Any]]:
        """Every result, superseded ones included, with who entered it, when and why."""
        results = lot_results(get_session(), _visible_lot(number))
        superseded_by = {result.supersedes_id: result.id for result in results}
        return [result_fields(result, superseded_by.get(result.id)) for result in results]

    @requires(Permission.QC_RESULTS_WRITE)
    @write
    @blp.arguments(QcResultCreateSchema)
    @blp.response(201, QcResultSchema)
    def post(self, data: dict[str, Any], number: str) -> dict[str, Any]:
        """Record a result, judged against the lot's specification; a correction supersedes."""
        _visible_lot(number)
        return result_fields(record_result(get_session(), require_user(), number, **data))


@blp.route("/lots/<number>/release")
class Release(MethodView):
    @requires(Permission.LOTS_RELEASE)
    @write
    @blp.arguments(ReleaseSchema)
    @blp.response(201, DecisionSchema)
    def post(self, data: dict[str, Any], number: str) -> dict[str, Any]:
        """QA's signed release, exceptional release or rejection; refusals list every reason."""
        lot = _visible_lot(number)
        exceptional = data.pop("exceptional")
        row = decide(
            get_session(),
            hasher(),
            require_user(),
            number,
            exceptional=ExceptionalRequest(**exceptional) if exceptional else None,
            remote_addr=_remote(),
            **data,
        )
        return decision_fields(row, lot)


@blp.route("/lots/<number>/coa")
class CertificateOfAnalysis(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.response(200, content_type="application/pdf")
    def get(self, number: str) -> Response:
        """The lot's Certificate of Analysis as a PDF."""
        lot = _visible_lot(number)
        return Response(
            render_coa(get_session(), lot, now=clock.now()),
            mimetype="application/pdf",
            headers={"Content-Disposition": f'inline; filename="CoA-{lot.number}.pdf"'},
        )


@blp.route("/recalls")
class Recalls(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.response(200, DecisionSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Signed recalls, newest first, of the lots you can see."""
        session, user = get_session(), require_user()
        rows = session.scalars(
            select(ReleaseDecision)
            .where(ReleaseDecision.decision == LotStatus.RECALLED)
            .order_by(ReleaseDecision.id.desc())
        )
        return [
            decision_fields(row, lot)
            for row in rows
            if _can_see_lot(session, user, lot := session.get_one(Lot, row.lot_id))
        ]

    @requires(Permission.LOTS_RECALL)
    @write
    @blp.arguments(RecallSchema)
    @blp.response(201, DecisionSchema(many=True))
    def post(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Recall a lot, a bank (every lot made from it) or a donor: one event per lot."""
        session = get_session()
        rows = recall(session, hasher(), require_user(), remote_addr=_remote(), **data)
        return [decision_fields(row, session.get_one(Lot, row.lot_id)) for row in rows]


@blp.route("/vials/<serial>")
class VialBySerial(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.response(200, VialDetailSchema)
    def get(self, serial: str) -> dict[str, Any]:
        """One vial: its derived state, lot and product."""
        session = get_session()
        vial = _visible_vial(session, serial)
        lot = vial.lot
        return {
            "serial": vial.serial,
            "position": vial.position,
            "state": vial_states(session, [vial])[vial.serial],
            "lot": lot.number,
            "lot_status": lot.status,
            "product": lot.product.code,
            "product_version": lot.product_version.version,
            "expires_on": lot.expires_on,
        }


@blp.route("/vials/<serial>/events")
class VialEvents(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.response(200, EventSchema(many=True))
    def get(self, serial: str) -> list[CustodyEvent]:
        """The vial's ledger chain in order."""
        session = get_session()
        return list(chain_events(session, _visible_vial(session, serial).chain))


def _visible_lot(number: str) -> Lot:
    return get_visible_lot(get_session(), require_user(), number)


def _visible_vial(session: Session, serial: str) -> Vial:
    return get_visible_vial(session, require_user(), serial)


def _can_see_lot(session: Session, user: User, lot: Lot) -> bool:
    # The cheap checks first: most lots are seen at the site that made or tested them.
    if can_see(user, [lot.site_id]) or (lot.qc_site_id and can_see(user, [lot.qc_site_id])):
        return True
    return can_see(user, visible_lot_site_ids(session, user, lot))


def _remote() -> str:
    return request.remote_addr or "unknown"


def _detail(session: Session, lot: Lot) -> dict[str, Any]:
    current = current_results(session, lot)
    specification = [
        {
            "test": line.test,
            "method": line.method,
            "unit": line.unit,
            "acceptance": describe_line(line),
            "result": result_fields(current[line.test]) if line.test in current else None,
        }
        for line in lot.product_version.specification
    ]
    return {
        **lot_summary(lot),
        "product_name": lot.product_version.name,
        "qc_site": lot.qc_site.code if lot.qc_site else None,
        "manufacture_start": lot.manufacture_start,
        "cells_per_vial": lot.cells_per_vial,
        "volume_ml": lot.volume_ml,
        "donor_eligibility_justification": lot.donor_eligibility_justification,
        "exceptional_trial": lot.exceptional_trial,
        "exceptional_subject": lot.exceptional_subject,
        "created_by": lot.created_by.username,
        "created_at": lot.created_at,
        "vial_count": lot.vials_filled,
        "specification": specification,
        "deviations": [
            deviation_fields(lot, deviation) for deviation in lot_deviations(session, lot)
        ],
        "decisions": [decision_fields(row, lot) for row in lot_decisions(session, lot)],
    }
