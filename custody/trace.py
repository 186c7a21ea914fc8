"""Recall traces: a vial back to its donor, and a lot, bank or donor forward to every vial,
shipment, site and subject. Pure queries, set-based: no query per vial."""

from __future__ import annotations

import datetime as dt
import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import ColumnElement, Select, String, and_, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session, aliased, joinedload, lazyload, selectinload

from custody.ledger import ChainHead, CustodyEvent, LotRecord, decided_rows, decision_status
from custody.shipping import (
    STATE_AFTER,
    Shipment,
    ShipmentExcursion,
    ShipmentVial,
    derive_state,
    vial_status,
)
from custody.trials import (
    Administration,
    Allocation,
    Arm,
    Kit,
    Subject,
    Trial,
    packaging_lot_status,
)
from lots.banks import descendants, get_bank, get_donor, lineage
from lots.batch import CellBank, Donor, Lot, Vial
from lots.errors import InvalidValueError, NotFoundError
from lots.models import ProductVersion, Site


class TraceKind(enum.StrEnum):
    """What a forward trace starts from."""

    LOT = "lot"
    BANK = "bank"
    DONOR = "donor"


@dataclass(frozen=True)
class BankStep:
    """One bank of a lineage, nearest to the lot first."""

    code: str
    kind: str
    passage: int | None
    site: str


@dataclass(frozen=True)
class DonorFacts:
    """A donor by pseudonymous code, with the eligibility determination in force."""

    code: str
    eligibility: str
    note: str
    determined_at: dt.datetime | None


@dataclass(frozen=True)
class KitFacts:
    """The blinded kit a vial sits in."""

    trial: str
    number: str
    packaging_lot: str


@dataclass(frozen=True)
class Lineage:
    """Where a vial came from. A blinded reader never gets a kit vial's lineage (the serial
    is unknown to them), so `blinded` stays False; it is kept for the API's shape."""

    serial: str | None
    state: str
    site: str | None
    kit: KitFacts | None
    blinded: bool
    lot: str | None = None
    lot_status: str | None = None
    expires_on: dt.date | None = None
    product: str | None = None
    product_name: str | None = None
    product_version: int | None = None
    gtin: str | None = None
    banks: tuple[BankStep, ...] = ()
    donor: DonorFacts | None = None


@dataclass(frozen=True)
class TracedLot:
    """A lot a trace reached."""

    number: str
    product: str
    product_version: int
    bank: str
    status: str
    expires_on: dt.date
    site: str
    vials: int


class TracedVial(NamedTuple):
    """A vial a trace reached, with its derived state and place. A blinded kit vial shows
    its kit, never its serial or lot (both name the lot, and the lot the arm)."""

    serial: str | None
    lot: str | None
    kit: KitFacts | None
    state: str
    site: str | None


@dataclass(frozen=True)
class TracedShipment:
    """A shipment that carried traced vials."""

    sscc: str
    from_site: str
    to_site: str
    status: str
    vials: int


@dataclass(frozen=True)
class TracedSite:
    """A site a traced lot, vial, shipment or subject touches."""

    code: str
    name: str
    kind: str


@dataclass(frozen=True)
class TracedSubject:
    """A subject who received a traced vial (`administered`) or has one set aside
    (`allocated`). Pseudonymous code only; the arm only for an open-label trial."""

    trial: str
    code: str
    site: str
    relation: str
    serial: str | None
    kit: str | None
    arm: str | None
    at: dt.datetime


@dataclass(frozen=True)
class Trace:
    """Everything a recall of a lot, bank or donor has to reach."""

    kind: str
    code: str
    blinded: bool
    banks: tuple[str, ...]
    lots: tuple[TracedLot, ...]
    vials: tuple[TracedVial, ...]
    shipments: tuple[TracedShipment, ...]
    sites: tuple[TracedSite, ...]
    subjects: tuple[TracedSubject, ...]
    # Packaging lots whose every kit is listed because one of them is affected: a blinded
    # reader cannot tell the affected kits (and so the arm) from their neighbours.
    blinded_packaging_lots: tuple[str, ...] = ()


def trace_back(session: Session, serial: str, *, blinded: bool = False) -> Lineage:
    """A vial's lot, product version, bank and parent banks up to the cell line, and donor.

    With `blinded`, a blinded trial's kit vial is an unknown serial (NotFoundError)."""
    vial = session.scalar(
        select(Vial)
        .where(Vial.serial == serial)
        .options(joinedload(Vial.lot).joinedload(Lot.product_version))
    )
    if vial is None:
        raise NotFoundError("vial", serial)
    state, site = vial_status(session, [vial])[vial.serial]
    kit = session.scalar(select(Kit).where(Kit.vial_id == vial.id))
    kit_facts = _kit_facts(kit) if kit is not None else None
    if kit is not None and blinded and kit.trial.blinded:
        # A blinded kit's vial does not exist by serial for a blinded reader (custody/
        # blinding.py): naming its kit would map the serial, and so its lot, to the kit.
        raise NotFoundError("vial", serial)
    lot, version = vial.lot, vial.lot.product_version
    banks = lineage(lot.bank)
    donor = next((bank.donor for bank in banks if bank.donor is not None), None)
    return Lineage(
        serial=vial.serial,
        state=state,
        site=site,
        kit=kit_facts,
        blinded=False,
        lot=lot.number,
        lot_status=lot.status,
        expires_on=lot.expires_on,
        product=lot.product.code,
        product_name=version.name,
        product_version=version.version,
        gtin=lot.product.gtin,
        banks=tuple(BankStep(bank.code, bank.kind, bank.passage, bank.site.code) for bank in banks),
        donor=_donor_facts(donor) if donor is not None else None,
    )


def trace_forward(session: Session, kind: str, code: str, *, blinded: bool = False) -> Trace:
    """Every lot, vial (state, site), shipment, site and subject reached from a lot, a bank
    (with every bank made from it) or a donor (every bank of theirs).

    With `blinded`, a kit vial of a blinded trial widens to every kit of its packaging lot,
    shown by kit number only, so a recall of a control lot reaches its subjects without
    telling a blinded reader which of them received control.
    """
    if kind not in set(TraceKind):
        raise InvalidValueError("kind", f"{kind!r} is not lot, bank or donor.")
    banks, lots = _roots(session, TraceKind(kind), code)
    lot_ids = [lot.id for lot in lots]
    scope: ColumnElement[bool] = Vial.lot_id.in_(lot_ids)
    kits = _kits(session, scope)
    packaging: set[tuple[int, str]] = set()
    if blinded:
        packaging = {
            (kit.trial_id, kit.packaging_lot) for kit in kits.values() if kit.trial.blinded
        }
    if packaging:
        neighbours = select(Kit.vial_id).where(
            tuple_(Kit.trial_id, Kit.packaging_lot).in_(sorted(packaging))
        )
        scope = or_(scope, Vial.id.in_(neighbours))
        kits = _kits(session, scope)
    hidden = {vial_id for vial_id, kit in kits.items() if blinded and kit.trial.blinded}
    # A hidden kit's state is judged by its packaging lot's worst status, as its kit reads.
    worst = {
        key: packaging_lot_status(session, *key)[0]
        for key in {(kits[v].trial_id, kits[v].packaging_lot) for v in hidden}
    }
    judged_by = {v: worst[kits[v].trial_id, kits[v].packaging_lot] for v in hidden}
    vials = _vial_states(session, scope, judged_by)
    shipments = _shipments(session, scope)
    subjects = _subjects(session, scope, lot_ids, kits, hidden)
    traced_vials = tuple(
        sorted(
            (_traced_vial(vial, kits.get(vial.id), hide=vial.id in hidden) for vial in vials),
            key=_vial_order,
        )
    )
    site_codes = (
        {lot.site.code for lot in lots}
        | {vial.site for vial in vials if vial.site}
        | {code for shipment in shipments for code in (shipment.from_site, shipment.to_site)}
        | {subject.site for subject in subjects}
    )
    per_lot = Counter(vial.lot for vial in vials)
    trial_of = {kit.trial_id: kit.trial.protocol_id for kit in kits.values()}
    return Trace(
        kind=kind,
        code=code,
        blinded=bool(hidden),
        banks=tuple(bank.code for bank in banks),
        lots=tuple(_traced_lot(lot, per_lot[lot.number]) for lot in lots),
        vials=traced_vials,
        shipments=tuple(shipments),
        sites=tuple(_sites(session, site_codes)),
        subjects=tuple(subjects),
        blinded_packaging_lots=tuple(
            f"{trial_of[trial_id]}/{lot}" for trial_id, lot in sorted(packaging)
        ),
    )


def _roots(session: Session, kind: TraceKind, code: str) -> tuple[list[CellBank], list[Lot]]:
    """The banks and lots a trace starts from."""
    if kind == TraceKind.LOT:
        lot = session.scalar(_lots().where(Lot.number == code))
        if lot is None:
            raise NotFoundError("lot", code)
        return [lot.bank], [lot]
    if kind == TraceKind.BANK:
        banks = descendants(session, get_bank(session, code))
    else:
        donor = get_donor(session, code)
        own = session.scalars(
            select(CellBank).where(CellBank.donor_id == donor.id).order_by(CellBank.id)
        ).all()
        found: dict[int, CellBank] = {}
        for bank in own:
            for descendant in descendants(session, bank):
                found.setdefault(descendant.id, descendant)
        banks = list(found.values())
    lots = session.scalars(
        _lots().where(Lot.bank_id.in_([bank.id for bank in banks])).order_by(Lot.number)
    ).all()
    return banks, list(lots)


def _lots() -> Select[Lot]:
    return select(Lot).options(
        joinedload(Lot.product),
        joinedload(Lot.product_version).lazyload(ProductVersion.specification),
        joinedload(Lot.bank),
        joinedload(Lot.site),
    )


class _VialRow(NamedTuple):
    id: int
    serial: str
    lot: str
    state: str
    site: str | None


def _vial_ids(scope: ColumnElement[bool]) -> Select[int]:
    return select(Vial.id).where(scope)


def _vial_states(
    session: Session, scope: ColumnElement[bool], judged_by: dict[int, str]
) -> list[_VialRow]:
    """`custody.vials.vial_status` for a whole set at once, with the vials chosen by a
    condition instead of a list: each chain's head (kept in the event's own transaction)
    names its last event by primary key; the few vials whose last event changes no state
    (a bedside check, an observation) go through `vial_status` itself."""
    chain = literal("vial:", String) + Vial.serial
    rows = (
        session.connection()
        .execute(
            select(
                Vial.id,
                Vial.serial,
                Lot.number,
                Lot.status,
                Lot.exceptional_trial,
                Lot.exceptional_subject,
                ChainHead.seq,
                CustodyEvent.event_type,
                Site.code,
            )
            .join(Lot, Lot.id == Vial.lot_id)
            .outerjoin(ChainHead, ChainHead.chain == chain)
            .outerjoin(
                CustodyEvent,
                and_(CustodyEvent.chain == ChainHead.chain, CustodyEvent.seq == ChainHead.seq),
            )
            .outerjoin(Site, Site.id == CustodyEvent.site_id)
            .where(scope)
        )
        .all()
    )
    held = set(
        session.scalars(
            select(ShipmentVial.vial_id)
            .join(ShipmentExcursion, ShipmentExcursion.shipment_id == ShipmentVial.shipment_id)
            .where(
                ShipmentVial.vial_id.in_(_vial_ids(scope)),
                ShipmentVial.unpacked_at.is_(None),
                ShipmentExcursion.disposition.is_(None),
            )
            .distinct()
        )
    )
    wards = _wards(session, [(f"vial:{row[1]}", row[6]) for row in rows if row[7] == "DISPENSED"])
    odd = [row[0] for row in rows if row[7] is not None and row[7] not in STATE_AFTER]
    slow = _slow_states(session, odd, judged_by)
    # Judged by each lot's status as its chain has it (`custody.ledger.projections`).
    lots = decided_rows(session, {row[2]: LotRecord(*row[3:6]) for row in rows})
    found = []
    for vial_id, serial, lot, *_, event_type, site in rows:
        if vial_id in slow:
            state, place = slow[vial_id]
        else:
            status = judged_by.get(vial_id) or decision_status(lots[lot])
            state = derive_state(event_type, status, excursion=vial_id in held)
            place = wards.get(f"vial:{serial}") or site
        found.append(_VialRow(vial_id, serial, lot, state, place))
    return found


def _wards(session: Session, heads: Sequence[tuple[str, int]]) -> dict[str, str]:
    """The ward of each chain whose last event is a dispensing, by chain."""
    if not heads:
        return {}
    bodies = session.execute(
        select(CustodyEvent.chain, CustodyEvent.body).where(
            tuple_(CustodyEvent.chain, CustodyEvent.seq).in_(heads)
        )
    )
    return {chain: orjson.loads(body)["payload"].get("ward") for chain, body in bodies}


def _slow_states(
    session: Session, vial_ids: Sequence[int], judged_by: dict[int, str]
) -> dict[int, tuple[str, str | None]]:
    if not vial_ids:
        return {}
    vials = session.scalars(select(Vial).where(Vial.id.in_(vial_ids))).all()
    status = vial_status(session, vials, lot_status=judged_by)
    return {vial.id: status[vial.serial] for vial in vials}


def _kits(session: Session, scope: ColumnElement[bool]) -> dict[int, Kit]:
    kits = session.scalars(
        select(Kit)
        .where(Kit.vial_id.in_(_vial_ids(scope)))
        .options(selectinload(Kit.trial).lazyload(Trial.sites), lazyload(Kit.vial))
    )
    return {kit.vial_id: kit for kit in kits}


def _shipments(session: Session, scope: ColumnElement[bool]) -> list[TracedShipment]:
    origin, destination = aliased(Site), aliased(Site)
    rows = session.execute(
        select(
            Shipment.sscc,
            origin.code,
            destination.code,
            Shipment.status,
            func.count(func.distinct(ShipmentVial.vial_id)),
        )
        .join(ShipmentVial, ShipmentVial.shipment_id == Shipment.id)
        .join(origin, origin.id == Shipment.from_site_id)
        .join(destination, destination.id == Shipment.to_site_id)
        .where(ShipmentVial.vial_id.in_(_vial_ids(scope)))
        .group_by(Shipment.sscc, origin.code, destination.code, Shipment.status)
        .order_by(Shipment.sscc)
    )
    return [TracedShipment(*row) for row in rows]


def _subjects(
    session: Session,
    scope: ColumnElement[bool],
    lot_ids: Sequence[int],
    kits: dict[int, Kit],
    hidden: set[int],
) -> list[TracedSubject]:
    """Subjects who received a traced vial, then those with one (or its lot) set aside."""
    ids = _vial_ids(scope)
    given = session.execute(
        _with_subject(
            _subject_columns(Administration.vial_id, Administration.administered_at)
            .select_from(Administration)
            .join(Subject, Subject.id == Administration.subject_id)
            .outerjoin(Vial, Vial.id == Administration.vial_id)
        )
        .where(Administration.vial_id.in_(ids))
        .order_by(Administration.administered_at, Subject.code)
    )
    found = [_traced_subject(row, "administered", kits, hidden) for row in given]
    by_kit = {kit.id: kit.vial_id for kit in kits.values()}
    set_aside = session.execute(
        _with_subject(
            _subject_columns(
                func.coalesce(Allocation.vial_id, Kit.vial_id), Allocation.allocated_at
            )
            .select_from(Allocation)
            .join(Subject, Subject.id == Allocation.subject_id)
            .outerjoin(Kit, Kit.id == Allocation.kit_id)
            .outerjoin(Vial, Vial.id == func.coalesce(Allocation.vial_id, Kit.vial_id))
        )
        .where(
            or_(
                Allocation.vial_id.in_(ids),
                Allocation.kit_id.in_(list(by_kit)),
                Allocation.lot_id.in_(lot_ids),
            )
        )
        .order_by(Allocation.allocated_at, Subject.code)
    )
    found += [_traced_subject(row, "allocated", kits, hidden) for row in set_aside]
    return found


def _subject_columns(vial_id: Any, at: Any) -> Select[Any]:
    return select(
        vial_id, at, Subject.code, Trial.protocol_id, Trial.blinded, Site.code
    ).add_columns(Arm.code, Vial.serial)


def _with_subject(query: Select[Any]) -> Select[Any]:
    """The subject's trial, site and arm, once `subjects` is in the FROM clause."""
    return (
        query.join(Trial, Trial.id == Subject.trial_id)
        .join(Site, Site.id == Subject.site_id)
        .outerjoin(Arm, Arm.id == Subject.arm_id)
    )


def _traced_subject(
    row: Any, relation: str, kits: dict[int, Kit], hidden: set[int]
) -> TracedSubject:
    vial_id, at, code, trial, blinded_trial, site, arm, serial = row
    kit = kits.get(vial_id) if vial_id is not None else None
    return TracedSubject(
        trial=trial,
        code=code,
        site=site,
        relation=relation,
        serial=None if vial_id in hidden else serial,
        kit=kit.number if kit is not None else None,
        arm=None if blinded_trial else arm,
        at=at,
    )


def _traced_vial(vial: _VialRow, kit: Kit | None, *, hide: bool) -> TracedVial:
    kit_facts = _kit_facts(kit) if kit is not None else None
    if hide:
        return TracedVial(serial=None, lot=None, kit=kit_facts, state=vial.state, site=vial.site)
    return TracedVial(vial.serial, vial.lot, kit_facts, vial.state, vial.site)


def _vial_order(vial: TracedVial) -> tuple[str, str, str]:
    # Hidden kits sort by kit number, never by the serial (which would group them by lot).
    if vial.serial is None and vial.kit is not None:
        return ("1", vial.kit.trial, vial.kit.number)
    return ("0", vial.serial or "", "")


def _traced_lot(lot: Lot, count: int) -> TracedLot:
    return TracedLot(
        number=lot.number,
        product=lot.product.code,
        product_version=lot.product_version.version,
        bank=lot.bank.code,
        status=lot.status,
        expires_on=lot.expires_on,
        site=lot.site.code,
        vials=count,
    )


def _sites(session: Session, codes: set[str]) -> list[TracedSite]:
    if not codes:
        return []
    rows = session.execute(
        select(Site.code, Site.name, Site.kind).where(Site.code.in_(codes)).order_by(Site.code)
    )
    return [TracedSite(*row) for row in rows]


def _kit_facts(kit: Kit) -> KitFacts:
    return KitFacts(trial=kit.trial.protocol_id, number=kit.number, packaging_lot=kit.packaging_lot)


def _donor_facts(donor: Donor) -> DonorFacts:
    return DonorFacts(
        code=donor.code,
        eligibility=donor.eligibility,
        note=donor.eligibility_note,
        determined_at=donor.determined_at,
    )
