"""FHIR R5 exports: every resource parses with fhir.resources (R5), codes come from the
bound value sets, reads are site-scoped, and a blinded reader never learns the arm."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct
from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense
from fhir.resources.bundle import Bundle
from fhir.resources.provenance import Provenance
from sqlalchemy import select

from custody.interop import product_status
from custody.ledger import CustodyEvent, EventDraft, append_event
from custody.trials import Subject, Trial, Unblinding
from lots.accounts import get_user
from tests.worlds import trace as trace_world
from tests.worlds.trace import BLINDED_GTIN, CONTROL_LOT, SEPSIS_TRIAL, signature

# Value sets of FHIR R5 (5.0.0), copied from the specification: the library checks
# structure and types, not bindings.
PRODUCT_STATUS = {"available", "unavailable"}  # biologicallyderived-product-status
DISPENSE_STATUS = {  # biologicallyderivedproductdispense-status
    "preparation",
    "in-progress",
    "allocated",
    "issued",
    "unfulfilled",
    "returned",
    "entered-in-error",
    "unknown",
}
PRODUCT_CATEGORY = {"organ", "tissue", "fluid", "cells", "biologicalAgent"}
PARTICIPANT_TYPE = {  # provenance-participant-type
    "enterer",
    "performer",
    "author",
    "verifier",
    "legal",
    "attester",
    "informant",
    "custodian",
    "assembler",
    "composer",
}
ENTITY_ROLE = {"revision", "quotation", "source", "instantiates", "removal"}
# signature-type: ASTM E1762-95 (2013), 1.2.840.10065.1.12.1.1 to .18.
ASTM_E1762 = {f"1.2.840.10065.1.12.1.{n}" for n in range(1, 19)}
GTIN = "https://www.gs1.org/gtin"
FHIR = "/api/v1/fhir"
BLINDED_KIT = f"kit-{SEPSIS_TRIAL}--K-0002"


@pytest.fixture
def world(session, clock):
    return trace_world.build(session, clock)


def _read(client, auth_headers, username, path):
    response = client.get(f"{FHIR}/{path}", headers=auth_headers(username))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    return response


def _product(client, auth_headers, username, identifier):
    response = _read(client, auth_headers, username, f"BiologicallyDerivedProduct/{identifier}")
    resource = BiologicallyDerivedProduct.model_validate_json(response.data)
    assert resource.productStatus.code in PRODUCT_STATUS
    return response.json, resource


def _provenance(client, auth_headers, username, event_hash):
    response = _read(client, auth_headers, username, f"Provenance/{event_hash}")
    resource = Provenance.model_validate_json(response.data)
    for agent in resource.agent:
        assert {coding.code for coding in agent.type.coding} <= PARTICIPANT_TYPE
    for signature_ in resource.signature or []:
        assert {coding.code for coding in signature_.type} <= ASTM_E1762
    assert {entity.role for entity in resource.entity or []} <= ENTITY_ROLE
    return response.json, resource


def test_a_dosed_vial_is_an_unavailable_product_with_its_gtin_and_identifiers(
    client, auth_headers, world
):
    body, product = _product(client, auth_headers, "clinician", world.dosed_serial)
    assert product.productStatus.code == "unavailable"
    assert product.productCategory.code in PRODUCT_CATEGORY
    (coding,) = product.productCode.coding
    assert (coding.system, coding.code) == (GTIN, "09506000100104")
    assert product.productCode.text.startswith("XS228 Cell Injection")
    assert {i.value for i in product.identifier} == {
        world.dosed_serial,
        f"https://trail.example.org/01/09506000100104/10/XS228-2610-01/21/{world.dosed_serial}"
        "?17=271012",
    }
    assert body["storageTempRequirements"]["high"]["value"] == -150.0
    assert product.parent[0].identifier.value == "XS-WCB-01"
    assert product.biologicalSourceEvent.value == "XS228-2610-01"


def test_a_released_vial_in_stock_is_available_and_an_unreleased_one_is_not(
    client, auth_headers, world
):
    _, stocked = _product(client, auth_headers, "qa", "XS228-2610-01-V0024")
    _, quarantined = _product(client, auth_headers, "qa", "XS228-2611-01-V0001")
    assert (stocked.productStatus.code, quarantined.productStatus.code) == (
        "available",
        "unavailable",
    )


@pytest.mark.parametrize(
    ("state", "lot_status", "expires_on", "expected"),
    [
        ("stored", "released", dt.date(2026, 1, 1), "available"),
        ("thawed", "exceptionally_released", dt.date(2026, 1, 1), "available"),
        ("stored", "released", dt.date(2025, 12, 31), "unavailable"),  # expired
        ("stored", "recalled", dt.date(2026, 1, 1), "unavailable"),
        ("in_stock", "quarantine", dt.date(2026, 1, 1), "unavailable"),
        ("administered", "released", dt.date(2026, 1, 1), "unavailable"),
        ("quarantined", "released", dt.date(2026, 1, 1), "unavailable"),
        ("destroyed", "released", dt.date(2026, 1, 1), "unavailable"),
    ],
)
def test_product_status_follows_the_vial_state_the_lot_and_the_expiry(
    state, lot_status, expires_on, expected
):
    assert product_status(state, lot_status, expires_on, dt.date(2026, 1, 1)) == expected


def test_an_administration_is_an_issued_dispense_to_a_pseudonymous_patient(
    client, auth_headers, world
):
    path = f"BiologicallyDerivedProductDispense/{world.xs_administration}"
    response = _read(client, auth_headers, "clinician", path)
    dispense = BiologicallyDerivedProductDispense.model_validate_json(response.data)
    assert dispense.status in DISPENSE_STATUS
    assert dispense.status == "issued"
    assert dispense.patient.identifier.value == "TR-001"
    assert "name" not in response.json["patient"]
    assert dispense.product.reference == f"BiologicallyDerivedProduct/{world.dosed_serial}"
    assert [p.actor.display for p in dispense.performer] == ["Dong Jianwen", "Fang Hu"]
    assert dispense.whenHandedOver is not None
    assert "intrathecal" in dispense.usageInstruction


def test_an_administration_provenance_carries_both_signatures_and_its_predecessor(
    client, auth_headers, world, session
):
    body, resource = _provenance(client, auth_headers, "clinician", world.xs_event)
    assert [s.type[0].code for s in resource.signature] == [
        "1.2.840.10065.1.12.1.1",  # author: the administering clinician
        "1.2.840.10065.1.12.1.9",  # event witness: the second person
    ]
    assert [s.who.display for s in resource.signature] == ["Dong Jianwen", "Fang Hu"]
    assert orjson.loads(resource.signature[0].data)["meaning"] == "Administered"
    targets = {target.reference for target in resource.target}
    assert f"BiologicallyDerivedProductDispense/{world.xs_administration}" in targets
    event = session.scalar(select(CustodyEvent).where(CustodyEvent.hash == world.xs_event))
    assert body["entity"][0]["what"]["reference"] == f"Provenance/{event.prev_hash}"
    assert resource.patient.identifier.value == "TR-001"


def test_a_release_decision_is_a_validation_signature(client, auth_headers, world, session):
    released = session.scalar(
        select(CustodyEvent.hash).where(
            CustodyEvent.chain == "lot:XS228-2610-01", CustodyEvent.event_type == "RELEASED"
        )
    )
    body, resource = _provenance(client, auth_headers, "qa", released)
    (signed,) = resource.signature
    assert (signed.type[0].code, signed.who.display) == ("1.2.840.10065.1.12.1.6", "Li Wei")
    assert body["agent"][0]["type"]["coding"][0]["code"] == "verifier"
    assert body["target"][0]["identifier"]["value"] == "XS228-2610-01"


def test_a_signed_handoff_names_its_new_custodian(client, auth_headers, world, session):
    (handoff,) = [
        event.hash
        for event in session.scalars(
            select(CustodyEvent).where(
                CustodyEvent.chain == f"vial:{world.dosed_serial}",
                CustodyEvent.event_type == "HANDED_OFF",
            )
        )
        if orjson.loads(event.body)["payload"]["signature"] is not None
    ]
    body, resource = _provenance(client, auth_headers, "pharmacist", handoff)
    assert [s.who.display for s in resource.signature] == ["Fang Hu"]
    assert body["agent"][0]["type"]["coding"][0]["code"] == "custodian"


def test_a_vial_provenance_search_is_a_bundle_of_its_chain(client, auth_headers, world, session):
    target = f"BiologicallyDerivedProduct/{world.dosed_serial}"
    response = client.get(
        f"{FHIR}/Provenance", query_string={"target": target}, headers=auth_headers("clinician")
    )
    bundle = Bundle.model_validate_json(response.data)
    count = len(
        list(
            session.scalars(
                select(CustodyEvent.id).where(CustodyEvent.chain == f"vial:{world.dosed_serial}")
            )
        )
    )
    assert (bundle.type, bundle.total, len(bundle.entry)) == ("searchset", count, count)
    assert bundle.entry[-1].resource.id == world.xs_event
    hidden = client.get(
        f"{FHIR}/Provenance", query_string={"target": target}, headers=auth_headers("amu-clinician")
    )
    assert hidden.json["total"] == 0


def test_a_provenance_search_without_a_product_target_is_422(client, auth_headers):
    response = client.get(f"{FHIR}/Provenance?target=Patient/1", headers=auth_headers("qa"))
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "BiologicallyDerivedProduct/{dosed}",
        "BiologicallyDerivedProductDispense/{administration}",
        "Provenance/{event}",
    ],
)
def test_another_sites_record_is_not_found(client, auth_headers, world, path):
    url = path.format(
        dosed=world.dosed_serial, administration=world.xs_administration, event=world.xs_event
    )
    response = client.get(f"{FHIR}/{url}", headers=auth_headers("amu-clinician"))
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_a_courier_may_not_read_fhir(client, auth_headers, world):
    response = client.get(
        f"{FHIR}/BiologicallyDerivedProduct/{world.dosed_serial}", headers=auth_headers("courier")
    )
    assert response.status_code == 403


def test_unknown_records_are_not_found(client, auth_headers):
    for path in (
        "BiologicallyDerivedProduct/NOPE-V0001",
        "BiologicallyDerivedProductDispense/0",
        f"Provenance/{'0' * 64}",
        "BiologicallyDerivedProduct/kit-NCT0--K-9",
    ):
        assert client.get(f"{FHIR}/{path}", headers=auth_headers("qa")).status_code == 404


def _texts(value):
    return orjson.dumps(value).decode()


def test_a_blinded_reader_sees_a_kit_as_the_blinded_product_without_lot_or_arm(
    client, auth_headers, world
):
    body, product = _product(client, auth_headers, "amu-clinician", BLINDED_KIT)
    assert product.id == BLINDED_KIT
    assert product.productCode.coding[0].code == BLINDED_GTIN
    text = _texts(body)
    for secret in (CONTROL_LOT, world.control_kit_serial, "CTRL", "CTL", "Control", "UC-D017"):
        assert secret not in text
    assert product.productCategory is None
    assert product.expirationDate is None


def test_a_blinded_reader_asking_for_a_kit_vial_by_serial_is_told_it_is_unknown(
    client, auth_headers, world
):
    headers = auth_headers("amu-clinician")
    unknown = f"{CONTROL_LOT}-V9999"

    def answer(serial):
        response = client.get(f"{FHIR}/BiologicallyDerivedProduct/{serial}", headers=headers)
        return response.status_code, response.get_data(as_text=True).replace(serial, "KEY")

    assert answer(world.control_kit_serial) == answer(unknown)
    assert answer(unknown)[0] == 404
    # The unblinded pharmacist reads it by serial, the kit named beside it.
    body, _ = _product(client, auth_headers, "amu-pharmacist", world.control_kit_serial)
    assert body["id"] == BLINDED_KIT


def test_the_active_and_control_kits_read_alike_to_a_blinded_reader(client, auth_headers, world):
    control, _ = _product(client, auth_headers, "qa", f"kit-{SEPSIS_TRIAL}--K-0002")
    active, _ = _product(client, auth_headers, "qa", f"kit-{SEPSIS_TRIAL}--K-0001")

    def shape(body):
        return {
            key: value
            for key, value in body.items()
            if key not in ("id", "identifier", "productStatus")
        }

    assert shape(control) == shape(active)


def test_an_unblinded_reader_sees_the_kit_vials_real_product(client, auth_headers, world):
    body, product = _product(client, auth_headers, "amu-pharmacist", BLINDED_KIT)
    assert product.productCode.text == "Control solution (sham comparator)"
    assert body["biologicalSourceEvent"]["value"] == CONTROL_LOT


def test_a_blinded_dispense_and_provenance_name_the_kit_only(client, auth_headers, world):
    path = f"BiologicallyDerivedProductDispense/{world.sepsis_administration}"
    dispense = _read(client, auth_headers, "amu-clinician", path).json
    assert dispense["product"]["reference"] == f"BiologicallyDerivedProduct/{BLINDED_KIT}"
    # The administration's ledger event is on the kit vial's chain: to a blinded reader its
    # Provenance is an unknown one (custody/trials/blinding.py); the unblinded pharmacist reads it.
    hidden = client.get(f"{FHIR}/Provenance/{world.sepsis_event}", headers=auth_headers("qa"))
    unknown = client.get(f"{FHIR}/Provenance/{'0' * 64}", headers=auth_headers("qa"))
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json["detail"].replace(world.sepsis_event, "KEY") == unknown.json[
        "detail"
    ].replace("0" * 64, "KEY")
    provenance, _ = _provenance(client, auth_headers, "amu-pharmacist", world.sepsis_event)
    assert provenance["target"][0]["reference"] == f"BiologicallyDerivedProduct/{BLINDED_KIT}"
    text = _texts(dispense)
    assert CONTROL_LOT not in text
    assert world.control_kit_serial not in text
    assert "CTL" not in text
    assert "dose" not in dispense["usageInstruction"]
    assert "quantity" not in dispense
    unblinded = _read(client, auth_headers, "amu-pharmacist", path).json
    assert world.control_kit_serial in unblinded["product"]["display"]


def test_an_unblinding_provenance_is_for_unblinded_readers_only(
    client, auth_headers, world, session
):
    subject = session.scalar(
        select(Subject)
        .join(Trial)
        .where(Trial.protocol_id == SEPSIS_TRIAL, Subject.code == "TR-102")
    )
    clinician = get_user(session, "amu-clinician")
    now = dt.datetime.now(dt.UTC)
    event = append_event(
        session,
        EventDraft(
            subject.chain,
            "UNBLINDED",
            now,
            {"subject": "TR-102", "signature": signature(clinician, "Emergency unblinding", now)},
            clinician,
            clinician.site,
        ),
    )
    session.add(
        Unblinding(
            subject_id=subject.id, by_id=clinician.id, reason="Anaphylaxis", event_hash=event.hash
        )
    )
    session.flush()
    hidden = client.get(f"{FHIR}/Provenance/{event.hash}", headers=auth_headers("amu-clinician"))
    assert hidden.status_code == 404
    _, resource = _provenance(client, auth_headers, "amu-pharmacist", event.hash)
    assert resource.signature[0].who.display == "Xiang Jun"
