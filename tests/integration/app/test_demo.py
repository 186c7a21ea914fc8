"""The demo's first-patient dosing (`demo.load(..., first_dose=True)`): SCI-001's vial
administered at the spine ward after a GO, signed by the clinician and the pharmacist;
loading the demo again records nothing."""

from __future__ import annotations

import orjson
from sqlalchemy import func, select

from app import demo
from app.demo.trials import XS228_ALLOCATED_VIAL
from custody.ledger import CustodyEvent
from custody.shipping import vial_states
from custody.trials import Administration, Arm, Kit, Subject
from lots.accounts import get_user, password_hasher
from lots.batch import Vial

VIAL = XS228_ALLOCATED_VIAL


def _administered(session) -> list[dict]:
    bodies = session.scalars(
        select(CustodyEvent.body).where(
            CustodyEvent.chain == f"vial:{XS228_ALLOCATED_VIAL}",
            CustodyEvent.event_type == "ADMINISTERED",
        )
    )
    return [orjson.loads(body)["payload"] for body in bodies]


HASHER = password_hasher("cheapest")


def test_the_demo_doses_sci_001_from_its_allocated_vial_after_a_go(session):
    created = demo.load(session, HASHER, first_dose=True)
    assert created[0] == f"first dose of SCI-001 ({VIAL})"
    vial = session.scalar(select(Vial).where(Vial.serial == VIAL))
    administration = session.scalar(select(Administration).where(Administration.vial_id == vial.id))
    assert administration.check.outcome == "GO"
    assert (administration.subject.code, administration.visit.number) == ("SCI-001", 1)
    assert (administration.administered_by.username, administration.witness.username) == (
        "clinician",
        "pharmacist",
    )
    (event,) = _administered(session)
    assert (event["signature"]["name"], event["witness"]["name"]) == ("Dong Jianwen", "Fang Hu")
    assert vial_states(session, [vial]) == {XS228_ALLOCATED_VIAL: "administered"}


def test_the_demo_infuses_sep_001_from_its_kit_and_names_no_arm(session):
    created = demo.load(session, HASHER, first_dose=True)
    (infusion,) = session.scalars(
        select(Administration).join(Administration.subject).where(Subject.code == "SEP-001")
    )
    kit = session.scalar(select(Kit).where(Kit.vial_id == infusion.vial_id))
    assert created[1] == f"infusion of SEP-001 from kit {kit.number}"
    assert (infusion.check.outcome, infusion.route, infusion.dose_cells) == (
        "GO",
        "intravenous",
        None,
    )
    assert (infusion.administered_by.username, infusion.witness.username) == (
        "amu-clinician",
        "amu-pharmacist",
    )
    assert not get_user(session, "amu-clinician").unblinded
    (event,) = session.scalars(
        select(CustodyEvent.body).where(
            CustodyEvent.chain == kit.vial.chain, CustodyEvent.event_type == "ADMINISTERED"
        )
    )
    arm = session.get(Arm, kit.arm_id)
    assert arm.code.encode() not in event
    assert arm.name.encode() not in event


def test_loading_the_demo_again_doses_nobody_twice(session):
    demo.load(session, HASHER, first_dose=True)
    before = session.scalar(select(func.count()).select_from(CustodyEvent))
    doses = session.scalar(select(func.count()).select_from(Administration))
    created = demo.load(session, HASHER, first_dose=True)
    assert created == []
    assert session.scalar(select(func.count()).select_from(CustodyEvent)) == before
    assert session.scalar(select(func.count()).select_from(Administration)) == doses
    assert len(_administered(session)) == 1
