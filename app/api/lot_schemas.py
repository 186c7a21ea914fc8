"""marshmallow schemas of banks, donors, lots, QC results, release decisions and recalls."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from app.api.schemas import CODE, Moment, Number, StrictSchema
from custody.ledger import canonical_bytes
from custody.manufacturing import MAX_VIALS, Decision, Severity, Step, deviation_label
from lots.banks import lineage
from lots.base import utcnow
from lots.batch import (
    BankKind,
    CellBank,
    Deviation,
    Donor,
    Eligibility,
    Lot,
    LotStatus,
    QcResult,
    ReleaseDecision,
)
from lots.local_time import local_date
from lots.rules import describe_line

TEXT = validate.Length(1, 2000)


class SignedSchema(StrictSchema):
    """An electronic signature: the password re-entered (never echoed) and its meaning."""

    password = fields.String(required=True, load_only=True, validate=validate.Length(1, 256))
    meaning = fields.String(required=True, validate=validate.Length(1, 200))


class ResultValue(fields.Field):
    """A result as entered: a number or a word ('No growth'), kept as the text it was."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValidationError("A result is a number or a text.")
        text = str(value).strip()
        if not 1 <= len(text) <= 200:
            raise ValidationError("A result has 1 to 200 characters.")
        return text


# --- donors and banks -------------------------------------------------------------------


class DonorCreateSchema(StrictSchema):
    code = fields.String(required=True, validate=[validate.Length(1, 32), CODE])
    eligibility = fields.String(
        load_default=Eligibility.PENDING.value,
        validate=validate.OneOf([status.value for status in Eligibility]),
    )
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class EligibilitySchema(StrictSchema):
    eligibility = fields.String(
        required=True, validate=validate.OneOf([status.value for status in Eligibility])
    )
    note = fields.String(required=True, validate=TEXT)


class DonorSchema(StrictSchema):
    code = fields.String()
    eligibility = fields.String()
    note = fields.String(attribute="eligibility_note")
    determined_by = fields.String(allow_none=True)
    determined_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class DonorDetailSchema(DonorSchema):
    banks = fields.List(fields.String(), metadata={"description": "Banks made from the donor."})


class BankCreateSchema(StrictSchema):
    code = fields.String(required=True, validate=[validate.Length(1, 40), CODE])
    kind = fields.String(required=True, validate=validate.OneOf([kind.value for kind in BankKind]))
    parent = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 40))
    donor = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32))
    passage = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(0, 1000))
    site = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(1, 32),
        metadata={"description": "Where the bank is stored; the creator's site by default."},
    )
    description = fields.String(load_default="", validate=validate.Length(max=300))


class BankSchema(StrictSchema):
    code = fields.String()
    kind = fields.String()
    description = fields.String()
    parent = fields.Function(lambda bank: bank.parent.code if bank.parent else None)
    donor = fields.Function(lambda bank: _donor(bank).code if _donor(bank) else None)
    passage = fields.Integer(allow_none=True)
    site = fields.Function(lambda bank: bank.site.code)
    created_by = fields.String()
    created_at = fields.DateTime()


class BankAncestorSchema(StrictSchema):
    code = fields.String()
    kind = fields.String()
    passage = fields.Integer(allow_none=True)


class BankDetailSchema(BankSchema):
    genealogy = fields.Function(
        lambda bank: BankAncestorSchema(many=True).dump(lineage(bank)[1:]),
        metadata={"description": "The bank's ancestors, nearest first."},
    )
    donor_eligibility = fields.Function(
        lambda bank: _donor(bank).eligibility if _donor(bank) else None
    )


# --- lots -------------------------------------------------------------------------------


class LotCreateSchema(StrictSchema):
    number = fields.String(required=True, validate=validate.Length(1, 14))
    product = fields.String(required=True, validate=validate.Length(1, 32))
    bank = fields.String(required=True, validate=validate.Length(1, 40))
    manufacture_start = Moment(required=True)
    manufacture_end = Moment(required=True)
    vials_filled = fields.Integer(required=True, validate=validate.Range(1, MAX_VIALS))
    cells_per_vial = fields.Integer(required=True, validate=validate.Range(1, 10**15))
    volume_ml = Number(
        required=True, places=2, validate=validate.Range(0, 999999, min_inclusive=False)
    )
    qc_site = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32))
    donor_eligibility_justification = fields.String(
        load_default=None, allow_none=True, validate=TEXT
    )


class LotQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf([status.value for status in LotStatus]))
    product = fields.String(validate=validate.Length(1, 32))


class PageQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_VIALS))


class LotSummarySchema(StrictSchema):
    number = fields.String()
    status = fields.String()
    product = fields.String()
    product_version = fields.Integer()
    bank = fields.String()
    site = fields.String()
    manufacture_end = fields.DateTime()
    expires_on = fields.Date()
    expired = fields.Boolean()
    vials_filled = fields.Integer()


class SignatureSchema(StrictSchema):
    """The manifestation of a signature (21 CFR 11.50): printed name, time and meaning."""

    user = fields.String()
    name = fields.String()
    signed_at = fields.DateTime()
    meaning = fields.String()


class ExceptionalRequestSchema(StrictSchema):
    protocol_id = fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={"description": "The subject's trial: codes are unique only within one."},
    )
    subject_code = fields.String(required=True, validate=validate.Length(1, 64))
    physician_name = fields.String(required=True, validate=validate.Length(1, 200))
    request_reference = fields.String(required=True, validate=validate.Length(1, 64))
    risk_evaluation = fields.String(required=True, validate=validate.Length(1, 10000))


class DecisionSchema(StrictSchema):
    lot = fields.String()
    decision = fields.String()
    reason = fields.String(allow_none=True)
    signature = fields.Nested(SignatureSchema)
    exceptional = fields.Nested(ExceptionalRequestSchema, allow_none=True)
    recall_scope = fields.String(allow_none=True)
    event_hash = fields.String(metadata={"description": "The hash of the signed ledger event."})


class DeviationCreateSchema(StrictSchema):
    description = fields.String(required=True, validate=validate.Length(1, 10000))
    severity = fields.String(
        required=True, validate=validate.OneOf([severity.value for severity in Severity])
    )
    capa_reference = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(1, 64)
    )


class DeviationCloseSchema(SignedSchema):
    note = fields.String(required=True, validate=TEXT)


class DeviationSchema(StrictSchema):
    number = fields.Integer()
    label = fields.String()
    description = fields.String()
    severity = fields.String()
    capa_reference = fields.String(allow_none=True)
    open = fields.Boolean()
    raised_by = fields.String()
    raised_at = fields.DateTime()
    closed_by = fields.String(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    closure_note = fields.String(allow_none=True)


class QcResultCreateSchema(StrictSchema):
    test = fields.String(required=True, validate=validate.Length(1, 120))
    value = ResultValue(required=True)
    unit = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32))
    method = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 200))
    tested_at = Moment(required=True)
    supersedes = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1))
    reason = fields.String(load_default=None, allow_none=True, validate=TEXT)


class QcResultSchema(StrictSchema):
    id = fields.Integer()
    test = fields.String()
    value = fields.String()
    unit = fields.String(allow_none=True)
    method = fields.String()
    acceptance = fields.String()
    conformance = fields.String()
    analyst = fields.String()
    analyst_name = fields.String()
    tested_at = fields.DateTime()
    recorded_at = fields.DateTime()
    supersedes = fields.Integer(allow_none=True)
    supersede_reason = fields.String(allow_none=True)
    superseded_by = fields.Integer(allow_none=True)
    event_hash = fields.String()


class SpecificationResultSchema(StrictSchema):
    test = fields.String()
    method = fields.String()
    unit = fields.String(allow_none=True)
    acceptance = fields.String()
    result = fields.Nested(QcResultSchema, allow_none=True)


class LotDetailSchema(LotSummarySchema):
    product_name = fields.String()
    qc_site = fields.String(allow_none=True)
    manufacture_start = fields.DateTime()
    cells_per_vial = fields.Integer()
    volume_ml = Number()
    donor_eligibility_justification = fields.String(allow_none=True)
    exceptional_trial = fields.String(
        allow_none=True,
        metadata={"description": "The protocol id of the exceptional subject's trial"},
    )
    exceptional_subject = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()
    vial_count = fields.Integer()
    specification = fields.List(fields.Nested(SpecificationResultSchema))
    deviations = fields.List(fields.Nested(DeviationSchema))
    decisions = fields.List(fields.Nested(DecisionSchema))


class StepSchema(SignedSchema):
    step = fields.String(required=True, validate=validate.OneOf([step.value for step in Step]))
    occurred_at = Moment(required=True)
    details = fields.Dict(
        keys=fields.String(validate=validate.Length(1, 64)),
        values=fields.Raw(),
        load_default=dict,
        validate=validate.Length(max=30),
        metadata={"description": "e.g. passage (expansion), freezer_run_id (freezing)."},
    )

    @validates_schema
    def _small_canonical_details(self, data: dict[str, Any], **_: Any) -> None:
        details = data.get("details", {})
        if len(repr(details)) > 4000:
            raise ValidationError("Details are limited to 4,000 characters.", "details")
        # The step is hashed over RFC 8785 JSON: integers within ±(2**53 - 1), finite numbers.
        try:
            canonical_bytes(details)
        except ValueError as error:
            raise ValidationError(
                "Numbers must be finite, and integers within ±9007199254740991 (RFC 8785).",
                "details",
            ) from error


class ReleaseSchema(SignedSchema):
    decision = fields.String(
        required=True, validate=validate.OneOf([decision.value for decision in Decision])
    )
    reason = fields.String(load_default=None, allow_none=True, validate=TEXT)
    exceptional = fields.Nested(ExceptionalRequestSchema, load_default=None, allow_none=True)


class RecallSchema(SignedSchema):
    scope = fields.String(required=True, validate=validate.OneOf(["lot", "bank", "donor"]))
    code = fields.String(required=True, validate=validate.Length(1, 40))
    reason = fields.String(required=True, validate=TEXT)


class VialSchema(StrictSchema):
    serial = fields.String()
    position = fields.Integer()
    state = fields.String()


class VialDetailSchema(VialSchema):
    lot = fields.String()
    lot_status = fields.String()
    product = fields.String()
    product_version = fields.Integer()
    expires_on = fields.Date()


# --- answers: the objects of a lot as the fields of its schemas -------------------------


def lot_summary(lot: Lot) -> dict[str, Any]:
    return {
        "number": lot.number,
        "status": lot.status,
        "product": lot.product.code,
        "product_version": lot.product_version.version,
        "bank": lot.bank.code,
        "site": lot.site.code,
        "manufacture_end": lot.manufacture_end,
        "expires_on": lot.expires_on,
        "expired": lot.expires_on < local_date(utcnow(), lot.site.time_zone),  # the lot's site
        "vials_filled": lot.vials_filled,
    }


def result_fields(result: QcResult, superseded_by: int | None = None) -> dict[str, Any]:
    return {
        "id": result.id,
        "test": result.line.test,
        "value": result.value,
        "unit": result.unit,
        "method": result.method,
        "acceptance": describe_line(result.line),
        "conformance": result.conformance,
        "analyst": result.analyst.username,
        "analyst_name": result.analyst.full_name,
        "tested_at": result.tested_at,
        "recorded_at": result.recorded_at,
        "supersedes": result.supersedes_id,
        "supersede_reason": result.supersede_reason,
        "superseded_by": superseded_by,
        "event_hash": result.event_hash,
    }


def deviation_fields(lot: Lot, deviation: Deviation) -> dict[str, Any]:
    return {
        "number": deviation.number,
        "label": deviation_label(lot, deviation),
        "description": deviation.description,
        "severity": deviation.severity,
        "capa_reference": deviation.capa_reference,
        "open": deviation.is_open,
        "raised_by": deviation.raised_by.username,
        "raised_at": deviation.raised_at,
        "closed_by": deviation.closed_by.username if deviation.closed_by else None,
        "closed_at": deviation.closed_at,
        "closure_note": deviation.closure_note,
    }


def decision_fields(row: ReleaseDecision, lot: Lot) -> dict[str, Any]:
    exceptional = None
    if row.subject_code is not None:
        exceptional = {
            "protocol_id": lot.exceptional_trial,
            "subject_code": row.subject_code,
            "physician_name": row.physician_name,
            "request_reference": row.physician_request_ref,
            "risk_evaluation": row.risk_evaluation,
        }
    return {
        "lot": lot.number,
        "decision": row.decision,
        "reason": row.reason,
        "signature": {
            "user": row.signer.username,
            "name": row.signer_name,
            "signed_at": row.signed_at,
            "meaning": row.meaning,
        },
        "exceptional": exceptional,
        "recall_scope": row.recall_scope,
        "event_hash": row.event_hash,
    }


def _donor(bank: CellBank) -> Donor | None:
    return next((ancestor.donor for ancestor in lineage(bank) if ancestor.donor), None)
