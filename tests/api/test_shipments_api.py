"""Shipments through the API: the demo journey from the manufacturer through two couriers to
the hospital pharmacy and the ward, every refusal as problem+json with its reason, replays,
and scans of the shipper's label."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app import demo
from custody.ledger import CustodyEvent
from custody.shipping import Shipment
from custody.shipping.shipments import RECEIVING_KINDS
from labels.payload import shipper_uri
from lots.base import utcnow
from tests.worlds.api import scalar
from tests.worlds.labels import BASE, NEW_KEY, scan
from tests.worlds.pages import sign_in

RELEASED = "XS228-2610-01"
SEAL = "SEAL-20261122-07"
PASSWORDS = {"pharmacist": "pharmacist-demo-2026"}


def v(number: int) -> str:
    return f"{RELEASED}-V{number:04d}"


def ok(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def refused(response, status=409):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    return response.json


@pytest.fixture
def api(client, auth_headers):
    """`api(username, method, path, body)`: one authenticated call."""

    def send(username, method, path, body=None, **headers):
        return client.open(
            f"/api/v1{path}",
            method=method,
            json=body,
            headers={**auth_headers(username), **headers},
        )

    return send


def created(api, serials=(1, 2, 3)) -> str:
    """A shipment to the SYSU3 pharmacy with these demo vials packed; its SSCC."""
    shipment = ok(
        api(
            "manufacturing",
            "POST",
            "/shipments",
            {"to_site": "SYSU3-PH", "hold_time_hours": 72, "logger_id": "TL-0042"},
        ),
        201,
    )
    sscc = shipment["sscc"]
    ok(api("manufacturing", "POST", f"/shipments/{sscc}/vials", {"serials": list(map(v, serials))}))
    return sscc


def shipped(api, serials=(1, 2, 3)) -> str:
    sscc = created(api, serials)
    ok(api("manufacturing", "POST", f"/shipments/{sscc}/seal", {"seal_number": SEAL}))
    ok(api("manufacturing", "POST", f"/shipments/{sscc}/ship", {"courier": "courier"}))
    return sscc


def handoff(api, sscc, taker, giver, **body):
    return api(taker, "POST", f"/shipments/{sscc}/handoffs", {"giver": giver, **body})


def events(app) -> int:
    return scalar(app, select(func.count(CustodyEvent.id)))


# The journey


def test_a_shipment_goes_from_the_manufacturer_through_two_couriers_to_the_pharmacy(api):
    sscc = shipped(api)
    first = ok(handoff(api, sscc, "courier2", "courier"), 201)
    second = ok(handoff(api, sscc, "pharmacist", "courier2", password=PASSWORDS["pharmacist"]), 201)
    receipt = ok(
        api(
            "pharmacist",
            "POST",
            f"/shipments/{sscc}/receipt",
            {"seal_number": SEAL, "accept_manifest": True},
        ),
        201,
    )
    detail = ok(api("pharmacist", "GET", f"/shipments/{sscc}"))
    assert (first["giver"]["user"], first["taker"]["user"], first["number"]) == (
        "courier",
        "courier2",
        1,
    )
    assert (second["taker"]["site"], second["signed"], second["late"]) == ("SYSU3-PH", True, False)
    assert (receipt["complete"], receipt["received"]) == (True, [v(1), v(2), v(3)])
    assert (detail["status"], detail["custodian"]["user"], detail["vial_count"]) == (
        "received",
        "pharmacist",
        3,
    )
    assert [h["taker"]["user"] for h in detail["handoffs"]] == ["courier2", "pharmacist"]
    assert {vial["state"] for vial in detail["vials"]} == {"received"}


def test_a_new_shipment_shows_its_limits_and_hold_time(api):
    sscc = created(api, (1,))
    detail = ok(api("manufacturing", "GET", f"/shipments/{sscc}"))
    assert (detail["storage_limit_c"], detail["hold_time_hours"], detail["logger_id"]) == (
        "-150",
        72,
        "TL-0042",
    )
    assert (detail["status"], detail["from_site"], detail["to_site"]) == (
        "open",
        "XSM-SZ",
        "SYSU3-PH",
    )
    assert detail["vials"][0]["serial"] == v(1)
    assert detail["vials"][0]["state"] == "packed"


def test_shipping_starts_the_hold_time(api):
    sscc = shipped(api, (1,))
    detail = ok(api("courier", "GET", f"/shipments/{sscc}"))
    shipped_at = dt.datetime.fromisoformat(detail["shipped_at"])
    assert dt.datetime.fromisoformat(detail["hold_until"]) == shipped_at + dt.timedelta(hours=72)


def test_received_vials_are_stored_dispensed_and_thawed_at_the_ward(api):
    sscc = shipped(api, (1,))
    ok(handoff(api, sscc, "pharmacist", "courier", password=PASSWORDS["pharmacist"]), 201)
    body = {"seal_number": SEAL, "serials": [v(1)]}
    ok(api("pharmacist", "POST", f"/shipments/{sscc}/receipt", body), 201)
    stored = ok(
        api("pharmacist", "POST", "/vials/store", {"serials": [v(1)], "location": "LN2-02 C/3"})
    )
    dispensed = ok(
        api("pharmacist", "POST", "/vials/dispense", {"serials": [v(1)], "ward": "SYSU3-SPINE"})
    )
    thawed = ok(api("clinician", "POST", f"/vials/{v(1)}/thaw", {}))
    assert stored == [{"serial": v(1), "state": "stored", "site": "SYSU3-PH"}]
    assert dispensed == [{"serial": v(1), "state": "dispensed", "site": "SYSU3-SPINE"}]
    assert thawed["state"] == "thawed"
    assert dt.datetime.fromisoformat(thawed["use_by"]) - dt.datetime.fromisoformat(
        thawed["thawed_at"]
    ) == dt.timedelta(minutes=120)


def _stored_at_the_pharmacy(api, number: int) -> str:
    sscc = shipped(api, (number,))
    ok(handoff(api, sscc, "pharmacist", "courier", password=PASSWORDS["pharmacist"]), 201)
    body = {"seal_number": SEAL, "serials": [v(number)]}
    ok(api("pharmacist", "POST", f"/shipments/{sscc}/receipt", body), 201)
    ok(api("pharmacist", "POST", "/vials/store", {"serials": [v(number)], "location": "LN2-02"}))
    return v(number)


def _custody_events(app, serial: str) -> int:
    return scalar(
        app,
        select(func.count())
        .select_from(CustodyEvent)
        .where(CustodyEvent.chain == f"vial:{serial}"),
    )


def test_a_pharmacy_dispenses_only_to_the_wards_it_supplies(api, app):
    serial = _stored_at_the_pharmacy(api, 1)
    sites = ok(api("admin", "GET", "/sites"))
    before = _custody_events(app, serial)
    for site in sites:
        if site["supplied_by"] == "SYSU3-PH":
            continue
        answer = api(
            "pharmacist", "POST", "/vials/dispense", {"serials": [serial], "ward": site["code"]}
        )
        refused(answer, 422)
    assert _custody_events(app, serial) == before  # every refusal left the vial's record alone
    assert ok(api("pharmacist", "GET", f"/vials/{serial}"))["state"] == "stored"
    ok(api("pharmacist", "POST", "/vials/dispense", {"serials": [serial], "ward": "SYSU3-SPINE"}))


def test_a_vial_is_thawed_only_where_it_is(api, app):
    stored = _stored_at_the_pharmacy(api, 1)
    dispensed = _stored_at_the_pharmacy(api, 2)
    ok(
        api(
            "pharmacist", "POST", "/vials/dispense", {"serials": [dispensed], "ward": "SYSU3-SPINE"}
        )
    )
    users = ok(api("admin", "GET", "/users"))
    handlers = [u["username"] for u in users if u["role"] in {"pharmacist", "clinician"}]
    counts = {serial: _custody_events(app, serial) for serial in (stored, dispensed)}
    for username in handlers:
        site = next(u["site"] for u in users if u["username"] == username)
        for serial, place in ((stored, "SYSU3-PH"), (dispensed, "SYSU3-SPINE")):
            if site == place:
                continue
            answer = api(username, "POST", f"/vials/{serial}/thaw", {})
            assert answer.status_code in {403, 404, 409, 422}, (username, serial)
    assert {serial: _custody_events(app, serial) for serial in counts} == counts
    ok(api("clinician", "POST", f"/vials/{dispensed}/thaw", {}))
    ok(api("pharmacist", "POST", f"/vials/{stored}/thaw", {}))


def _handlers(api) -> list[tuple[str, str]]:
    """(username, site) of every user whose role handles vials or receives shippers."""
    users = ok(api("admin", "GET", "/users"))
    return [(u["username"], u["site"]) for u in users if u["role"] in {"pharmacist", "clinician"}]


def test_a_vial_is_stored_only_at_the_pharmacy_that_received_it(api, app):
    sscc = shipped(api, (1,))
    ok(handoff(api, sscc, "pharmacist", "courier", password=PASSWORDS["pharmacist"]), 201)
    ok(
        api(
            "pharmacist",
            "POST",
            f"/shipments/{sscc}/receipt",
            {"seal_number": SEAL, "serials": [v(1)]},
        ),
        201,
    )
    before = _custody_events(app, v(1))
    for username, site in _handlers(api):
        if site == "SYSU3-PH":
            continue
        answer = api(username, "POST", "/vials/store", {"serials": [v(1)], "location": "LN2"})
        assert answer.status_code in {403, 404, 409, 422}, (username, answer.json)
    assert _custody_events(app, v(1)) == before
    ok(api("pharmacist", "POST", "/vials/store", {"serials": [v(1)], "location": "LN2-02"}))


def test_a_shipper_is_received_only_at_its_destination(api, app):
    sscc = shipped(api, (1,))
    before = events(app)
    for username, site in _handlers(api):
        if site == "SYSU3-PH":
            continue
        answer = api(
            username, "POST", f"/shipments/{sscc}/receipt", {"seal_number": SEAL, "serials": [v(1)]}
        )
        assert answer.status_code in {403, 404, 409, 422}, (username, answer.json)
    assert events(app) == before  # no refusal moved anything


def test_vials_come_out_of_an_open_shipper_by_post_or_delete(api):
    sscc = created(api, (1, 2, 3))
    after_post = ok(
        api("manufacturing", "POST", f"/shipments/{sscc}/vials/remove", {"serials": [v(1)]})
    )
    after_delete = ok(
        api("manufacturing", "DELETE", f"/shipments/{sscc}/vials", {"serials": [v(2)]})
    )
    assert [vial["serial"] for vial in after_post["vials"]] == [v(2), v(3)]
    assert [vial["serial"] for vial in after_delete["vials"]] == [v(3)]


# Who sees which shipment


def test_each_user_lists_the_shipments_of_their_site_and_those_they_held(api):
    sscc = shipped(api, (1,))
    before = {u: [s["sscc"] for s in ok(api(u, "GET", "/shipments"))] for u in ("courier2", "qa")}
    ok(handoff(api, sscc, "courier2", "courier"), 201)
    after = [s["sscc"] for s in ok(api("courier2", "GET", "/shipments"))]
    assert sscc not in before["courier2"]
    assert sscc in before["qa"]
    assert sscc in after
    assert sscc in [s["sscc"] for s in ok(api("pharmacist", "GET", "/shipments?status=in_transit"))]


def test_a_shipment_of_other_sites_is_not_found(api):
    sscc = shipped(api, (1,))
    hidden = refused(api("amu-pharmacist", "GET", f"/shipments/{sscc}"), 404)
    assert hidden["detail"] == f"No shipment with SSCC {sscc} was found."


def test_only_the_shipping_site_packs_its_shipper(api):
    sscc = created(api, (1,))
    refused(api("amu-pharmacist", "GET", f"/shipments/{sscc}/handoffs"), 404)
    assert api("qa", "POST", f"/shipments/{sscc}/vials", {"serials": [v(2)]}).status_code == 403


# Refusals


def test_refused_vials_are_each_named_with_their_reason(api):
    first = created(api, (1,))
    sscc = ok(
        api("manufacturing", "POST", "/shipments", {"to_site": "SYSU3-PH", "hold_time_hours": 48}),
        201,
    )["sscc"]
    problem = refused(
        api(
            "manufacturing",
            "POST",
            f"/shipments/{sscc}/vials",
            {"serials": [v(1), "XS228-2611-01-V0001"]},
        )
    )
    assert problem["title"] == "Vial cannot be packed"
    assert problem["errors"]["serials"] == [
        f"{v(1)} is packed, not in stock.",
        "XS228-2611-01-V0001: lot XS228-2611-01 is quarantine, not released.",
    ]
    assert first != sscc


def test_an_empty_shipper_cannot_be_sealed(api):
    sscc = ok(
        api("manufacturing", "POST", "/shipments", {"to_site": "SYSU3-PH", "hold_time_hours": 48}),
        201,
    )["sscc"]
    problem = refused(
        api("manufacturing", "POST", f"/shipments/{sscc}/seal", {"seal_number": SEAL})
    )
    assert problem["detail"] == f"Shipper {sscc} is empty; pack vials before sealing it."


def test_a_shipper_is_not_shipped_to_someone_who_is_not_a_courier(api):
    sscc = created(api, (1,))
    ok(api("manufacturing", "POST", f"/shipments/{sscc}/seal", {"seal_number": SEAL}))
    problem = refused(
        api("manufacturing", "POST", f"/shipments/{sscc}/ship", {"courier": "pharmacist"}), 422
    )
    assert problem["errors"] == {"courier": ["pharmacist is not an active courier."]}


def test_a_shipment_to_a_ward_is_refused(api):
    problem = refused(
        api(
            "manufacturing", "POST", "/shipments", {"to_site": "SYSU3-SPINE", "hold_time_hours": 48}
        ),
        422,
    )
    assert problem["detail"] == "SYSU3-SPINE does not receive shipments."


def test_a_refused_handoff_names_the_holder_and_stays_on_the_record(api):
    sscc = shipped(api, (1,))
    problem = refused(handoff(api, sscc, "courier2", "pharmacist"))
    detail = ok(api("qa", "GET", f"/shipments/{sscc}"))
    chain = ok(api("qa", "GET", f"/ledger/chains/shipment:{sscc}"))
    assert problem["title"] == "Handoff refused"
    assert problem["detail"] == (
        f"pharmacist does not hold shipper {sscc}; it is in the custody of Kai Lin."
    )
    assert [r["reason"] for r in detail["refused_handoffs"]] == [problem["detail"]]
    assert chain[-1]["type"] == "HANDOFF_REFUSED"
    assert chain[-1]["body"]["payload"]["taker"] == "courier2"
    assert detail["custodian"]["user"] == "courier"


def test_a_pharmacist_who_does_not_sign_is_refused_and_the_refusal_recorded(api):
    sscc = shipped(api, (1,))
    problem = refused(handoff(api, sscc, "pharmacist", "courier"))
    chain = ok(api("qa", "GET", f"/ledger/chains/shipment:{sscc}"))
    assert "requires the receiver to sign" in problem["detail"]
    assert chain[-1]["type"] == "HANDOFF_REFUSED"


def test_a_handoff_time_in_the_future_is_refused(api):
    sscc = shipped(api, (1,))
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    problem = refused(handoff(api, sscc, "courier2", "courier", occurred_at=future))
    assert problem["detail"] == "The time of the scan is in the future; check the device clock."


def test_a_handoff_needs_the_giver(api):
    sscc = shipped(api, (1,))
    problem = refused(api("courier2", "POST", f"/shipments/{sscc}/handoffs", {}), 422)
    assert "giver" in problem["errors"]


def test_a_wrong_seal_at_receipt_is_refused(api):
    sscc = shipped(api, (1,))
    body = {
        "seal_number": "SEAL-0000",
        "accept_manifest": True,
        "giver": "courier",
        "password": PASSWORDS["pharmacist"],
    }
    problem = refused(api("pharmacist", "POST", f"/shipments/{sscc}/receipt", body))
    detail = ok(api("pharmacist", "GET", f"/shipments/{sscc}"))
    assert problem["detail"].startswith(
        f"Seal SEAL-0000 is not the seal applied at packing ({SEAL})"
    )
    assert (detail["status"], detail["custodian"]["user"]) == ("in_transit", "courier")


def test_receipt_with_one_vial_missing_lists_it(api):
    sscc = shipped(api, (1, 2, 3))
    body = {
        "seal_number": SEAL,
        "serials": [v(1), v(3), v(9)],
        "giver": "courier",
        "password": PASSWORDS["pharmacist"],
    }
    receipt = ok(api("pharmacist", "POST", f"/shipments/{sscc}/receipt", body), 201)
    vial = ok(api("pharmacist", "GET", f"/vials/{v(2)}"))
    assert (receipt["complete"], receipt["missing"], receipt["extra"]) == (False, [v(2)], [v(9)])
    assert vial["state"] == "quarantined"


def test_a_receipt_scans_the_vials_or_accepts_the_manifest(api):
    sscc = shipped(api, (1,))
    problem = refused(
        api("pharmacist", "POST", f"/shipments/{sscc}/receipt", {"seal_number": SEAL}), 422
    )
    assert "serials" in problem["errors"]


def test_a_vial_in_transit_cannot_be_stored(api):
    shipped(api, (1,))
    problem = refused(
        api("pharmacist", "POST", "/vials/store", {"serials": [v(1)], "location": "LN2-02 C/3"})
    )
    assert problem["errors"]["serials"] == [
        f"{v(1)} is not at Third Affiliated Hospital of Sun Yat-sen University, pharmacy."
    ]


# Repeated scans and retries


def test_the_same_handoff_scanned_twice_answers_the_first_handoff(api, app):
    sscc = shipped(api, (1, 2))
    first = handoff(api, sscc, "courier2", "courier")
    recorded = events(app)
    again = handoff(api, sscc, "courier2", "courier")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert events(app) == recorded


def test_a_handoff_retried_with_its_idempotency_key_replays_the_first_answer(api, app):
    sscc = shipped(api, (1, 2))
    key = {"Idempotency-Key": f"handoff-{sscc}-1"}
    body = {"giver": "courier", "occurred_at": dt.datetime.now(dt.UTC).isoformat()}
    taken = api("courier2", "POST", f"/shipments/{sscc}/handoffs", body, **key)
    recorded = events(app)
    replay = api("courier2", "POST", f"/shipments/{sscc}/handoffs", body, **key)
    assert (taken.status_code, replay.status_code) == (201, 201)
    assert replay.get_data() == taken.get_data()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert events(app) == recorded


# Scanning the shipper


def test_a_courier_scanning_a_shipper_in_transit_may_take_custody(client, auth_headers, api):
    sscc = shipped(api, (1, 2))
    answer = scan(client, auth_headers, shipper_uri(base=BASE, sscc=sscc, key=NEW_KEY), "courier2")
    assert (answer["kind"], answer["recognised"], answer["authentication"]) == (
        "shipper",
        True,
        "valid",
    )
    assert (answer["item"]["state"], answer["item"]["custodian"], answer["item"]["vial_count"]) == (
        "in_transit",
        "courier",
        2,
    )
    assert [a["action"] for a in answer["actions"]] == ["take_custody"]
    assert answer["actions"][0]["href"] == f"/api/v1/shipments/{sscc}/handoffs"


def test_the_destination_pharmacist_may_take_custody_and_receive(client, auth_headers, api):
    sscc = shipped(api, (1,))
    answer = scan(client, auth_headers, f"]C100{sscc}", "pharmacist")
    assert [a["action"] for a in answer["actions"]] == ["view_shipment", "take_custody", "receive"]


def test_the_holder_scanning_the_shipper_may_only_view_it(client, auth_headers, api):
    sscc = shipped(api, (1,))
    answer = scan(client, auth_headers, sscc, "courier")
    assert (answer["kind"], answer["identifiers"]) == ("shipper", {"sscc": sscc})
    assert [a["action"] for a in answer["actions"]] == ["view_shipment"]
    assert answer["reason"].startswith(f"Shipper {sscc}, from its typed SSCC")


def test_the_manufacturer_scanning_an_open_shipper_may_pack_and_seal_it(client, auth_headers, api):
    sscc = created(api, (1,))
    answer = scan(client, auth_headers, f"00{sscc}", "manufacturing")
    assert [a["action"] for a in answer["actions"]] == ["view_shipment", "pack_vials", "seal"]


def test_a_shipper_a_user_may_not_see_reads_as_unknown(client, auth_headers, api):
    sscc = shipped(api, (1,))
    answer = scan(client, auth_headers, shipper_uri(base=BASE, sscc=sscc, key=NEW_KEY), "clinician")
    assert (answer["recognised"], answer["item"]) == (False, None)
    assert answer["reason"] == f"No shipment with SSCC {sscc} is known."


# Two-sided handoffs (issue 16, defect 7)


def confirm(api, sscc, who, number=1):
    return api(who, "POST", f"/shipments/{sscc}/handoffs/{number}/confirmation")


def test_the_giver_confirms_a_handoff_on_their_own_device_and_it_becomes_two_sided(api, app):
    sscc = shipped(api, (1, 2))
    taken = ok(handoff(api, sscc, "courier2", "courier"), 201)
    assert (taken["confirmed_by_giver"], taken["confirmed_at"]) == (False, None)
    recorded = events(app)

    confirmed = ok(confirm(api, sscc, "courier"), 201)
    again = ok(confirm(api, sscc, "courier"), 200)  # the scanner fired twice

    assert confirmed["confirmed_by_giver"] is True
    assert again == confirmed
    assert events(app) == recorded + 1  # one HANDOFF_CONFIRMED on the shipment's chain
    listed = ok(api("manufacturing", "GET", f"/shipments/{sscc}/handoffs"))
    assert [h["confirmed_by_giver"] for h in listed] == [True]


@pytest.mark.parametrize("who", ["courier2", "manufacturing", "pharmacist"])
def test_only_the_giver_may_confirm_a_handoff(api, who):
    sscc = shipped(api, (1, 2))
    ok(handoff(api, sscc, "courier2", "courier"), 201)
    response = confirm(api, sscc, who)
    assert response.status_code in {403, 409}
    assert response.mimetype == "application/problem+json"
    assert (
        ok(api("manufacturing", "GET", f"/shipments/{sscc}/handoffs"))[0]["confirmed_by_giver"]
        is False
    )


def test_a_handoff_not_confirmed_in_time_stays_one_sided_and_the_receipt_shows_it(
    api, app, monkeypatch
):
    sscc = shipped(api, (1, 2))
    ok(handoff(api, sscc, "courier2", "courier"), 201)
    ok(handoff(api, sscc, "pharmacist", "courier2", password=PASSWORDS["pharmacist"]), 201)
    ok(confirm(api, sscc, "courier2", number=2), 201)
    later = utcnow() + dt.timedelta(minutes=31)
    monkeypatch.setitem(app.config, "CLOCK", lambda: later)

    late = refused(confirm(api, sscc, "courier"), 409)
    receipt = ok(
        api(
            "pharmacist",
            "POST",
            f"/shipments/{sscc}/receipt",
            {"seal_number": SEAL, "accept_manifest": True},
        ),
        201,
    )

    assert "stays one-sided" in late["detail"]
    assert receipt["one_sided_handoffs"] == [1]
    assert ok(api("pharmacist", "GET", f"/shipments/{sscc}"))["receipt"]["one_sided_handoffs"] == [
        1
    ]


def test_an_unknown_handoff_number_is_404(api):
    sscc = shipped(api, (1,))
    assert refused(confirm(api, sscc, "courier", number=7), 404)


def test_the_giver_confirms_from_the_shipment_page_and_the_receiver_sees_one_sided_handoffs(
    api, app
):
    sscc = shipped(api, (1, 2))
    ok(handoff(api, sscc, "courier2", "courier"), 201)
    with app.test_client() as giver:
        token = sign_in(giver, "courier")
        page = giver.get(f"/shipments/{sscc}").get_data(as_text=True)
        assert 'data-testid="one-sided-1"' in page
        assert f"/shipments/{sscc}/handoffs/1/confirm" in page
        done = giver.post(f"/shipments/{sscc}/handoffs/1/confirm", data={"csrf_token": token})
        assert done.status_code == 303
        page = giver.get(f"/shipments/{sscc}").get_data(as_text=True)
        assert 'data-testid="two-sided-1"' in page
        assert f"/shipments/{sscc}/handoffs/1/confirm" not in page
    ok(handoff(api, sscc, "pharmacist", "courier2", password=PASSWORDS["pharmacist"]), 201)
    with app.test_client() as receiver:
        sign_in(receiver, "pharmacist")
        step = receiver.get(f"/shipments/{sscc}/receive").get_data(as_text=True)
        assert 'data-testid="one-sided-at-receipt"' in step
        assert "Handoff 2 on the taker" in step


# Custody paths, walked over every site and every user of the demo: each movement a place or
# a person that custody does not allow is refused, and nothing moves.

DEMO_PASSWORDS = {user.username: user.password for user in demo.USERS}


def _people(api) -> list[dict]:
    return ok(api("admin", "GET", "/users"))


def test_a_shipment_goes_only_to_another_site_that_receives_shipments(api, app):
    shipping_site = next(u["site"] for u in _people(api) if u["username"] == "manufacturing")
    receiving = {kind.value for kind in RECEIVING_KINDS}
    for site in ok(api("admin", "GET", "/sites")):
        before = scalar(app, select(func.count(Shipment.id)))
        answer = api(
            "manufacturing", "POST", "/shipments", {"to_site": site["code"], "hold_time_hours": 48}
        )
        allowed = site["kind"] in receiving and site["code"] != shipping_site
        if allowed:
            ok(answer, 201)
        else:
            refused(answer, 422)
            assert scalar(app, select(func.count(Shipment.id))) == before, site["code"]


def test_only_a_manufacturer_of_the_shipping_site_packs_or_unpacks_its_shipper(api):
    sscc = created(api, (1,))
    for person in _people(api):
        if person["role"] == "manufacturing" and person["site"] == "XSM-SZ":
            continue
        packing = api(person["username"], "POST", f"/shipments/{sscc}/vials", {"serials": [v(2)]})
        unpacking = api(
            person["username"], "DELETE", f"/shipments/{sscc}/vials", {"serials": [v(1)]}
        )
        for answer in (packing, unpacking):
            assert answer.status_code in {403, 404}, (person["username"], answer.json)
            assert answer.mimetype == "application/problem+json"
    serials = [
        row["serial"] for row in ok(api("manufacturing", "GET", f"/shipments/{sscc}"))["vials"]
    ]
    assert serials == [v(1)]  # no refusal packed or unpacked anything
    ok(api("kit-packer", "POST", f"/shipments/{sscc}/vials", {"serials": [v(2)]}))


def test_custody_of_a_shipper_in_transit_passes_only_to_a_courier_or_its_destination(api, app):
    sscc = shipped(api, (1,))
    people = _people(api)
    allowed = {
        u["username"]
        for u in people
        if u["role"] == "courier" or (u["role"] == "pharmacist" and u["site"] == "SYSU3-PH")
    } - {"courier"}
    chain_before = len(ok(api("qa", "GET", f"/ledger/chains/shipment:{sscc}")))
    recorded = []
    for person in people:
        name = person["username"]
        if name in allowed or name == "courier":
            continue
        answer = handoff(api, sscc, name, "courier", password=DEMO_PASSWORDS[name])
        assert answer.status_code in {403, 404, 409}, (name, answer.json)
        if answer.status_code == 409:  # a custody claim the chain refuses is on the record
            recorded.append(name)
    detail = ok(api("qa", "GET", f"/shipments/{sscc}"))
    chain = ok(api("qa", "GET", f"/ledger/chains/shipment:{sscc}"))
    assert detail["custodian"]["user"] == "courier"
    assert [r["taker"] for r in detail["refused_handoffs"]] == recorded
    assert [e["type"] for e in chain[chain_before:]] == ["HANDOFF_REFUSED"] * len(recorded)
    assert "amu-pharmacist" in recorded  # a pharmacy other than the destination is refused
    for index, name in enumerate(sorted(allowed)):  # each allowed taker, on its own shipper
        other = shipped(api, (2 + index,))
        ok(handoff(api, other, name, "courier", password=DEMO_PASSWORDS[name]), 201)
