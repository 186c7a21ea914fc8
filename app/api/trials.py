"""Trials, subjects, randomization, allocations, kits and emergency unblinding.

A blinded user never reads an arm, an arm's products, or a kit's vial: see
`app.api.trial_schemas` (hazard 12 of DESIGN.md §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app import clock
from app.api.trial_schemas import (
    AllocationCreateSchema,
    AllocationSchema,
    HandledKitSchema,
    KitCreateSchema,
    KitDispenseSchema,
    KitLabelQuerySchema,
    KitSchema,
    KitThawSchema,
    SubjectCreateSchema,
    SubjectQuerySchema,
    SubjectSchema,
    TrialCreateSchema,
    TrialSchema,
    UnblindingCreateSchema,
    UnblindingSchema,
    WithdrawalCreateSchema,
    WristbandQuerySchema,
    allocation_view,
    subject_view,
    trial_view,
    unblinding_view,
)
from app.auth import hasher, require_user, requires
from app.db import get_session
from app.keys import label_keys
from app.writes import write
from custody.trials import (
    ArmSpec,
    Kit,
    Subject,
    VisitSpec,
    allocate_vial,
    can_see_arm,
    can_see_kits,
    create_kits,
    create_trial,
    dispense_kit,
    dispense_kits,
    enrol_subject,
    get_subject,
    get_trial,
    kit_views,
    list_trials,
    print_kit_labels,
    print_wristband,
    randomize,
    subject_allocations,
    thaw_kit,
    trial_kits,
    unblind,
    visible_subjects,
    withdraw_subject,
)
from lots.access import Permission
from lots.errors import InvalidValueError
from lots.models import User

blp = Blueprint(
    "trials",
    __name__,
    url_prefix="",
    description="Trials, subjects, randomization, allocations, blinded kits and unblinding",
)


@blp.route("/trials")
class Trials(MethodView):
    @requires(Permission.TRIALS_READ)
    @blp.response(200, TrialSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Every trial; a blinded trial's arms only to unblinded users."""
        user = require_user()
        return [trial_view(trial, user) for trial in list_trials(get_session())]

    @requires(Permission.TRIALS_MANAGE)
    @write
    @blp.arguments(TrialCreateSchema)
    @blp.response(201, TrialSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Record a protocol: arms, visits, sites; a blinded one gets its randomization lists."""
        session, user = get_session(), require_user()
        trial = create_trial(
            session,
            user,
            protocol_id=data["protocol_id"],
            title=data["title"],
            phase=data["phase"],
            sponsor=data["sponsor"],
            blinded=data["blinded"],
            arms=[ArmSpec(**arm) for arm in data["arms"]],
            visits=[VisitSpec(**visit) for visit in data["visits"]],
            sites=[(site["site"], site["pharmacy"]) for site in data["sites"]],
            blinded_gtin=data["blinded_gtin"],
            blinded_name=data["blinded_name"],
            block_multipliers=data["block_multipliers"],
            planned_subjects=data["planned_subjects"],
        )
        session.flush()
        session.refresh(trial)
        return trial_view(trial, user)


@blp.route("/trials/<protocol_id>")
class TrialById(MethodView):
    @requires(Permission.TRIALS_READ)
    @blp.response(200, TrialSchema)
    def get(self, protocol_id: str) -> dict[str, Any]:
        """One trial: sites, visits, and arms with products, dose and route where allowed."""
        return trial_view(get_trial(get_session(), protocol_id), require_user())


@blp.route("/trials/<protocol_id>/kits")
class TrialKits(MethodView):
    @requires(Permission.TRIALS_READ)
    @blp.response(200, KitSchema(many=True))
    def get(self, protocol_id: str) -> list[dict[str, Any]]:
        """The trial's kits by kit number: the same fields for every kit; the arm only to
        unblinded users, a subject only where you may see it; none to other sites."""
        session, user = get_session(), require_user()
        trial = get_trial(session, protocol_id)
        # Another site's users get the list as it reads to them: empty.
        kits = trial_kits(session, trial) if can_see_kits(user, trial) else []
        return _kit_rows(session, user, kits)

    @requires(Permission.KITS_MANAGE)
    @write
    @blp.arguments(KitCreateSchema)
    @blp.response(201, KitSchema(many=True))
    def post(self, data: dict[str, Any], protocol_id: str) -> list[dict[str, Any]]:
        """Pack vials into kits (unblinded manufacturing only): numbers in a shuffled order."""
        session, user = get_session(), require_user()
        kits = create_kits(session, user, protocol_id, **data)
        return _kit_rows(session, user, kits)


@blp.route("/trials/<protocol_id>/kits/dispense")
class TrialKitDispensing(MethodView):
    @requires(Permission.VIALS_HANDLE)
    @write
    @blp.arguments(KitDispenseSchema)
    @blp.response(200, HandledKitSchema(many=True))
    def post(self, data: dict[str, Any], protocol_id: str) -> list[dict[str, Any]]:
        """Send kits to a ward your pharmacy supplies, by kit number: no vial is named."""
        session, user = get_session(), require_user()
        kits = dispense_kits(
            session, user, protocol_id, data["kits"], ward_code=data["ward"], now=clock.now()
        )
        views = kit_views(session, kits)
        return [{"kit": kit.number, "state": views[kit.id].state} for kit in kits]


@blp.route("/trials/<protocol_id>/kits/<number>/thaw")
class TrialKitThaw(MethodView):
    @requires(Permission.VIALS_HANDLE)
    @write
    @blp.arguments(KitThawSchema)
    @blp.response(200, HandledKitSchema)
    def post(self, data: dict[str, Any], protocol_id: str, number: str) -> dict[str, Any]:
        """Thaw a kit at your ward by its kit number (the ward never learns its lot): the
        post-thaw clock starts."""
        session, user = get_session(), require_user()
        now = clock.now()
        thawed_at = data["occurred_at"] or now
        kit, use_by = thaw_kit(session, user, protocol_id, number, occurred_at=thawed_at, now=now)
        return {
            "kit": kit.number,
            "state": kit_views(session, [kit])[kit.id].state,
            "thawed_at": thawed_at,
            "use_by": None if use_by == thawed_at else use_by,
        }


@blp.route("/trials/<protocol_id>/kits/labels")
class TrialKitLabels(MethodView):
    @requires(Permission.LABELS_PRINT)
    @write
    @blp.arguments(KitLabelQuerySchema, location="query")
    @blp.response(200, content_type="application/pdf", description="Kit labels by `format`.")
    def get(self, query: dict[str, Any], protocol_id: str) -> Response:
        """Print kit labels: blinded GTIN, packaging lot, kit number, earliest expiry; each
        print is recorded on the trial's chain. PNG and SVG hold the first kit named."""
        session, user = get_session(), require_user()
        content, mimetype = print_kit_labels(
            session,
            user,
            protocol_id,
            fmt=query["format"],
            base=current_app.config["PUBLIC_URL"],
            key=label_keys()[0],
            numbers=query["kit"],
        )
        filename = f"{protocol_id}-kits.{query['format']}"
        return Response(
            content,
            mimetype=mimetype,
            headers={"Content-Disposition": f'inline; filename="{filename}"'},
        )


@blp.route("/subjects")
class Subjects(MethodView):
    @requires(Permission.SUBJECTS_READ)
    @blp.arguments(SubjectQuerySchema, location="query")
    @blp.response(200, SubjectSchema(many=True))
    def get(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Subjects of your ward or pharmacy (oversight: all), by trial and code."""
        session, user = get_session(), require_user()
        subjects = visible_subjects(session, user, query.get("trial"))
        return [_subject(session, user, subject) for subject in subjects]

    @requires(Permission.SUBJECTS_ENROL)
    @write
    @blp.arguments(SubjectCreateSchema)
    @blp.response(201, SubjectSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Enrol a subject at a ward of the trial; open-label trials name the arm here."""
        session, user = get_session(), require_user()
        subject = enrol_subject(
            session,
            user,
            data["trial"],
            code=data["code"],
            site_code=data["site"],
            wristband=data["wristband"],
            contraindications=data["contraindications"],
            weight_kg=data["weight_kg"],
            day_one=data["day_one"],
            arm_code=data["arm"],
        )
        return _subject(session, user, subject)


@blp.route("/subjects/<protocol_id>/<code>")
class SubjectByCode(MethodView):
    @requires(Permission.SUBJECTS_READ)
    @blp.response(200, SubjectSchema)
    def get(self, protocol_id: str, code: str) -> dict[str, Any]:
        """One subject with its allocations; the arm only where you may see it."""
        session, user = get_session(), require_user()
        return _subject(session, user, get_subject(session, user, protocol_id, code))


@blp.route("/subjects/<protocol_id>/<code>/randomization")
class SubjectRandomization(MethodView):
    @requires(Permission.SUBJECTS_RANDOMIZE)
    @write
    @blp.response(201, SubjectSchema)
    def post(self, protocol_id: str, code: str) -> dict[str, Any]:
        """Randomize: the next free slot of the subject's site list (blinded trials)."""
        session, user = get_session(), require_user()
        return _subject(session, user, randomize(session, user, protocol_id, code))


@blp.route("/subjects/<protocol_id>/<code>/withdrawal")
class SubjectWithdrawal(MethodView):
    @requires(Permission.SUBJECTS_ENROL)
    @write
    @blp.arguments(WithdrawalCreateSchema)
    @blp.response(201, SubjectSchema)
    def post(self, data: dict[str, Any], protocol_id: str, code: str) -> dict[str, Any]:
        """Withdraw the subject from the trial (or record withdrawn consent): once; from then
        on no randomization, vial, kit or dose. The subject stays in the trail."""
        session, user = get_session(), require_user()
        subject = withdraw_subject(
            session,
            user,
            protocol_id,
            code,
            reason=data["reason"],
            consent_withdrawn=data["consent_withdrawn"],
            now=clock.now(),
        )
        return _subject(session, user, subject)


@blp.route("/subjects/<protocol_id>/<code>/wristband")
class SubjectWristband(MethodView):
    @requires(Permission.SUBJECTS_ENROL)
    @write
    @blp.arguments(WristbandQuerySchema, location="query")
    @blp.response(200, content_type="application/pdf", description="The wristband by `format`.")
    def get(self, query: dict[str, Any], protocol_id: str, code: str) -> Response:
        """Print the subject's wristband (80 × 25 mm) with its authenticated code; the print
        is recorded on the subject's chain."""
        session, user = get_session(), require_user()
        content, mimetype = print_wristband(
            session,
            user,
            protocol_id,
            code,
            fmt=query["format"],
            base=current_app.config["PUBLIC_URL"],
            key=label_keys()[0],
            now=clock.now(),
        )
        filename = f"{protocol_id}-{code}-wristband.{query['format']}"
        return Response(
            content,
            mimetype=mimetype,
            headers={"Content-Disposition": f'inline; filename="{filename}"'},
        )


@blp.route("/subjects/<protocol_id>/<code>/allocations")
class SubjectAllocations(MethodView):
    @requires(Permission.ALLOCATE)
    @write
    @blp.arguments(AllocationCreateSchema)
    @blp.response(201, AllocationSchema)
    def post(self, data: dict[str, Any], protocol_id: str, code: str) -> dict[str, Any]:
        """Set a vial (open-label, by serial) or a system-picked kit (blinded) aside for a
        visit. A blinded trial takes no serial: nobody chooses a kit."""
        session, user = get_session(), require_user()
        subject = get_subject(session, user, protocol_id, code)
        if subject.trial.blinded:
            if data["serial"] is not None:
                raise InvalidValueError(
                    "serial", "A blinded trial takes no serial: the system picks the kit."
                )
            allocation = dispense_kit(session, user, protocol_id, code, data["visit"])
        else:
            if data["serial"] is None:
                raise InvalidValueError("serial", "Name the vial to allocate.")
            allocation = allocate_vial(
                session, user, protocol_id, code, data["visit"], data["serial"]
            )
        return allocation_view(allocation, can_see_arm(user, subject))


@blp.route("/subjects/<protocol_id>/<code>/unblinding")
class SubjectUnblinding(MethodView):
    @requires(Permission.UNBLIND)
    @write
    @blp.arguments(UnblindingCreateSchema)
    @blp.response(201, UnblindingSchema)
    def post(self, data: dict[str, Any], protocol_id: str, code: str) -> dict[str, Any] | None:
        """Emergency unblinding of one subject, signed with your password; the arm is then
        shown to you (GET the subject) and to unblinded users, to nobody else."""
        session, user = get_session(), require_user()
        unblinding = unblind(
            session,
            user,
            protocol_id,
            code,
            password=data["password"],
            reason=data["reason"],
            hasher=hasher(),
            remote_addr=request.remote_addr or "unknown",
        )
        return unblinding_view(unblinding)


def _subject(session: Session, user: User, subject: Subject) -> dict[str, Any]:
    return subject_view(subject, user, list(subject_allocations(session, subject)))


def _kit_rows(session: Session, user: User, kits: Sequence[Kit]) -> list[dict[str, Any]]:
    views = kit_views(session, kits)
    trial = kits[0].trial.protocol_id if kits else None
    visible = {subject.code for subject in visible_subjects(session, user, trial)}
    rows = []
    for kit in kits:
        view = views[kit.id]
        subject = view.subject if view.subject in visible else None
        rows.append(
            {
                "number": view.number,
                "packaging_lot": view.packaging_lot,
                "state": view.state,
                "subject": subject,
                "visit": view.visit if subject else None,
                "arm": _arm_code(kit) if user.unblinded else None,
            }
        )
    return rows


def _arm_code(kit: Kit) -> str | None:
    return next((arm.code for arm in kit.trial.arms if arm.id == kit.arm_id), None)
