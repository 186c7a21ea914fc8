"""marshmallow schemas of trials, subjects, allocations, kits and unblinding.

What a blinded user reads of a blinded trial is built by `trial_view` and `subject_view`,
never by dumping a model: the arm is added only where `can_see_arm` allows it.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from app.api.schemas import Moment, StrictSchema
from custody.trials import Allocation, Subject, Trial, Unblinding, can_see_arm
from lots.models import User

CODE = validate.Length(1, 20)


# --- requests ---------------------------------------------------------------------------


class ArmCreateSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(1, 16))
    name = fields.String(required=True, validate=validate.Length(1, 200))
    route = fields.String(required=True, validate=validate.Length(1, 32))
    products = fields.List(fields.String(validate=validate.Length(1, 32)), required=True)
    ratio = fields.Integer(load_default=1, validate=validate.Range(1, 20))
    control = fields.Boolean(load_default=False)
    cells_per_dose = fields.Integer(load_default=None, validate=validate.Range(1, 10**13))
    cells_per_kg = fields.Integer(load_default=None, validate=validate.Range(1, 10**13))
    volume_ml = fields.Decimal(load_default=None, places=2, validate=validate.Range(0, 10**5))
    doses = fields.Integer(load_default=1, validate=validate.Range(1, 100))


class VisitCreateSchema(StrictSchema):
    number = fields.Integer(required=True, validate=validate.Range(1, 1000))
    name = fields.String(required=True, validate=validate.Length(1, 64))
    day = fields.Integer(required=True, validate=validate.Range(-365, 3650))
    window_before_days = fields.Integer(load_default=0, validate=validate.Range(0, 365))
    window_after_days = fields.Integer(load_default=0, validate=validate.Range(0, 365))


class TrialSiteCreateSchema(StrictSchema):
    site = fields.String(required=True, validate=validate.Length(1, 32))
    pharmacy = fields.String(required=True, validate=validate.Length(1, 32))


class TrialCreateSchema(StrictSchema):
    protocol_id = fields.String(required=True, validate=CODE)
    title = fields.String(required=True, validate=validate.Length(1, 300))
    phase = fields.String(required=True, validate=validate.Length(1, 32))
    sponsor = fields.String(required=True, validate=validate.Length(1, 200))
    blinded = fields.Boolean(required=True)
    arms = fields.List(fields.Nested(ArmCreateSchema), required=True)
    visits = fields.List(fields.Nested(VisitCreateSchema), required=True)
    sites = fields.List(fields.Nested(TrialSiteCreateSchema), required=True)
    blinded_gtin = fields.String(load_default=None, validate=validate.Regexp(r"^\d{14}$"))
    blinded_name = fields.String(load_default=None, validate=validate.Length(1, 200))
    block_multipliers = fields.List(
        fields.Integer(validate=validate.Range(1, 10)), load_default=None
    )
    planned_subjects = fields.Integer(load_default=None, validate=validate.Range(1, 100_000))


class SubjectQuerySchema(StrictSchema):
    trial = fields.String(validate=CODE)


class SubjectCreateSchema(StrictSchema):
    trial = fields.String(required=True, validate=CODE)
    code = fields.String(required=True, validate=CODE)
    site = fields.String(required=True, validate=validate.Length(1, 32))
    wristband = fields.String(load_default=None, validate=validate.Length(1, 64))
    contraindications = fields.List(
        fields.String(validate=validate.Length(1, 200)), load_default=list
    )
    weight_kg = fields.Decimal(load_default=None, places=2)
    day_one = fields.Date(load_default=None)
    arm = fields.String(
        load_default=None,
        validate=validate.Length(1, 16),
        metadata={"description": "Open-label trials only; a blinded trial randomizes."},
    )


class AllocationCreateSchema(StrictSchema):
    visit = fields.Integer(required=True, validate=validate.Range(1, 1000))
    serial = fields.String(
        load_default=None,
        validate=validate.Length(1, 20),
        metadata={"description": "Open-label: the vial. Blinded: not accepted (a kit is picked)."},
    )


class UnblindingCreateSchema(StrictSchema):
    password = fields.String(required=True, validate=validate.Length(1, 256), load_only=True)
    reason = fields.String(required=True, validate=validate.Length(1, 2000))


class WithdrawalCreateSchema(StrictSchema):
    reason = fields.String(
        required=True,
        validate=validate.Length(1, 2000),
        metadata={"description": "Why the subject leaves the trial (kept in the trail)."},
    )
    consent_withdrawn = fields.Boolean(
        load_default=False,
        metadata={"description": "The subject withdrew consent (not the investigator's call)."},
    )


class WithdrawalSchema(StrictSchema):
    at = fields.DateTime()
    by = fields.String()
    reason = fields.String()
    consent_withdrawn = fields.Boolean()


class KitDispenseSchema(StrictSchema):
    kits = fields.List(
        fields.String(validate=validate.Length(1, 20)),
        required=True,
        validate=validate.Length(1, 500),
        metadata={"description": "Kit numbers, as on the kit labels."},
    )
    ward = fields.String(required=True, validate=validate.Length(1, 32))


class KitThawSchema(StrictSchema):
    occurred_at = Moment(load_default=None, metadata={"description": "Now by default."})


class HandledKitSchema(StrictSchema):
    kit = fields.String()
    state = fields.String()
    thawed_at = fields.DateTime(allow_none=True)
    use_by = fields.DateTime(
        allow_none=True, metadata={"description": "End of the post-thaw window, if any."}
    )


class KitCreateSchema(StrictSchema):
    packaging_lot = fields.String(required=True, validate=CODE)
    serials_by_arm = fields.Dict(
        keys=fields.String(validate=validate.Length(1, 16)),
        values=fields.List(fields.String(validate=validate.Length(1, 20))),
        required=True,
    )


class KitLabelQuerySchema(StrictSchema):
    format = fields.String(
        load_default="pdf", validate=validate.OneOf(["pdf", "png", "svg", "zpl"])
    )
    kit = fields.List(fields.String(validate=CODE), load_default=list)


class WristbandQuerySchema(StrictSchema):
    format = fields.String(
        load_default="pdf", validate=validate.OneOf(["pdf", "png", "svg", "zpl"])
    )


# --- responses --------------------------------------------------------------------------


class ProductRefSchema(StrictSchema):
    code = fields.String()
    name = fields.String()
    gtin = fields.String()


class ArmSchema(StrictSchema):
    code = fields.String()
    name = fields.String()
    ratio = fields.Integer()
    control = fields.Boolean()
    route = fields.String()
    cells_per_dose = fields.Integer(allow_none=True)
    cells_per_kg = fields.Integer(allow_none=True)
    volume_ml = fields.Decimal(as_string=True, allow_none=True)
    doses = fields.Integer()
    products = fields.List(fields.Nested(ProductRefSchema))


class VisitSchema(StrictSchema):
    number = fields.Integer()
    name = fields.String()
    day = fields.Integer()
    window_before_days = fields.Integer()
    window_after_days = fields.Integer()


class TrialSiteSchema(StrictSchema):
    site = fields.String()
    site_name = fields.String()
    pharmacy = fields.String()
    pharmacy_name = fields.String()


class BlindedDesignSchema(StrictSchema):
    """What the protocol makes public of a blinded design: no arm is named."""

    arm_count = fields.Integer()
    ratio = fields.String(metadata={"description": "e.g. 3:1"})
    route = fields.String(allow_none=True)
    doses = fields.Integer(allow_none=True)
    product_name = fields.String(metadata={"description": "The blinded product's name."})
    gtin = fields.String(metadata={"description": "The blinded product's GTIN."})


class TrialSchema(StrictSchema):
    protocol_id = fields.String()
    title = fields.String()
    phase = fields.String()
    sponsor = fields.String()
    blinded = fields.Boolean()
    planned_subjects = fields.Integer(allow_none=True)
    arms = fields.List(
        fields.Nested(ArmSchema),
        allow_none=True,
        metadata={"description": "Absent (null) for a blinded trial unless you are unblinded."},
    )
    design = fields.Nested(BlindedDesignSchema, allow_none=True)
    visits = fields.List(fields.Nested(VisitSchema))
    sites = fields.List(fields.Nested(TrialSiteSchema))


class AllocationSchema(StrictSchema):
    visit = fields.Integer()
    kit = fields.String(allow_none=True)
    serial = fields.String(
        allow_none=True, metadata={"description": "Open-label, or to unblinded users."}
    )
    lot = fields.String(allow_none=True)
    allocated_by = fields.String()
    allocated_at = fields.DateTime()
    event_hash = fields.String()


class UnblindingSchema(StrictSchema):
    by = fields.String()
    by_name = fields.String()
    at = fields.DateTime()
    reason = fields.String()
    event_hash = fields.String()


class SubjectSchema(StrictSchema):
    trial = fields.String()
    code = fields.String()
    site = fields.String()
    wristband = fields.String()
    contraindications = fields.List(fields.String())
    weight_kg = fields.Decimal(as_string=True, allow_none=True)
    day_one = fields.Date(allow_none=True)
    randomized = fields.Boolean()
    randomized_at = fields.DateTime(allow_none=True)
    arm = fields.String(
        allow_none=True,
        metadata={
            "description": "Only in open-label trials, to unblinded users, or after an "
            "emergency unblinding to the clinician who unblinded."
        },
    )
    arm_name = fields.String(allow_none=True)
    enrolled_by = fields.String()
    enrolled_at = fields.DateTime()
    allocations = fields.List(fields.Nested(AllocationSchema))
    unblinding = fields.Nested(UnblindingSchema, allow_none=True)
    status = fields.String(metadata={"description": "active or withdrawn"})
    withdrawal = fields.Nested(WithdrawalSchema, allow_none=True)


class KitSchema(StrictSchema):
    """The same fields for every kit, whatever its arm."""

    number = fields.String()
    packaging_lot = fields.String()
    state = fields.String()
    subject = fields.String(allow_none=True)
    visit = fields.Integer(allow_none=True)
    arm = fields.String(allow_none=True, metadata={"description": "Unblinded users only."})


# --- views ------------------------------------------------------------------------------


def trial_view(trial: Trial, user: User) -> dict[str, Any]:
    """A trial as this user may read it."""
    shows_arms = not trial.blinded or user.unblinded
    view: dict[str, Any] = {
        "protocol_id": trial.protocol_id,
        "title": trial.title,
        "phase": trial.phase,
        "sponsor": trial.sponsor,
        "blinded": trial.blinded,
        "planned_subjects": trial.planned_subjects,
        "visits": trial.visits,
        "sites": [
            {
                "site": ts.site.code,
                "site_name": ts.site.name,
                "pharmacy": ts.pharmacy_site.code,
                "pharmacy_name": ts.pharmacy_site.name,
            }
            for ts in trial.sites
        ],
        "arms": [_arm(arm) for arm in trial.arms] if shows_arms else None,
        "design": None,
    }
    if trial.blinded:
        routes = {arm.route for arm in trial.arms}
        doses = {arm.doses for arm in trial.arms}
        view["design"] = {
            "arm_count": len(trial.arms),
            "ratio": ":".join(str(arm.ratio) for arm in sorted(trial.arms, key=_by_ratio)),
            "route": routes.pop() if len(routes) == 1 else None,
            "doses": doses.pop() if len(doses) == 1 else None,
            "product_name": trial.blinded_name,
            "gtin": trial.blinded_gtin,
        }
    return view


def subject_view(
    subject: Subject,
    user: User,
    allocations: list[Allocation],
) -> dict[str, Any]:
    """A subject as this user may read it: the arm and a kit's vial only where allowed."""
    sees_arm = can_see_arm(user, subject)
    arm = subject.arm if sees_arm else None
    return {
        "trial": subject.trial.protocol_id,
        "code": subject.code,
        "site": subject.site.code,
        "wristband": subject.wristband,
        "contraindications": subject.contraindications,
        "weight_kg": subject.weight_kg,
        "day_one": subject.day_one,
        "randomized": subject.randomized_at is not None,
        "randomized_at": subject.randomized_at,
        "arm": arm.code if arm else None,
        "arm_name": arm.name if arm else None,
        "enrolled_by": subject.enrolled_by,
        "enrolled_at": subject.enrolled_at,
        "allocations": [allocation_view(a, sees_arm) for a in allocations],
        "unblinding": unblinding_view(subject.unblinding) if sees_arm else None,
        "status": "withdrawn" if subject.withdrawn else "active",
        "withdrawal": withdrawal_view(subject),
    }


def withdrawal_view(subject: Subject) -> dict[str, Any] | None:
    """Who withdrew the subject, when and why (arm-independent: shown to every reader)."""
    if subject.withdrawn_at is None:
        return None
    return {
        "at": subject.withdrawn_at,
        "by": subject.withdrawn_by,
        "reason": subject.withdrawal_reason,
        "consent_withdrawn": subject.consent_withdrawn,
    }


def allocation_view(allocation: Allocation, sees_arm: bool) -> dict[str, Any]:
    """An allocation: a kit shows its number, its vial only to those who may see the arm."""
    shows_vial = allocation.kit is None or sees_arm
    vial = allocation.vial if shows_vial else None
    return {
        "visit": allocation.visit.number,
        "kit": allocation.kit.number if allocation.kit else None,
        "serial": vial.serial if vial else None,
        "lot": vial.lot.number if vial else None,
        "allocated_by": allocation.allocated_by.username,
        "allocated_at": allocation.allocated_at,
        "event_hash": allocation.event_hash,
    }


def unblinding_view(unblinding: Unblinding | None) -> dict[str, Any] | None:
    """Who unblinded, when and why."""
    if unblinding is None:
        return None
    return {
        "by": unblinding.by.username,
        "by_name": unblinding.by.full_name,
        "at": unblinding.at,
        "reason": unblinding.reason,
        "event_hash": unblinding.event_hash,
    }


def _arm(arm: Any) -> dict[str, Any]:
    return {
        "code": arm.code,
        "name": arm.name,
        "ratio": arm.ratio,
        "control": arm.control,
        "route": arm.route,
        "cells_per_dose": arm.cells_per_dose,
        "cells_per_kg": arm.cells_per_kg,
        "volume_ml": arm.volume_ml,
        "doses": arm.doses,
        "products": [
            {
                "code": link.product.code,
                "name": link.product.current.name,
                "gtin": link.product.gtin,
            }
            for link in arm.products
        ],
    }


def _by_ratio(arm: Any) -> tuple[int, bool]:
    # Larger ratio first (3:1), and never by code or name, which could hint at the arms.
    return (-arm.ratio, arm.control)
