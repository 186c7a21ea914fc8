"""Blinding proof (hazard 12): no blinded user reads which subject or kit is in which arm.

Every trial, subject, kit, scan, label and ledger read a blinded role can reach for the
blinded demo trial is fetched, and no response may hold an arm's code or name, a product
of an arm (code, name, GTIN), or the lot number or serial of a kit's vial. The tokens are
read from the database, so a renamed arm or a new kit is still covered.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from app.demo.trials import SEPSIS_SUBJECT, SEPSIS_TRIAL
from custody.ledger import CustodyEvent
from custody.shipping import Shipment, ShipmentVial, thaw
from custody.trials import BLINDED_KIT_STATE, Allocation, get_trial, kit_views, trial_kits
from labels.keys import parse_label_keys
from labels.payload import vial_uri
from lots.accounts import get_site, get_user
from lots.base import utcnow
from lots.batch import Vial
from tests.worlds.bedside import BASE, kit_code, vial_code, wristband
from tests.worlds.blinding import forbidden_tokens, kit_label
from tests.worlds.config import TEST_LABEL_KEYS
from tests.worlds.pages import sign_in, without_tokens

# Blinded roles that may read something of a trial (no unblinded flag).
BLINDED = [
    "clinician",
    "pharmacist",
    "qa",
    "auditor",
    "courier",
    "manufacturing",
    "amu-clinician",
    "admin",
    "qc",
]


def reads(session, app):
    label = kit_label(session, app)
    kits = [kit.number for kit in trial_kits(session, get_trial(session, SEPSIS_TRIAL))]
    return [
        ("GET", "/api/v1/trials", None),
        ("GET", f"/api/v1/trials/{SEPSIS_TRIAL}", None),
        ("GET", f"/api/v1/trials/{SEPSIS_TRIAL}/kits", None),
        ("GET", "/api/v1/subjects", None),
        ("GET", f"/api/v1/subjects?trial={SEPSIS_TRIAL}", None),
        ("GET", f"/api/v1/subjects/{SEPSIS_TRIAL}/{SEPSIS_SUBJECT}", None),
        ("POST", "/api/v1/scans", {"code": label}),
        ("POST", "/api/v1/scans", {"code": kits[1]}),
        ("POST", "/api/v1/scans", {"code": SEPSIS_SUBJECT}),
        ("GET", f"/api/v1/ledger/chains/subject:{SEPSIS_TRIAL}:{SEPSIS_SUBJECT}", None),
        ("GET", f"/api/v1/ledger/chains/trial:{SEPSIS_TRIAL}", None),
        ("GET", f"/api/v1/trials/{SEPSIS_TRIAL}/kits/labels?format=svg", None),
        ("GET", f"/api/v1/trials/{SEPSIS_TRIAL}/kits/labels?format=zpl", None),
        ("GET", "/trials", None),
        ("GET", f"/trials/{SEPSIS_TRIAL}", None),
    ]


@pytest.mark.parametrize("username", BLINDED)
def test_no_read_a_blinded_user_can_make_tells_an_arm(client, session, app, auth_headers, username):
    tokens = forbidden_tokens(session)
    assert "ARM-ACT" in tokens
    assert "CTRL-2611-01" in tokens
    headers = auth_headers(username)
    sign_in(client, username)
    answered = []
    for method, path, body in reads(session, app):
        response = client.open(
            path, method=method, json=body, headers=headers if path.startswith("/api") else {}
        )
        if response.status_code >= 400:
            continue
        answered.append(path)
        text = (
            response.get_data(as_text=True)
            if "zpl" in path or "svg" in path or response.is_json or "html" in response.mimetype
            else ""
        )
        leaked = [token for token in tokens if token in text]
        assert leaked == [], f"{method} {path} as {username} shows {leaked}"
    if username != "courier":
        assert f"/trials/{SEPSIS_TRIAL}" in answered  # the page itself was read, not a redirect


def test_the_unblinded_pharmacist_does_see_the_arms(client, session, app, auth_headers):
    headers = auth_headers("amu-pharmacist")
    kits = client.get(f"/api/v1/trials/{SEPSIS_TRIAL}/kits", headers=headers).json
    subject = client.get(f"/api/v1/subjects/{SEPSIS_TRIAL}/{SEPSIS_SUBJECT}", headers=headers).json
    assert {kit["arm"] for kit in kits} == {"ARM-ACT", "ARM-SHAM"}
    assert subject["arm"] in {"ARM-ACT", "ARM-SHAM"}
    assert subject["allocations"][0]["serial"] is not None


def test_kit_listings_have_the_same_fields_for_both_arms_in_kit_number_order(
    client, session, auth_headers
):
    kits = client.get(
        f"/api/v1/trials/{SEPSIS_TRIAL}/kits", headers=auth_headers("amu-clinician")
    ).json
    assert [kit["number"] for kit in kits] == sorted(kit["number"] for kit in kits)
    assert {tuple(sorted(kit)) for kit in kits} == {tuple(sorted(kits[0]))}
    assert {kit["arm"] for kit in kits} == {None}


def test_a_blinded_trial_shows_its_public_design_but_no_arm(client, auth_headers):
    trial = client.get(f"/api/v1/trials/{SEPSIS_TRIAL}", headers=auth_headers("amu-clinician")).json
    assert trial["arms"] is None
    assert trial["design"]["ratio"] == "3:1"
    assert trial["design"]["route"] == "intravenous"


def test_a_refused_allocation_does_not_name_the_arm(client, auth_headers):
    response = client.post(
        f"/api/v1/subjects/{SEPSIS_TRIAL}/{SEPSIS_SUBJECT}/allocations",
        json={"visit": 1},
        headers=auth_headers("amu-pharmacist"),
    )
    assert response.status_code == 409
    assert "ARM" not in response.get_data(as_text=True)


# The ledger export (EPCIS) is oversight's: QA and the auditor read it without the unblinded
# flag. Policy: it holds vial events (a lot or product is no secret on its own) except those
# of a blinded kit's vial, which the reader does not know by serial (their product and times
# would join a kit's subject to an arm); no event names a kit or its subject beside the kit's
# vial or lot, and none carries an arm.
EXPORTERS = ["auditor", "qa"]
SUBJECT_STEPS = frozenset({"RANDOMIZED", "ALLOCATED"})
SECOND_SUBJECT = "SEP-077"
TOKEN = re.compile(r"[A-Za-z0-9-]+")


def _tokens(event: dict[str, Any]) -> set[str]:
    """The identifiers an EPCIS event mentions: its JSON cut at anything but letters, digits
    and '-', so a kit number is found inside an EPC but not inside a hash or a time."""
    return set(TOKEN.findall(orjson.dumps(event).decode()))


def _links(event: dict[str, Any], kit_side: set[str], vial_side: set[str]) -> bool:
    """Whether the event mentions both a kit (or its subject) and the kit's vial (or lot)."""
    tokens = _tokens(event)
    return bool(tokens & kit_side) and bool(tokens & vial_side)


def _kind(event: dict[str, Any]) -> str:
    """A ledger event's type, read from the ledger API or from an EPCIS event."""
    return str(event.get("celltrail:eventType") or event["type"])


def _more_kit_traffic(client, auth_headers, session) -> None:
    """A second subject randomized and given a kit, and SEP-001's kit vial dispensed to the
    ward: every kind of event a kit and its vial get is in the ledger."""
    clinician, pharmacist = auth_headers("amu-clinician"), auth_headers("amu-pharmacist")
    enrolled = client.post(
        "/api/v1/subjects",
        json={"trial": SEPSIS_TRIAL, "code": SECOND_SUBJECT, "site": "AMU-SW-ICU"},
        headers=clinician,
    )
    assert enrolled.status_code == 201, enrolled.json
    subject = f"/api/v1/subjects/{SEPSIS_TRIAL}/{SECOND_SUBJECT}"
    assert client.post(f"{subject}/randomization", headers=clinician).status_code == 201
    allocated = client.post(f"{subject}/allocations", json={"visit": 1}, headers=pharmacist)
    assert allocated.status_code == 201, allocated.json
    serial = _allocated_kits(session)[SEPSIS_SUBJECT].vial.serial
    dispensed = client.post(
        "/api/v1/vials/dispense",
        json={"serials": [serial], "ward": "AMU-SW-ICU"},
        headers=pharmacist,
    )
    assert dispensed.status_code == 200, dispensed.json


def _allocated_kits(session) -> dict[str, Any]:
    """The kit each subject of the blinded trial was given, by subject code."""
    session.expire_all()
    kits = trial_kits(session, get_trial(session, SEPSIS_TRIAL))
    rows = session.scalars(select(Allocation).where(Allocation.kit_id.in_([k.id for k in kits])))
    return {allocation.subject.code: allocation.kit for allocation in rows}


@pytest.mark.parametrize("username", EXPORTERS)
def test_the_ledger_export_never_links_a_kit_or_subject_to_the_kits_vial(
    client, session, auth_headers, username
):
    assert get_user(session, username).unblinded is False
    _more_kit_traffic(client, auth_headers, session)
    given = _allocated_kits(session)
    assert set(given) == {SEPSIS_SUBJECT, SECOND_SUBJECT}
    response = client.get("/api/v1/ledger/export?format=epcis", headers=auth_headers(username))
    assert response.status_code == 200
    events = response.json["epcisBody"]["eventList"]
    subject_of = {kit.number: code for code, kit in given.items()}
    for kit in trial_kits(session, get_trial(session, SEPSIS_TRIAL)):
        kit_side = {kit.number} | ({subject_of[kit.number]} if kit.number in subject_of else set())
        vial_side = {kit.vial.serial, kit.vial.lot.number}
        # The kit's vial is not in a blinded reader's export at all, not even in a shipper's.
        assert not any(kit.vial.serial in _tokens(event) for event in events), kit.number
        linking = [
            event["celltrail:hash"] for event in events if _links(event, kit_side, vial_side)
        ]
        assert linking == [], f"kit {kit.number}: {linking}"
    # The export still holds what the reader may know: the lots' release decisions.
    assert {event["celltrail:eventType"] for event in events} >= {"RELEASED"}, events[:3]


@pytest.mark.parametrize("username", EXPORTERS)
def test_no_exported_or_readable_allocation_or_randomization_carries_an_arm(
    client, session, auth_headers, username
):
    _more_kit_traffic(client, auth_headers, session)
    trial = get_trial(session, SEPSIS_TRIAL)
    arms = {token for arm in trial.arms for token in (arm.code, arm.name)}
    headers = auth_headers(username)
    exported = client.get("/api/v1/ledger/export?format=epcis", headers=headers).json
    events = exported["epcisBody"]["eventList"]
    text = orjson.dumps(exported).decode()
    assert [arm for arm in arms if arm in text] == []
    # Subject chains stay out of the export; where a blinded role reads them, through the
    # ledger, a randomization holds a commitment to the arm and an allocation the kit only.
    read = [
        event
        for code in (SEPSIS_SUBJECT, SECOND_SUBJECT)
        for event in client.get(
            f"/api/v1/ledger/chains/subject:{SEPSIS_TRIAL}:{code}", headers=headers
        ).json
    ] + [event for event in events if _kind(event) in SUBJECT_STEPS]
    kinds = [_kind(event) for event in read]
    assert kinds.count("RANDOMIZED") == kinds.count("ALLOCATED") == 2
    given = _allocated_kits(session)
    vials = {token for kit in given.values() for token in (kit.vial.serial, kit.vial.lot.number)}
    for event in read:
        if _kind(event) not in SUBJECT_STEPS:
            continue
        body = orjson.dumps(event).decode()
        assert [arm for arm in arms if arm in body] == [], event
        assert [vial for vial in vials if vial in body] == [], event


def test_the_link_check_flags_an_event_naming_a_kit_beside_its_vial():
    leaky = {
        "epcList": ["https://id.gs1.org/01/09506000100401/21/CTRL-2611-01-V0001"],
        "celltrail:kit": "000006",
        "celltrail:hash": "ab000006cd",
        "eventTime": "2026-11-30T14:30:11.000006Z",
    }
    clean = {key: value for key, value in leaky.items() if key != "celltrail:kit"}
    kit_side, vial_side = {"000006", "SEP-001"}, {"CTRL-2611-01-V0001", "CTRL-2611-01"}
    assert _links(leaky, kit_side, vial_side)
    assert not _links(clean, kit_side, vial_side)


def test_a_blinded_clinicians_vial_page_shows_no_kit_or_subject(client, session, auth_headers):
    kit = trial_kits(session, get_trial(session, SEPSIS_TRIAL))[0]
    response = client.get(f"/api/v1/vials/{kit.vial.serial}", headers=auth_headers("amu-clinician"))
    text = response.get_data(as_text=True)
    assert kit.number not in text or response.status_code == 404
    assert SEPSIS_SUBJECT not in text


# --- A kit's vial does not exist by serial for a blinded reader ---------------------------------
# The reviewer's reproduction: after a bedside check of SEP-001's kit, a blinded reader asked
# the ledger for the check event (chain "vial:CTRL-…", kit and subject in its payload), the
# vial by serial (product CTRL-SOL), FHIR by serial (the kit's id) and the trace (the kit).
# Each such read must answer exactly as an unknown serial does (custody/trials/blinding.py).
DETAIL = "detail"
MAC = re.compile(r"ac=[A-Za-z0-9.]+")


def _kit_at_the_bedside(client, session, auth_headers):
    """SEP-001's kit vial dispensed to the ICU, thawed there and checked at the bedside by
    the blinded clinician: its chain then has an event at the ward, with its time (and, while
    the check is written there, the kit and the subject)."""
    _more_kit_traffic(client, auth_headers, session)
    kit = _allocated_kits(session)[SEPSIS_SUBJECT]
    thaw(session, get_user(session, "amu-clinician"), kit.vial.serial, now=utcnow())
    checked = client.post(
        "/api/v1/bedside/checks",
        json={
            "vial_code": kit_code(session, kit),
            "wristband_code": wristband(SEPSIS_SUBJECT, SEPSIS_TRIAL),
        },
        headers=auth_headers("amu-clinician"),
    )
    assert checked.status_code == 201, checked.json
    events = session.scalars(
        select(CustodyEvent).where(CustodyEvent.chain == kit.vial.chain).order_by(CustodyEvent.seq)
    ).all()
    # Where the check's own event is written is the bedside's business; the dispense to the
    # ward (site and time) is on the vial's chain either way.
    assert {"DISPENSED", "THAWED"} <= {event.event_type for event in events}
    return kit, events


def _unknown_serial(session, lot: str) -> str:
    serial = f"{lot}-V9999"
    assert session.scalar(select(Vial.id).where(Vial.serial == serial)) is None
    return serial


def _serial_reads(session, serial: str) -> list[str]:
    label = (
        vial_code(session, serial)
        if session.scalar(select(Vial.id).where(Vial.serial == serial))
        else None
    )
    paths = [
        f"/api/v1/vials/{serial}",
        f"/api/v1/vials/{serial}/events",
        f"/api/v1/ledger/chains/vial:{serial}",
        f"/api/v1/fhir/BiologicallyDerivedProduct/{serial}",
        f"/api/v1/fhir/Provenance?target=BiologicallyDerivedProduct/{serial}",
        f"/api/v1/trace/vials/{serial}",
        f"/vials/{serial}",
    ]
    return paths + ([label.removeprefix(BASE)] if label else [])


def _answer(client, path: str, headers, key: str) -> tuple[int, str]:
    """Status and body of a read, with the asked-for key blanked (it is echoed back)."""
    response = client.get(path, headers=headers if path.startswith("/api") else {})
    # A refused label page echoes the scanned link, authentication code included.
    # Two renders differ in their CSRF tokens when they fall in different seconds.
    text = MAC.sub("ac=MAC", without_tokens(response.get_data(as_text=True)))
    return response.status_code, text.replace(key, "KEY")


def _unknown_label(session, kit) -> str:
    """A correctly signed vial label of the kit vial's lot for a serial that does not exist."""
    lot = kit.vial.lot
    serial = _unknown_serial(session, lot.number)
    uri = vial_uri(
        base=BASE,
        gtin=lot.product.gtin,
        lot=lot.number,
        serial=serial,
        expiry=lot.expires_on,
        key=parse_label_keys(TEST_LABEL_KEYS)[0],
    )
    return uri.removeprefix(BASE)


@pytest.mark.parametrize("username", BLINDED)
def test_a_kit_vials_serial_reads_as_an_unknown_serial_to_every_blinded_role(
    client, session, auth_headers, username
):
    kit, _ = _kit_at_the_bedside(client, session, auth_headers)
    serial = kit.vial.serial
    unknown = _unknown_serial(session, kit.vial.lot.number)
    headers = auth_headers(username)
    sign_in(client, username)
    known_reads = _serial_reads(session, serial)
    unknown_reads = [*_serial_reads(session, unknown), _unknown_label(session, kit)]
    assert len(known_reads) == len(unknown_reads) == 8
    for path, twin in zip(known_reads, unknown_reads, strict=True):
        key = serial if serial in path else path
        twin_key = unknown if unknown in twin else twin
        seen = _answer(client, path, headers, key)
        expected = _answer(client, twin, headers, twin_key)
        assert seen == expected, f"{path} as {username}"
    # Scanning the vial's own label, or typing its serial, reads as an unknown vial too.
    codes = [(serial, unknown), (vial_code(session, serial), BASE + _unknown_label(session, kit))]
    for code, twin in codes:
        seen = _scan(client, headers, code, serial)
        expected = _scan(client, headers, twin, unknown)
        assert seen == expected, f"scan {code} as {username}"


def _scan(client, headers, code: str, key: str) -> tuple[int, str]:
    response = client.post("/api/v1/scans", json={"code": code}, headers=headers)
    text = MAC.sub("ac=MAC", without_tokens(response.get_data(as_text=True)))
    return response.status_code, text.replace(key, "KEY")


@pytest.mark.parametrize("username", BLINDED)
def test_the_events_and_provenance_of_a_kit_vials_chain_read_as_unknown_ones(
    client, session, auth_headers, username
):
    _, events = _kit_at_the_bedside(client, session, auth_headers)
    headers = auth_headers(username)
    unknown_id = max(event.id for event in events) + 10**6
    unknown_hash = "0" * 64
    expected_event = _problem(client, f"/api/v1/ledger/events/{unknown_id}", headers, unknown_id)
    expected_provenance = _problem(
        client, f"/api/v1/fhir/Provenance/{unknown_hash}", headers, unknown_hash
    )
    for event in events:
        seen = _problem(client, f"/api/v1/ledger/events/{event.id}", headers, event.id)
        assert seen == expected_event, f"{event.event_type} as {username}"
        seen = _problem(client, f"/api/v1/fhir/Provenance/{event.hash}", headers, event.hash)
        assert seen == expected_provenance, f"{event.event_type} as {username}"


def _problem(client, path: str, headers, key: object) -> tuple[int, dict[str, Any]]:
    response = client.get(path, headers=headers)
    body = dict(response.json or {})
    if DETAIL in body:
        body[DETAIL] = body[DETAIL].replace(str(key), "KEY")
    return response.status_code, body


def test_the_blinded_clinician_still_reaches_the_kit_by_its_kit_identity(
    client, session, auth_headers
):
    kit, _ = _kit_at_the_bedside(client, session, auth_headers)
    headers = auth_headers("amu-clinician")
    kit_id = f"kit-{SEPSIS_TRIAL}--{kit.number}"
    product = client.get(f"/api/v1/fhir/BiologicallyDerivedProduct/{kit_id}", headers=headers)
    assert product.status_code == 200
    text = product.get_data(as_text=True)
    assert kit.number in text
    assert kit.vial.serial not in text
    assert kit.vial.lot.number not in text
    scanned = client.post("/api/v1/scans", json={"code": kit_code(session, kit)}, headers=headers)
    assert scanned.status_code == 200, scanned.json
    assert kit.vial.serial not in scanned.get_data(as_text=True)
    # Nor does the kit's Provenance search give the kit vial's chain (times, agents, sites).
    search = client.get(
        f"/api/v1/fhir/Provenance?target=BiologicallyDerivedProduct/{kit_id}", headers=headers
    )
    assert search.status_code == 200
    assert search.json["total"] == 0


def test_the_unblinded_pharmacist_reads_the_kit_vial_by_serial(client, session, auth_headers):
    kit, events = _kit_at_the_bedside(client, session, auth_headers)
    serial = kit.vial.serial
    headers = auth_headers("amu-pharmacist")
    vial = client.get(f"/api/v1/vials/{serial}", headers=headers)
    assert vial.status_code == 200
    assert vial.json["lot"] == kit.vial.lot.number
    chain = client.get(f"/api/v1/vials/{serial}/events", headers=headers)
    assert [event["type"] for event in chain.json] == [event.event_type for event in events]
    ledger = client.get(f"/api/v1/ledger/chains/vial:{serial}", headers=headers)
    assert len(ledger.json) == len(events)
    pharmacy = get_site(session, "AMU-SW-PH").id
    at_the_pharmacy = [event for event in events if event.site_id == pharmacy]
    assert {event.event_type for event in at_the_pharmacy} >= {"RECEIVED", "DISPENSED"}
    for event in at_the_pharmacy:  # an event by id is site-scoped by its own site
        assert client.get(f"/api/v1/ledger/events/{event.id}", headers=headers).status_code == 200
    for event in events:
        provenance = client.get(f"/api/v1/fhir/Provenance/{event.hash}", headers=headers)
        assert provenance.status_code == 200
    product = client.get(f"/api/v1/fhir/BiologicallyDerivedProduct/{serial}", headers=headers)
    assert product.status_code == 200
    assert serial in product.get_data(as_text=True)
    search = client.get(
        f"/api/v1/fhir/Provenance?target=BiologicallyDerivedProduct/{serial}", headers=headers
    )
    assert search.json["total"] == len(events)
    listing = client.get(f"/api/v1/lots/{kit.vial.lot.number}/vials?limit=500", headers=headers)
    states = {row["serial"]: row["state"] for row in listing.json}
    assert states[serial] == "thawed"


@pytest.mark.parametrize("username", BLINDED)
def test_a_lots_vial_listing_shows_a_blinded_reader_no_state_of_a_kit_vial(
    client, session, auth_headers, username
):
    kit, _ = _kit_at_the_bedside(client, session, auth_headers)
    lot = kit.vial.lot.number
    kitted = {k.vial.serial for k in trial_kits(session, get_trial(session, SEPSIS_TRIAL))}
    listing = client.get(f"/api/v1/lots/{lot}/vials?limit=500", headers=auth_headers(username))
    if listing.status_code == 404:  # the lot never reached this reader's site
        return
    assert listing.status_code == 200
    rows = {row["serial"]: row for row in listing.json}
    assert kit.vial.serial in rows
    for serial, row in rows.items():
        if serial in kitted:
            assert row == {
                "serial": serial,
                "position": row["position"],
                "state": BLINDED_KIT_STATE,
            }
        else:
            assert row["state"] != BLINDED_KIT_STATE


def test_a_ward_sees_no_arms_lot_through_a_kit_given_there(client, session, auth_headers):
    """A kit thawed at the ICU put an ICU event on its vial's chain: had that made the vial's
    lot visible to the ICU, the one lot (of the three) the ward could open would be the arm."""
    _kit_at_the_bedside(client, session, auth_headers)
    kits = trial_kits(session, get_trial(session, SEPSIS_TRIAL))
    lots = sorted({kit.vial.lot.number for kit in kits})
    assert len(lots) >= 2
    headers = auth_headers("amu-clinician")
    sign_in(client, "amu-clinician")
    answers = {
        lot: (
            client.get(f"/api/v1/lots/{lot}", headers=headers).status_code,
            client.get(f"/api/v1/lots/{lot}/vials", headers=headers).status_code,
            client.get(f"/lots/{lot}").status_code,
        )
        for lot in lots
    }
    assert set(answers.values()) == {(404, 404, 404)}, answers
    listed = {row["number"] for row in client.get("/api/v1/lots", headers=headers).json}
    assert listed.isdisjoint(lots)
    page = client.get("/lots").get_data(as_text=True)
    assert [lot for lot in lots if lot in page] == []
    # The unblinded pharmacist, whose pharmacy received the kits, still opens them all.
    pharmacist = auth_headers("amu-pharmacist")
    assert {client.get(f"/api/v1/lots/{lot}", headers=pharmacist).status_code for lot in lots} == {
        200
    }


def _kit_shipment(session, kit) -> str:
    """The SSCC of the shipper that carried the kit's vial to the pharmacy."""
    sscc = session.scalar(
        select(Shipment.sscc)
        .join(ShipmentVial, ShipmentVial.shipment_id == Shipment.id)
        .where(ShipmentVial.vial_id == kit.vial_id)
    )
    assert sscc is not None
    return sscc


@pytest.mark.parametrize("username", BLINDED)
def test_a_shipments_vial_list_shows_a_blinded_reader_no_state_of_a_kit_vial(
    client, session, auth_headers, username
):
    kit, _ = _kit_at_the_bedside(client, session, auth_headers)
    sscc = _kit_shipment(session, kit)
    kitted = {k.vial.serial for k in trial_kits(session, get_trial(session, SEPSIS_TRIAL))}
    response = client.get(f"/api/v1/shipments/{sscc}", headers=auth_headers(username))
    sign_in(client, username)
    page = client.get(f"/shipments/{sscc}")
    if username in {"qa", "auditor", "admin"}:  # oversight reads every shipment
        assert response.status_code == page.status_code == 200
    if response.status_code != 200:
        return
    rows = {row["serial"]: row["state"] for row in response.json["vials"]}
    assert kit.vial.serial in rows
    assert {rows[serial] for serial in rows.keys() & kitted} == {BLINDED_KIT_STATE}
    text = page.get_data(as_text=True)
    assert "THAWED" not in text.split("<tbody>", 1)[-1].split("</table>", 1)[0]


def test_the_unblinded_pharmacist_sees_the_kit_vials_state_in_its_shipment(
    client, session, auth_headers
):
    kit, _ = _kit_at_the_bedside(client, session, auth_headers)
    sscc = _kit_shipment(session, kit)
    response = client.get(f"/api/v1/shipments/{sscc}", headers=auth_headers("amu-pharmacist"))
    assert response.status_code == 200
    rows = {row["serial"]: row["state"] for row in response.json["vials"]}
    assert rows[kit.vial.serial] == "thawed"


# --- kits are handled by their number ----------------------------------------------------


def _free_kit(session) -> Any:
    given = {kit.id for kit in _allocated_kits(session).values()}
    states = {kit.id: state for kit, state in _kit_states(session)}
    return next(
        kit
        for kit in trial_kits(session, get_trial(session, SEPSIS_TRIAL))
        if kit.id not in given and states[kit.id] == "stored"
    )


def _kit_states(session):
    kits = trial_kits(session, get_trial(session, SEPSIS_TRIAL))
    views = kit_views(session, kits)
    return [(kit, views[kit.id].state) for kit in kits]


def test_a_kit_is_dispensed_and_thawed_by_its_number_and_no_answer_names_its_vial(
    client, session, auth_headers
):
    tokens = forbidden_tokens(session)
    kit = _free_kit(session)
    api = f"/api/v1/trials/{SEPSIS_TRIAL}/kits"
    sent = client.post(
        f"{api}/dispense",
        json={"kits": [kit.number], "ward": "AMU-SW-ICU"},
        headers=auth_headers("amu-pharmacist"),
    )
    assert (sent.status_code, sent.json) == (200, [{"kit": kit.number, "state": "dispensed"}])
    clinician = auth_headers("amu-clinician")
    scanned = client.post("/api/v1/scans", json={"code": kit_label(session, None, kit.number)},
                          headers=clinician).json  # fmt: skip
    assert [action["action"] for action in scanned["actions"]] == ["thaw_kit"]
    thawed = client.post(scanned["actions"][0]["href"], json={}, headers=clinician)
    assert (thawed.status_code, thawed.json["state"]) == (200, "thawed")
    again = client.post(f"{api}/{kit.number}/thaw", json={}, headers=clinician)
    assert again.status_code == 409
    assert f"kit {kit.number}" in again.json["detail"]
    for response in (sent, thawed, again):
        text = response.get_data(as_text=True)
        assert [token for token in tokens if token in text] == []


def test_another_hospital_cannot_handle_a_kit_and_learns_nothing(client, session, auth_headers):
    kit = _free_kit(session)
    api = f"/api/v1/trials/{SEPSIS_TRIAL}/kits"
    other = client.post(f"{api}/{kit.number}/thaw", json={}, headers=auth_headers("clinician"))
    unknown = client.post(f"{api}/999999/thaw", json={}, headers=auth_headers("clinician"))
    assert other.status_code == unknown.status_code == 404
    assert other.json["detail"].replace(kit.number, "999999") == unknown.json["detail"]


def test_the_pharmacy_sends_and_the_ward_thaws_a_kit_from_its_scan_page(
    client, session, auth_headers
):
    tokens = forbidden_tokens(session)
    kit = _free_kit(session)
    code = kit_label(session, None, kit.number)
    pages = []
    token = sign_in(client, "amu-pharmacist")
    page = client.get("/scan", query_string={"code": code}).get_data(as_text=True)
    assert 'data-testid="dispense-kit"' in page
    sent = client.post(
        f"/trials/{SEPSIS_TRIAL}/kits/{kit.number}/dispense",
        data={"ward": "AMU-SW-ICU", "code": code, "csrf_token": token},
    )
    assert sent.status_code == 303
    pages.append(page)
    token = sign_in(client, "amu-clinician")
    page = client.get("/scan", query_string={"code": code}).get_data(as_text=True)
    assert 'data-testid="thaw-kit"' in page
    pages.append(page)
    thawed = client.post(
        f"/trials/{SEPSIS_TRIAL}/kits/{kit.number}/thaw", data={"code": code, "csrf_token": token}
    )
    assert thawed.status_code == 303
    page = client.get("/scan", query_string={"code": code}).get_data(as_text=True)
    assert "THAWED" in page
    again = client.post(
        f"/trials/{SEPSIS_TRIAL}/kits/{kit.number}/thaw", data={"code": code, "csrf_token": token}
    )
    assert again.status_code == 409
    assert 'data-testid="kit-errors"' in again.get_data(as_text=True)
    pages += [page, again.get_data(as_text=True)]
    assert [token for token in tokens for text in pages if token in text] == []


def test_two_renders_compare_alike_whatever_second_their_csrf_tokens_were_signed_in(
    client, session
):
    """The comparison above must not depend on the clock (issue 16, defect 9): a page's CSRF
    tokens are signed timestamps, blanked before two renders are compared."""
    sign_in(client, "auditor")
    page = client.get("/").get_data(as_text=True)
    tokens = re.findall(r'(?:name="csrf_token" value="|data-token=")([^"]+)"', page)
    assert tokens, "the page carries a CSRF token"
    later = page.replace(tokens[0], tokens[0][:-6] + "ZZZZZZ")
    assert later != page
    assert without_tokens(later) == without_tokens(page)
