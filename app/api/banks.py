"""Cell banks with their genealogy, and donors with their eligibility determinations."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.api.lot_schemas import (
    BankCreateSchema,
    BankDetailSchema,
    BankSchema,
    DonorCreateSchema,
    DonorDetailSchema,
    DonorSchema,
    EligibilitySchema,
)
from app.auth import require_user, requires
from app.db import get_session
from app.writes import write
from lots.access import Permission, can
from lots.accounts import get_site
from lots.banks import (
    create_bank,
    create_donor,
    descendants,
    determine_eligibility,
    get_bank,
    get_donor,
    list_banks,
)
from lots.batch import CellBank, Donor, Eligibility
from lots.errors import ForbiddenError

DONOR_FIELDS = (
    "code",
    "eligibility",
    "eligibility_note",
    "determined_by",
    "determined_at",
    "created_at",
)

blp = Blueprint("banks", __name__, url_prefix="", description="Cell banks and donors")


@blp.route("/banks")
class Banks(MethodView):
    @requires(Permission.BANKS_READ)
    @blp.response(200, BankSchema(many=True))
    def get(self) -> list[CellBank]:
        """Every cell bank, by code."""
        return list(list_banks(get_session()))

    @requires(Permission.BANKS_WRITE)
    @write
    @blp.arguments(BankCreateSchema)
    @blp.response(201, BankDetailSchema)
    def post(self, data: dict[str, Any]) -> CellBank:
        """Register a bank in its genealogy: line → master → working, or donor → working."""
        session = get_session()
        user = require_user()
        site = get_site(session, data["site"]) if data["site"] else user.site
        return create_bank(
            session,
            actor=user.username,
            code=data["code"],
            kind=data["kind"],
            site=site,
            parent_code=data["parent"],
            donor_code=data["donor"],
            passage=data["passage"],
            description=data["description"],
        )


@blp.route("/banks/<code>")
class BankByCode(MethodView):
    @requires(Permission.BANKS_READ)
    @blp.response(200, BankDetailSchema)
    def get(self, code: str) -> CellBank:
        """One bank with its ancestors and its donor's eligibility."""
        return get_bank(get_session(), code)


@blp.route("/donors")
class Donors(MethodView):
    @requires(Permission.BANKS_READ)
    @blp.response(200, DonorSchema(many=True))
    def get(self) -> list[Donor]:
        """Every donor, by pseudonymous code."""
        return list(get_session().scalars(select(Donor).order_by(Donor.code)))

    @requires(Permission.BANKS_WRITE)
    @write
    @blp.arguments(DonorCreateSchema)
    @blp.response(201, DonorSchema)
    def post(self, data: dict[str, Any]) -> Donor:
        """Register a donor by pseudonym; only QA may register one as other than pending."""
        user = require_user()
        if data["eligibility"] != Eligibility.PENDING and not can(
            user, Permission.DONORS_DETERMINE
        ):
            raise ForbiddenError(user.role, Permission.DONORS_DETERMINE)
        return create_donor(get_session(), actor=user.username, **data)


@blp.route("/donors/<code>")
class DonorByCode(MethodView):
    @requires(Permission.BANKS_READ)
    @blp.response(200, DonorDetailSchema)
    def get(self, code: str) -> dict[str, Any]:
        """One donor and every bank made from them."""
        session = get_session()
        donor = get_donor(session, code)
        roots = session.scalars(select(CellBank).where(CellBank.donor_id == donor.id)).all()
        banks = sorted({bank.code for root in roots for bank in descendants(session, root)})
        return {name: getattr(donor, name) for name in DONOR_FIELDS} | {"banks": banks}


@blp.route("/donors/<code>/eligibility")
class DonorEligibility(MethodView):
    @requires(Permission.DONORS_DETERMINE)
    @write
    @blp.arguments(EligibilitySchema)
    @blp.response(200, DonorSchema)
    def post(self, data: dict[str, Any], code: str) -> Donor:
        """QA's eligibility determination; the audit trail keeps the previous one."""
        return determine_eligibility(
            get_session(), actor=require_user().username, code=code, **data
        )
