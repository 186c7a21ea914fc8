"""Serial-level blinding: which vials a reader may not know by serial (hazard 12).

For a reader without the `unblinded` flag, a vial inside a kit of a blinded trial does not
exist at serial level: its serial, its ledger chain, each event of that chain, its FHIR
resource by serial, its Provenance and its trace answer exactly as an unknown serial does.
The kit stays reachable by its kit identity (kit number, kit label, FHIR kit id). Where a
list shows such a vial (a lot's or a shipment's vials) it carries no state, site or time,
and its events do not make its lot visible at a site, so nothing ties a lot, and so an
arm, to a subject's administration. One rule, read everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Select, literal, select, union
from sqlalchemy.orm import Session

from custody.ledger import CustodyEvent
from custody.shipping import vial_states
from custody.trials.models import Kit, Trial
from lots.access import can_see, sees_all_sites
from lots.batch import Lot, Vial
from lots.errors import NotFoundError
from lots.models import Site, User

# What a blinded reader reads as the state of a kit vial in a list.
BLINDED_KIT_STATE = "in_blinded_kit"
VIAL_CHAIN_PREFIX = "vial:"


def hidden_vial_ids(session: Session, user: User, vial_ids: Iterable[int]) -> set[int]:
    """The vials among `vial_ids` this user may not know by serial: none for an unblinded
    user; for anyone else, those in a kit of a blinded trial. One query for the set."""
    wanted = set(vial_ids)
    if user.unblinded or not wanted:
        return set()
    return set(
        session.scalars(
            select(Kit.vial_id)
            .join(Trial, Trial.id == Kit.trial_id)
            .where(Trial.blinded.is_(True), Kit.vial_id.in_(sorted(wanted)))
        )
    )


def hides_kit_vial(session: Session, user: User, vial: Vial) -> bool:
    """Whether this vial must answer this user as an unknown serial would."""
    return bool(hidden_vial_ids(session, user, [vial.id]))


def hides_serial(session: Session, user: User, serial: str) -> bool:
    """Whether the vial with this serial (if any) is hidden from this user."""
    if user.unblinded:
        return False
    vial_id = session.scalar(select(Vial.id).where(Vial.serial == serial))
    return vial_id is not None and bool(hidden_vial_ids(session, user, [vial_id]))


def hides_chain(session: Session, user: User, chain: str) -> bool:
    """Whether a ledger chain is a hidden kit vial's (`vial:{serial}`), so that the chain and
    every event on it answer as unknown."""
    if not chain.startswith(VIAL_CHAIN_PREFIX):
        return False
    return hides_serial(session, user, chain.removeprefix(VIAL_CHAIN_PREFIX))


def hidden_kit_chains() -> Select[str]:
    """The ledger chains of every blinded trial's kit vials, as a subquery for `not_in`."""
    return (
        select(literal(VIAL_CHAIN_PREFIX) + Vial.serial)
        .join(Kit, Kit.vial_id == Vial.id)
        .join(Trial, Trial.id == Kit.trial_id)
        .where(Trial.blinded.is_(True))
    )


def chain_hidden(session: Session, user: User, chain: str) -> bool:
    """Whether this user may not read the chain: a hidden kit vial's, or a lot's (or a lot's
    vial's) that the user cannot see. One answer for the chain API, the exports and every
    page that names a chain."""
    if hides_chain(session, user, chain):
        return True
    if sees_all_sites(user):
        return False
    kind, _, key = chain.partition(":")
    lot: Lot | None = None
    if kind == "lot":
        lot = session.scalar(select(Lot).where(Lot.number == key))
    elif kind == "vial":
        lot = session.scalar(
            select(Lot).join(Vial, Vial.lot_id == Lot.id).where(Vial.serial == key)
        )
    return lot is not None and not can_see(user, visible_lot_site_ids(session, user, lot))


def get_visible_lot(session: Session, user: User, number: str) -> Lot:
    """The lot, if this user may see it (through a site it touches, never through a blinded
    kit's vial); NotFoundError otherwise, exactly as for a lot that does not exist."""
    lot = session.scalar(select(Lot).where(Lot.number == number))
    if lot is None or not can_see(user, visible_lot_site_ids(session, user, lot)):
        raise NotFoundError("lot", number)
    return lot


def get_visible_vial(session: Session, user: User, serial: str) -> Vial:
    """The vial, if this user may know it by serial and see its lot; NotFoundError
    otherwise (a blinded kit's vial reads as an unknown serial)."""
    vial = session.scalar(select(Vial).where(Vial.serial == serial))
    if (
        vial is None
        or hides_kit_vial(session, user, vial)
        or not can_see(user, visible_lot_site_ids(session, user, vial.lot))
    ):
        raise NotFoundError("vial", serial)
    return vial


def visible_lot_site_ids(session: Session, user: User, lot: Lot) -> set[int | None]:
    """The sites through which this user may see a lot: for a blinded reader, not through a
    blinded kit's vial (a lot seen at a ward only once a kit of it was given there tells the
    ward the arm)."""
    return lot_site_ids(session, lot, blinded=not user.unblinded)


def reader_states(session: Session, user: User, vials: Sequence[Vial]) -> dict[str, str]:
    """Each vial's derived state by serial, as this user may read it in a list: a hidden kit
    vial reads `in_blinded_kit` (its state and when it changed would tie it to a dose)."""
    hidden = hidden_vial_ids(session, user, [vial.id for vial in vials])
    states = vial_states(session, [vial for vial in vials if vial.id not in hidden])
    return {
        vial.serial: BLINDED_KIT_STATE if vial.id in hidden else states[vial.serial]
        for vial in vials
    }


def lot_site_ids(session: Session, lot: Lot, *, blinded: bool = False) -> set[int | None]:
    """Sites a lot touches: where it was made, its QC lab, wherever its vials have been, and
    the wards those pharmacies supply (a vial dispensed to a ward is the ward's before its
    clinician records anything).

    With `blinded` (a reader without the unblinded flag), a blinded trial's kit vials do not
    count: a ward seeing the lot because a kit of it was given there would learn the arm."""
    statement = select(CustodyEvent.site_id).where(
        CustodyEvent.chain.startswith(f"vial:{lot.number}-V")
    )
    if blinded:
        kit_chains = (
            select(literal("vial:") + Vial.serial)
            .join(Kit, Kit.vial_id == Vial.id)
            .join(Trial, Trial.id == Kit.trial_id)
            .where(Vial.lot_id == lot.id, Trial.blinded.is_(True))
        )
        statement = statement.where(CustodyEvent.chain.not_in(kit_chains))
    wards = select(Site.id).where(Site.supplied_by_id.in_(statement))
    return {lot.site_id, lot.qc_site_id, *session.scalars(union(statement, wards))}
