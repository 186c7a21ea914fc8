"""A small world for the trace and FHIR tests: the open-label XS228 trial with one subject
dosed from the demo lot after a real shipment, and the double-blind sepsis trial with an
active and a control kit in one packaging lot.

Trials, kits, allocations, checks and administrations are inserted as rows (their services
are built elsewhere); the vial's custody up to the ward goes through the real services, and
each administration is an ADMINISTERED event on the vial's chain signed by two people.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from biip.checksums import gs1_standard_check_digit
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event
from custody.manufacturing import create_lot
from custody.shipping import Shipment, ShipmentVial, dispense, store, thaw
from custody.trials import (
    Administration,
    Allocation,
    Arm,
    BedsideCheck,
    Kit,
    Subject,
    Trial,
    TrialSite,
    Visit,
)
from lots.accounts import get_site, get_user
from lots.batch import Lot, Vial
from lots.models import User
from tests.worlds.shipping import Clock, deliver, sealed_shipment

# Protocols, GTIN and lots of their own: the demo's trials may be loaded beside them.
XS_TRIAL = "TRACE-OPEN-01"
SEPSIS_TRIAL = "TRACE-BLIND-01"
BLINDED_GTIN = "0950600010098" + str(gs1_standard_check_digit("0950600010098"))
BLINDED_NAME = "Sepsis study infusion, 100 mL (blinded)"
CONTROL_LOT = "CTRL-2506-09"
ACTIVE_LOT = "UCR-2611-01"
PACKAGING_LOT = "PK-2506-09"


@dataclass(frozen=True)
class World:
    """What the tests look up."""

    sscc: str
    shipped_serials: tuple[str, ...]
    dosed_serial: str  # the XS228 vial given to TR-001
    xs_administration: int
    xs_event: str
    active_kit_serial: str  # K-0001: active, allocated to TR-101
    control_kit_serial: str  # K-0002: control, given to TR-102
    spare_control_serial: str  # K-0003: control, not yet used
    sepsis_administration: int
    sepsis_event: str


def build(session: Session, clock: Clock) -> World:
    """The world, in the test's transaction, on the test's clock."""
    shipment = sealed_shipment(session, clock, vials=3)
    deliver(session, clock, shipment)
    pharmacist, clinician = get_user(session, "pharmacist"), get_user(session, "clinician")
    shipped = _serials(session, shipment.sscc)
    serial = shipped[0]
    store(session, pharmacist, [serial], location="LN2-2 rack 3", now=clock.advance(minutes=30))
    dispense(session, pharmacist, [serial], ward_code="SYSU3-SPINE", now=clock.advance(minutes=30))
    thaw(session, clinician, serial, now=clock.advance(minutes=20))
    clock.advance(minutes=15)
    xs_trial = _trial(session, XS_TRIAL, blinded=False)
    xs_arm = _arm(session, xs_trial, "A", "XS228 1×10⁷ cells", route="intrathecal")
    _trial_site(session, xs_trial, "SYSU3-SPINE", "SYSU3-PH")
    xs_subject = _subject(session, xs_trial, "TR-001", "SYSU3-SPINE", xs_arm)
    xs_visit = _visit(session, xs_trial)
    xs_admin = _administer(
        session,
        serial,
        xs_subject,
        xs_visit,
        clinician=clinician,
        witness=pharmacist,
        at=clock.now,
        route="intrathecal",
        dose_cells=10_000_000,
    )

    sepsis = _trial(session, SEPSIS_TRIAL, blinded=True)
    active = _arm(session, sepsis, "ACT", "Regulatory UC-MSC", route="intravenous")
    control = _arm(session, sepsis, "CTL", "Control solution", route="intravenous", control=True)
    _trial_site(session, sepsis, "AMU-SW-ICU", "AMU-SW-PH")
    visit = _visit(session, sepsis)
    _control_lot(session)
    active_serial = f"{ACTIVE_LOT}-V0040"
    control_serial, spare_serial = f"{CONTROL_LOT}-V0001", f"{CONTROL_LOT}-V0002"
    active_kit = _kit(session, sepsis, "K-0001", active, active_serial)
    _kit(session, sepsis, "K-0002", control, control_serial)
    _kit(session, sepsis, "K-0003", control, spare_serial)
    first = _subject(session, sepsis, "TR-101", "AMU-SW-ICU", active)
    second = _subject(session, sepsis, "TR-102", "AMU-SW-ICU", control)
    amu_pharmacist = get_user(session, "amu-pharmacist")
    session.add(
        Allocation(
            subject_id=first.id,
            visit_id=visit.id,
            kit_id=active_kit.id,
            vial_id=active_kit.vial_id,
            allocated_by_id=amu_pharmacist.id,
            event_hash="0" * 64,
        )
    )
    sepsis_admin = _administer(
        session,
        control_serial,
        second,
        visit,
        clinician=get_user(session, "amu-clinician"),
        witness=amu_pharmacist,
        at=clock.now,
        route="intravenous",
        dose_cells=None,
    )
    session.flush()
    return World(
        sscc=shipment.sscc,
        shipped_serials=tuple(shipped),
        dosed_serial=serial,
        xs_administration=xs_admin.id,
        xs_event=xs_admin.event_hash,
        active_kit_serial=active_serial,
        control_kit_serial=control_serial,
        spare_control_serial=spare_serial,
        sepsis_administration=sepsis_admin.id,
        sepsis_event=sepsis_admin.event_hash,
    )


def signature(user: User, meaning: str, at: dt.datetime) -> dict[str, str]:
    """A signature manifestation as `lots.signatures.sign` writes it."""
    return {
        "user": user.username,
        "name": user.full_name,
        "role": user.role,
        "meaning": meaning,
        "signed_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def _serials(session: Session, sscc: str) -> list[str]:
    return list(
        session.scalars(
            select(Vial.serial)
            .join(ShipmentVial, ShipmentVial.vial_id == Vial.id)
            .join(Shipment, Shipment.id == ShipmentVial.shipment_id)
            .where(Shipment.sscc == sscc)
            .order_by(Vial.serial)
        )
    )


def _trial(session: Session, protocol: str, *, blinded: bool) -> Trial:
    trial = Trial(
        protocol_id=protocol,
        title=f"Trial {protocol}",
        phase="I" if not blinded else "II",
        sponsor="Army Medical University" if blinded else "XellSmart",
        blinded=blinded,
        blinded_gtin=BLINDED_GTIN if blinded else None,
        blinded_name=BLINDED_NAME if blinded else None,
        created_by="admin",
    )
    session.add(trial)
    session.flush()
    return trial


def _arm(
    session: Session, trial: Trial, code: str, name: str, *, route: str, control: bool = False
) -> Arm:
    arm = Arm(trial_id=trial.id, code=code, name=name, route=route, control=control, ratio=1)
    session.add(arm)
    session.flush()
    return arm


def _trial_site(session: Session, trial: Trial, ward: str, pharmacy: str) -> None:
    session.add(
        TrialSite(
            trial_id=trial.id,
            site_id=get_site(session, ward).id,
            pharmacy_site_id=get_site(session, pharmacy).id,
        )
    )


def _visit(session: Session, trial: Trial) -> Visit:
    visit = Visit(trial_id=trial.id, number=1, name="Day 1", day=1)
    session.add(visit)
    session.flush()
    return visit


def _subject(session: Session, trial: Trial, code: str, site: str, arm: Arm) -> Subject:
    subject = Subject(
        trial_id=trial.id,
        site_id=get_site(session, site).id,
        code=code,
        wristband=f"TRACE-WB-{code}",
        arm_id=arm.id,
        enrolled_by="clinician",
    )
    session.add(subject)
    session.flush()
    return subject


def _control_lot(session: Session) -> Lot:
    end = dt.datetime(2025, 6, 3, 9, 0, tzinfo=dt.UTC)
    return create_lot(
        session,
        get_user(session, "manufacturing"),
        number=CONTROL_LOT,
        product_code="CTRL-SOL",
        bank_code="UC-D017-WCB-01",
        manufacture_start=end - dt.timedelta(days=2),
        manufacture_end=end,
        vials_filled=4,
        cells_per_vial=1,
        volume_ml=Decimal("100.0"),
        now=end,
    )


def _kit(session: Session, trial: Trial, number: str, arm: Arm, serial: str) -> Kit:
    vial = session.scalar(select(Vial).where(Vial.serial == serial))
    assert vial is not None
    kit = Kit(
        trial_id=trial.id,
        number=number,
        packaging_lot=PACKAGING_LOT,
        arm_id=arm.id,
        vial_id=vial.id,
        created_by="manufacturing",
    )
    session.add(kit)
    session.flush()
    return kit


def _administer(
    session: Session,
    serial: str,
    subject: Subject,
    visit: Visit,
    *,
    clinician: User,
    witness: User,
    at: dt.datetime,
    route: str,
    dose_cells: int | None,
) -> Administration:
    vial = session.scalar(select(Vial).where(Vial.serial == serial))
    assert vial is not None
    ward = subject.site
    check = BedsideCheck(
        reference=f"BC-{subject.code}",
        outcome="GO",
        subject_id=subject.id,
        vial_id=vial.id,
        visit_id=visit.id,
        checks=[],
        fingerprint="f" * 64,
        checked_by_id=clinician.id,
        site_id=ward.id,
        checked_at=at,
        expires_at=at + dt.timedelta(minutes=30),
        event_hash="c" * 64,
    )
    session.add(check)
    session.flush()
    event = append_event(
        session,
        EventDraft(
            vial.chain,
            "ADMINISTERED",
            at,
            {
                "serial": serial,
                "subject": subject.code,
                "trial": subject.trial.protocol_id,
                "route": route,
                "signature": signature(clinician, "Administered", at),
                "witness": signature(witness, "Witnessed administration", at),
            },
            clinician,
            ward,
        ),
    )
    administration = Administration(
        check_id=check.id,
        vial_id=vial.id,
        subject_id=subject.id,
        visit_id=visit.id,
        administered_at=at,
        route=route,
        dose_cells=dose_cells,
        volume_ml=Decimal("1.0"),
        site_id=ward.id,
        administered_by_id=clinician.id,
        witness_id=witness.id,
        event_hash=event.hash,
    )
    session.add(administration)
    session.flush()
    return administration
