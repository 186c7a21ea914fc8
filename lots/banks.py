"""Cell banks with their genealogy, and MSC donors with their eligibility."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from lots.audit import record_change
from lots.base import utcnow
from lots.batch import BankKind, CellBank, Donor, Eligibility
from lots.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from lots.models import Site

# Which kind of bank may be made from which parent.
PARENT_KINDS = {
    BankKind.CELL_LINE: (None,),
    BankKind.MASTER: (BankKind.CELL_LINE, None),
    BankKind.WORKING: (BankKind.MASTER, BankKind.DONOR),
    BankKind.DONOR: (None,),
}


def create_donor(
    session: Session, *, actor: str, code: str, eligibility: str, note: str = ""
) -> Donor:
    """Register a donor by pseudonymous code with an eligibility determination."""
    _check_eligibility(eligibility)
    if session.scalar(select(Donor.id).where(Donor.code == code)) is not None:
        raise AlreadyExistsError("donor", code)
    donor = Donor(
        code=code,
        eligibility=eligibility,
        eligibility_note=note,
        determined_by=actor,
        determined_at=utcnow(),
    )
    session.add(donor)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="donor.created",
        entity_type="donor",
        entity_key=code,
        old=None,
        new={"code": code, "eligibility": eligibility, "note": note},
    )
    return donor


def determine_eligibility(
    session: Session, *, actor: str, code: str, eligibility: str, note: str
) -> Donor:
    """Record a new eligibility determination; the audit keeps the previous one."""
    _check_eligibility(eligibility)
    donor = get_donor(session, code)
    old = {"eligibility": donor.eligibility, "note": donor.eligibility_note}
    donor.eligibility, donor.eligibility_note = eligibility, note
    donor.determined_by, donor.determined_at = actor, utcnow()
    session.flush()
    record_change(
        session,
        actor=actor,
        action="donor.eligibility_determined",
        entity_type="donor",
        entity_key=code,
        old=old,
        new={"eligibility": eligibility, "note": note},
    )
    return donor


def get_donor(session: Session, code: str) -> Donor:
    """The donor with this code."""
    donor = session.scalar(select(Donor).where(Donor.code == code))
    if donor is None:
        raise NotFoundError("donor", code)
    return donor


def create_bank(
    session: Session,
    *,
    actor: str,
    code: str,
    kind: str,
    site: Site,
    parent_code: str | None = None,
    donor_code: str | None = None,
    passage: int | None = None,
    description: str = "",
) -> CellBank:
    """Register a bank in its genealogy: line → master → working, or donor → working."""
    if kind not in set(BankKind):
        raise InvalidValueError("kind", f"{kind!r} is not a kind of cell bank.")
    if session.scalar(select(CellBank.id).where(CellBank.code == code)) is not None:
        raise AlreadyExistsError("cell bank", code)
    parent = get_bank(session, parent_code) if parent_code else None
    allowed = PARENT_KINDS[BankKind(kind)]
    if (parent.kind if parent else None) not in allowed:
        made_from = parent.kind.replace("_", " ") if parent else "nothing"
        raise InvalidValueError(
            "parent", f"A {kind.replace('_', ' ')} bank cannot be made from {made_from}."
        )
    donor = get_donor(session, donor_code) if donor_code else None
    if kind == BankKind.DONOR and donor is None:
        raise InvalidValueError("donor", "A donor bank names its donor.")
    if parent is not None and donor is None:
        donor = parent.donor
    bank = CellBank(
        code=code,
        kind=kind,
        parent=parent,
        donor=donor,
        passage=passage,
        site=site,
        description=description,
        created_by=actor,
    )
    session.add(bank)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="bank.created",
        entity_type="cell_bank",
        entity_key=code,
        old=None,
        new={
            "code": code,
            "kind": kind,
            "parent": parent_code,
            "donor": donor.code if donor else None,
            "passage": passage,
            "site": site.code,
        },
    )
    return bank


def get_bank(session: Session, code: str) -> CellBank:
    """The bank with this code."""
    bank = session.scalar(select(CellBank).where(CellBank.code == code))
    if bank is None:
        raise NotFoundError("cell bank", code)
    return bank


def list_banks(session: Session) -> Sequence[CellBank]:
    """Every bank, by code."""
    return session.scalars(select(CellBank).order_by(CellBank.code)).all()


def lineage(bank: CellBank) -> list[CellBank]:
    """The bank and its ancestors, nearest first."""
    chain = [bank]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    return chain


def descendants(session: Session, bank: CellBank) -> list[CellBank]:
    """The bank and every bank made from it, at any depth."""
    found = [bank]
    frontier = [bank.id]
    while frontier:
        children = session.scalars(select(CellBank).where(CellBank.parent_id.in_(frontier))).all()
        found.extend(children)
        frontier = [child.id for child in children]
    return found


def _check_eligibility(eligibility: str) -> None:
    if eligibility not in set(Eligibility):
        raise InvalidValueError("eligibility", f"{eligibility!r} is not an eligibility status.")
