"""Trial protocols: design checks, arms, visits, sites and each site's randomization list."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event
from custody.trials.blocks import commitment, generate_list
from custody.trials.models import Arm, ArmProduct, RandomizationSlot, Trial, TrialSite, Visit
from labels.payload import AI82, has_check_digit
from lots.access import Permission, require
from lots.accounts import get_site
from lots.base import utcnow
from lots.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from lots.models import Product, ProductVersion, SiteKind, User

DEFAULT_MULTIPLIERS = (1, 2)
DEFAULT_LIST_LENGTH = 100  # per site, when the protocol gives no planned number


@dataclass(frozen=True)
class ArmSpec:
    """An arm as the protocol describes it; products by code."""

    code: str
    name: str
    route: str
    products: Sequence[str]
    ratio: int = 1
    control: bool = False
    cells_per_dose: int | None = None
    cells_per_kg: int | None = None
    volume_ml: Decimal | None = None
    doses: int = 1


@dataclass(frozen=True)
class VisitSpec:
    """A dosing visit on day `day` (day 1 is the first), within its window."""

    number: int
    name: str
    day: int
    window_before_days: int = 0
    window_after_days: int = 0


@dataclass(frozen=True)
class TrialSiteSpec:
    """A ward and the pharmacy that supplies it."""

    site_code: str
    pharmacy_site_code: str


def create_trial(
    session: Session,
    actor: User,
    *,
    protocol_id: str,
    title: str,
    phase: str,
    sponsor: str,
    blinded: bool,
    arms: Sequence[ArmSpec],
    visits: Sequence[VisitSpec],
    sites: Sequence[tuple[str, str]],
    blinded_gtin: str | None = None,
    blinded_name: str | None = None,
    block_multipliers: Sequence[int] | None = None,
    planned_subjects: int | None = None,
) -> Trial:
    """Record a protocol with its arms, visits and sites; a blinded one gets each site's
    randomization list, generated now from a seed drawn from the server's CSPRNG. Nobody
    supplies or sees the seed: it lives only while the lists are made, and the trial keeps
    its SHA-256 (in the ledger too) and each slot its keyed commitment to the arm."""
    require(actor, Permission.TRIALS_MANAGE)
    _check_design(protocol_id, blinded, arms, visits, sites, blinded_gtin, blinded_name)
    if session.scalar(select(Trial.id).where(Trial.protocol_id == protocol_id)) is not None:
        raise AlreadyExistsError("trial", protocol_id)
    if blinded_gtin and session.scalar(select(Trial.id).where(Trial.blinded_gtin == blinded_gtin)):
        raise AlreadyExistsError("trial with blinded GTIN", blinded_gtin)
    if planned_subjects is not None and planned_subjects < 1:
        raise InvalidValueError("planned_subjects", "A trial plans at least one participant.")
    multipliers = list(block_multipliers or DEFAULT_MULTIPLIERS)
    if blinded and (not multipliers or min(multipliers) < 1 or max(multipliers) > 10):
        raise InvalidValueError("block_multipliers", "Block multipliers are whole numbers 1-10.")
    seed = secrets.token_hex(32)
    trial = Trial(
        protocol_id=protocol_id,
        title=title,
        phase=phase,
        sponsor=sponsor,
        blinded=blinded,
        blinded_gtin=blinded_gtin,
        blinded_name=blinded_name,
        randomization_commitment=hashlib.sha256(seed.encode()).hexdigest() if blinded else None,
        block_multipliers=multipliers if blinded else None,
        planned_subjects=planned_subjects,
        created_by=actor.username,
    )
    session.add(trial)
    session.flush()
    _add_arms(session, trial, arms)
    if blinded:
        _check_blindable(session, arms)
    session.add_all(Visit(trial_id=trial.id, **asdict(spec)) for spec in visits)
    for site_code, pharmacy_code in sites:
        ward, pharmacy = get_site(session, site_code), get_site(session, pharmacy_code)
        if ward.kind != SiteKind.WARD or pharmacy.kind != SiteKind.HOSPITAL_PHARMACY:
            raise InvalidValueError(
                "sites", f"{site_code} must be a ward and {pharmacy_code} a hospital pharmacy."
            )
        if ward.supplied_by_id != pharmacy.id:
            raise InvalidValueError(
                "sites", f"{site_code} is supplied by {ward.supplied_by_code}, not {pharmacy_code}."
            )
        session.add(TrialSite(trial_id=trial.id, site_id=ward.id, pharmacy_site_id=pharmacy.id))
    session.flush()
    session.expire(trial, ["arms", "visits", "sites"])
    if blinded:
        _generate_slots(session, trial, seed)
    design = _design(trial, arms, visits, sites)
    payload: dict[str, Any] = {
        "protocol_id": protocol_id,
        "title": title,
        "phase": phase,
        "sponsor": sponsor,
        "blinded": blinded,
        "sites": [list(pair) for pair in sites],
        "visits": [asdict(spec) for spec in visits],
    }
    if blinded:
        # The design is public, but the arm codes must not sit in the ledger beside kits
        # and subjects: only a digest of it, which the sponsor's protocol can be checked by.
        payload["design_sha256"] = hashlib.sha256(orjson.dumps(design)).hexdigest()
        payload["randomization_commitment"] = trial.randomization_commitment
        payload["blinded_gtin"] = blinded_gtin
    else:
        payload["arms"] = design["arms"]
    append_event(session, EventDraft(trial.chain, "TRIAL_CREATED", utcnow(), payload, actor))
    return trial


def get_trial(session: Session, protocol_id: str) -> Trial:
    """The trial with this protocol id."""
    trial = session.scalar(select(Trial).where(Trial.protocol_id == protocol_id))
    if trial is None:
        raise NotFoundError("trial", protocol_id)
    return trial


def list_trials(session: Session) -> Sequence[Trial]:
    """Every trial, by protocol id (protocols are public master data)."""
    return session.scalars(select(Trial).order_by(Trial.protocol_id)).all()


def arm_products(trial: Trial) -> list[Product]:
    """Every product any arm of the trial uses."""
    return [link.product for arm in trial.arms for link in arm.products]


def find_trial_site(trial: Trial, site_id: int) -> TrialSite | None:
    """The trial's site at this ward, if the ward is one of its sites."""
    return next((ts for ts in trial.sites if ts.site_id == site_id), None)


# --- helpers ---------------------------------------------------------------------------


def _check_design(  # noqa: PLR0917 - a private check of create_trial's arguments
    protocol_id: str,
    blinded: bool,
    arms: Sequence[ArmSpec],
    visits: Sequence[VisitSpec],
    sites: Sequence[tuple[str, str]],
    blinded_gtin: str | None,
    blinded_name: str | None,
) -> None:
    if not AI82.fullmatch(protocol_id):
        raise InvalidValueError("protocol_id", "A protocol id is 1-20 GS1 AI 82 characters.")
    if not arms:
        raise InvalidValueError("arms", "A trial has at least one arm.")
    if len({arm.code for arm in arms}) != len(arms):
        raise InvalidValueError("arms", "Arm codes must differ.")
    if any(arm.ratio < 1 or arm.doses < 1 or not arm.products for arm in arms):
        raise InvalidValueError(
            "arms", "Each arm has a ratio and doses of at least 1 and a product."
        )
    if len({visit.number for visit in visits}) != len(visits):
        raise InvalidValueError("visits", "Visit numbers must differ.")
    if any(v.window_before_days < 0 or v.window_after_days < 0 for v in visits):
        raise InvalidValueError("visits", "A visit window is not negative.")
    if not sites:
        raise InvalidValueError("sites", "A trial has at least one site.")
    if blinded:
        if len(arms) < 2:
            raise InvalidValueError("arms", "A blinded trial has at least two arms.")
        if not blinded_gtin or not blinded_name:
            raise InvalidValueError(
                "blinded_gtin", "A blinded trial names the blinded product and its GTIN."
            )
        if not (blinded_gtin.isdigit() and len(blinded_gtin) == 14) or not has_check_digit(
            blinded_gtin
        ):
            raise InvalidValueError("blinded_gtin", f"{blinded_gtin} is not a valid GTIN-14.")
    elif blinded_gtin or blinded_name:
        raise InvalidValueError("blinded_gtin", "An open-label trial has no blinded product.")


# What a blinded nurse, pharmacist or courier sees of a kit and its dose: every arm of a
# blinded trial must agree on each, or the kit label and the bedside sentences (which
# assume one presentation) would tell the arms apart.
_ARM_SEEN = {"route": "route", "volume_ml": "dose volume", "doses": "number of doses"}
_PRODUCT_SEEN = {
    "route": "product route",
    "storage_limit_c": "storage limit",
    "storage_condition": "storage condition",
    "post_thaw_window_minutes": "post-thaw window",
    "temperature_record_required": "temperature record policy",
}


def blindability_problems(
    arms: Sequence[ArmSpec], products: Mapping[str, ProductVersion]
) -> list[str]:
    """Why arms of one blinded trial could be told apart by what blinded staff see; none
    when the trial is blindable. `products` are the current versions by product code."""
    problems = []
    for attribute, seen in _ARM_SEEN.items():
        values = {spec.code: getattr(spec, attribute) for spec in arms}
        if len(set(values.values())) > 1:
            problems.append(f"The arms differ in {seen}: {_listing(values)}.")
    for attribute, seen in _PRODUCT_SEEN.items():
        values = {
            code: getattr(products[code], attribute)
            for spec in arms
            for code in spec.products
            if code in products
        }
        if len(set(values.values())) > 1:
            problems.append(f"The arms' products differ in {seen}: {_listing(values)}.")
    return problems


def _listing(values: Mapping[str, object]) -> str:
    return ", ".join(f"{key} {value}" for key, value in values.items())


def _check_blindable(session: Session, arms: Sequence[ArmSpec]) -> None:
    codes = sorted({code for spec in arms for code in spec.products})
    current = {
        product.code: product.current
        for product in session.scalars(select(Product).where(Product.code.in_(codes)))
    }
    problems = blindability_problems(arms, current)
    if problems:
        raise InvalidValueError(
            "arms", "A blinded trial's arms must look alike: " + " ".join(problems)
        )


def _add_arms(session: Session, trial: Trial, arms: Sequence[ArmSpec]) -> None:
    for spec in arms:
        arm = Arm(
            trial_id=trial.id,
            code=spec.code,
            name=spec.name,
            ratio=spec.ratio,
            control=spec.control,
            route=spec.route,
            cells_per_dose=spec.cells_per_dose,
            cells_per_kg=spec.cells_per_kg,
            volume_ml=spec.volume_ml,
            doses=spec.doses,
        )
        session.add(arm)
        session.flush()
        for code in spec.products:
            product_id = session.scalar(select(Product.id).where(Product.code == code))
            if product_id is None:
                raise NotFoundError("product", code)
            session.add(ArmProduct(arm_id=arm.id, product_id=product_id))


def _generate_slots(session: Session, trial: Trial, seed: str) -> None:
    arms = [(arm.code, arm.ratio) for arm in trial.arms]
    ids = {arm.code: arm.id for arm in trial.arms}
    length = trial.planned_subjects or DEFAULT_LIST_LENGTH
    for trial_site in trial.sites:
        slots = generate_list(
            arms,
            trial.block_multipliers or DEFAULT_MULTIPLIERS,
            seed,
            trial_site.site.code,
            length,
        )
        session.add_all(
            RandomizationSlot(
                trial_id=trial.id,
                site_id=trial_site.site_id,
                sequence=slot.sequence,
                block=slot.block,
                block_size=slot.block_size,
                arm_id=ids[slot.arm],
                arm_commitment=commitment(seed, trial_site.site.code, slot.sequence, slot.arm),
            )
            for slot in slots
        )
    session.flush()


def _design(
    trial: Trial,
    arms: Sequence[ArmSpec],
    visits: Sequence[VisitSpec],
    sites: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    return {
        "protocol_id": trial.protocol_id,
        "arms": [
            {
                **{k: v for k, v in asdict(arm).items() if k not in ("products", "volume_ml")},
                "products": list(arm.products),
                "volume_ml": None if arm.volume_ml is None else str(arm.volume_ml),
            }
            for arm in arms
        ],
        "visits": [asdict(visit) for visit in visits],
        "sites": [list(pair) for pair in sites],
        "block_multipliers": trial.block_multipliers,
    }
