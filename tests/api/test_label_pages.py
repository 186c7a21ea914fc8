"""The label pages through the Flask test client: a scanned Digital Link opened in a browser,
the vial page, and the lot page's label reconciliation and print form."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.keys import label_keys
from custody.manufacturing import LabelPrint, LabelPrintJob, get_lot, print_labels
from labels.keys import LabelKey
from labels.payload import shipper_uri, sscc_from, vial_uri
from lots.accounts import get_user
from lots.batch import LotStatus, Vial
from tests.worlds.pages import sign_in

BASE = "https://trail.example.org"
RELEASED = "XS228-2610-01"
QUARANTINED = "XS228-2611-01"
OTHER_PRODUCT_LOT = "UCR-2611-01"
VIAL = f"{RELEASED}-V0001"
FORGED_KEY = LabelKey("t1", b"not-celltrail-s-key-but-32-bytes-long!!")


def local(uri: str) -> str:
    """The path and query of a printed link: what reaches the app behind the public base."""
    parts = urlsplit(uri)
    return f"{parts.path}?{parts.query}"


def link(
    session: Session,
    app: Flask,
    *,
    lot: str = RELEASED,
    serial: str = VIAL,
    gtin: str | None = None,
    key: LabelKey | None = None,
) -> str:
    """The Digital Link a label of `serial` carries (or would carry, for made-up facts)."""
    found = get_lot(session, lot)
    return local(
        vial_uri(
            base=BASE,
            gtin=gtin or found.product.gtin,
            lot=lot,
            serial=serial,
            expiry=found.expires_on,
            key=key or label_keys(app)[0],
        )
    )


def refusal(response) -> str:
    page = response.get_data(as_text=True)
    assert 'data-testid="refusal"' in page, page
    return page


# --- Digital Link in a browser ------------------------------------------------------------------


def test_a_demo_vials_link_opens_the_vial_page_after_sign_in(client, session, app):
    sign_in(client, "qa")

    response = client.get(link(session, app))

    assert response.status_code == 303
    assert response.headers["Location"] == f"/vials/{VIAL}"


def test_a_label_signed_with_the_older_trusted_key_still_opens(client, session, app):
    sign_in(client, "manufacturing")

    response = client.get(link(session, app, key=label_keys(app)[1]))

    assert response.status_code == 303
    assert response.headers["Location"] == f"/vials/{VIAL}"


def test_a_vial_of_a_site_the_user_may_not_see_is_as_unknown_as_a_made_up_one(client, session, app):
    sign_in(client, "pharmacist")  # the hospital never held this lot

    response = client.get(link(session, app))

    assert response.status_code == 404
    assert f"celltrail has no record of vial {VIAL}." in refusal(response)


def test_the_link_without_the_lot_is_routed_and_refused_as_not_printed_by_celltrail(
    client, session, app
):
    sign_in(client, "qa")
    found = get_lot(session, RELEASED)
    query = parse_qs(urlsplit(link(session, app)).query)

    response = client.get(
        f"/01/{found.product.gtin.rjust(14, '0')}/21/{VIAL}?17={query['17'][0]}&ac={query['ac'][0]}"
    )

    assert response.status_code == 409
    assert "altered or forged" in refusal(response)


def test_an_anonymous_scan_goes_to_sign_in_with_the_whole_link_kept(client, session, app):
    scanned = link(session, app)

    response = client.get(scanned)

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [scanned]

    sign_in_page = client.get(response.headers["Location"]).get_data(as_text=True)
    token = sign_in_page.split('name="csrf_token" value="')[1].split('"')[0]
    signed_in = client.post(
        response.headers["Location"],
        data={"username": "qa", "password": "qa-demo-2026", "csrf_token": token},
    )
    assert signed_in.headers["Location"] == scanned
    assert client.get(scanned).headers["Location"] == f"/vials/{VIAL}"


def test_the_host_header_does_not_change_what_is_verified(client, session, app):
    # Behind a proxy the Host is the upstream's; the configured public URL is what was printed.
    upstream = "http://10.0.0.7:8000"
    page = client.get("/login", base_url=upstream).get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(
        "/login",
        base_url=upstream,
        data={"username": "qa", "password": "qa-demo-2026", "csrf_token": token},
    )

    response = client.get(link(session, app), base_url=upstream)

    assert response.status_code == 303


@pytest.mark.parametrize(
    ("tamper", "sentence"),
    [
        pytest.param(
            lambda path: path.replace("V0001", "V0002"),
            "this label was altered or forged",
            id="serial changed",
        ),
        pytest.param(
            lambda path: re.sub(r"\?17=(\d\d)", lambda m: f"?17={int(m[1]) + 1}", path),
            "this label was altered or forged",
            id="expiry changed",
        ),
        pytest.param(lambda path: path.split("&ac=")[0], "has no authentication code", id="no ac"),
        pytest.param(
            lambda path: path.replace("ac=t1.", "ac=t9."), "does not trust", id="unknown key"
        ),
    ],
)
def test_a_forged_or_altered_link_shows_the_refusal_and_never_redirects(
    client, session, app, tamper, sentence
):
    sign_in(client, "qa")

    response = client.get(tamper(link(session, app)))

    page = refusal(response)
    assert response.status_code == 409
    assert "Location" not in response.headers
    assert "This label could not be verified: " in page
    assert sentence in page
    assert f'href="/vials/{VIAL}"' not in page


def test_a_link_signed_with_a_foreign_key_is_refused(client, session, app):
    sign_in(client, "qa")

    response = client.get(link(session, app, key=FORGED_KEY))

    assert response.status_code == 409
    assert "altered or forged" in refusal(response)


def test_an_authentic_link_to_a_vial_that_does_not_exist_is_unknown(client, session, app):
    sign_in(client, "qa")

    response = client.get(link(session, app, serial=f"{RELEASED}-V0999"))

    assert response.status_code == 404
    assert f"celltrail has no record of vial {RELEASED}-V0999." in refusal(response)


def test_a_serial_that_its_lot_does_not_own_is_refused(client, session, app):
    sign_in(client, "qa")

    response = client.get(link(session, app, lot=QUARANTINED, serial=VIAL))

    assert response.status_code == 409
    assert f"Vial {VIAL} does not belong to lot {QUARANTINED}." in refusal(response)


def test_a_gtin_that_is_not_the_vials_product_is_refused(client, session, app):
    sign_in(client, "qa")
    other = get_lot(session, OTHER_PRODUCT_LOT).product.gtin

    response = client.get(link(session, app, gtin=other))

    assert response.status_code == 409
    assert f"is not the product of vial {VIAL}." in refusal(response)


def test_a_gtin_with_a_wrong_check_digit_is_refused_not_a_500(client, session, app):
    sign_in(client, "qa")
    path = link(session, app)
    gtin = path.split("/")[2]
    broken = gtin[:-1] + str((int(gtin[-1]) + 1) % 10)

    response = client.get(path.replace(gtin, broken))

    assert response.status_code == 409
    assert "wrong check digit" in refusal(response)


def test_a_shippers_link_opens_the_scan_page_which_says_when_no_shipment_is_known(client, app):
    sign_in(client, "courier")
    sscc = sscc_from("0950600", 42)

    response = client.get(local(shipper_uri(base=BASE, sscc=sscc, key=label_keys(app)[0])))
    page = client.get(response.location).get_data(as_text=True)

    assert response.status_code == 303
    assert f"No shipment with SSCC {sscc} is known." in page


def test_a_forged_or_malformed_sscc_is_refused_never_a_500(client, app):
    sign_in(client, "courier")
    sscc = sscc_from("0950600", 42)
    signed = local(shipper_uri(base=BASE, sscc=sscc, key=label_keys(app)[0]))

    forged = client.get(signed.replace(sscc, sscc_from("0950600", 43)))
    malformed = client.get("/00/12345?ac=t1.AAAAAAAAAAAAA")

    assert forged.status_code == 409
    assert "altered or forged" in refusal(forged)
    assert malformed.status_code == 409
    refusal(malformed)


# --- The vial page ------------------------------------------------------------------------------


def test_the_vial_page_shows_the_facts_the_state_and_the_custody_timeline(client, session):
    sign_in(client, "qc")
    found = get_lot(session, RELEASED)

    page = client.get(f"/vials/{VIAL}").get_data(as_text=True)

    assert f'data-testid="serial">{VIAL}<' in page
    assert 'data-testid="vial-state">IN STOCK<' in page
    assert f'href="/lots/{RELEASED}"' in page
    assert found.expires_on.isoformat() in page
    assert found.product_version.name in page
    timeline = page.split('data-testid="vial-timeline"')[1].split("</ol>")[0]
    assert "COMMISSIONED" in timeline
    assert "Meng Zhao" in timeline
    assert "XellSmart Biopharmaceutical, Suzhou" in timeline
    assert "No label has been printed for this vial." in page


def test_a_recalled_lots_vial_shows_quarantined_in_red(client, session):
    sign_in(client, "qa")
    found = get_lot(session, RELEASED)
    found.status = LotStatus.RECALLED
    session.commit()

    page = client.get(f"/vials/{VIAL}").get_data(as_text=True)

    assert 'class="vial-state state-quarantined" data-testid="vial-state">QUARANTINED<' in page
    assert "do not use this vial" in page


def test_the_vial_page_lists_the_labels_printed_for_it_live_and_replaced(client, session, app):
    sign_in(client, "qc")
    qa = get_user(session, "qa")
    for reason in (None, "Label smudged during thaw-room handling"):
        print_labels(
            session,
            qa,
            RELEASED,
            fmt="zpl",
            base=BASE,
            key=label_keys(app)[0],
            serials=[VIAL],
            reason=reason,
        )
    session.commit()

    page = client.get(f"/vials/{VIAL}").get_data(as_text=True)
    table = page.split('data-testid="vial-labels"')[1].split("</table>")[0]

    assert table.count("<tr") == 3  # header, the replaced label, the live one
    assert "Replaced by #" in table
    assert "Live" in table
    assert "Label smudged during thaw-room handling" in table


def test_a_vial_of_another_site_is_not_found_and_an_unknown_one_neither(client):
    sign_in(client, "pharmacist")

    assert client.get(f"/vials/{VIAL}").status_code == 404
    assert client.get("/vials/NOPE-V0001").status_code == 404


# --- The lot page's labels section and print form ------------------------------------------------


def test_the_lot_page_flags_vials_without_a_label_and_with_several_live_labels(
    client, session, app
):
    qa = get_user(session, "qa")
    first, second, third = (f"{RELEASED}-V{n:04d}" for n in (1, 2, 3))
    print_labels(
        session, qa, RELEASED, fmt="zpl", base=BASE, key=label_keys(app)[0], serials=[first]
    )
    print_labels(
        session,
        qa,
        RELEASED,
        fmt="zpl",
        base=BASE,
        key=label_keys(app)[0],
        serials=[first, second],
        reason="Ribbon ran out mid-job",
    )
    # A second live label for `second`: printed outside celltrail's reprint rule, e.g. a
    # label record restored from a backup; the page must show it.
    job = session.scalars(select(LabelPrintJob).order_by(LabelPrintJob.id.desc())).first()
    vial_id = session.scalar(select(Vial.id).where(Vial.serial == second))
    session.add(LabelPrint(job_id=job.id, vial_id=vial_id))
    session.commit()
    sign_in(client, "qc")

    page = client.get(f"/lots/{RELEASED}").get_data(as_text=True)

    assert 'data-testid="labels-printed">4<' in page
    assert 'data-testid="labels-vials">24<' in page
    assert 'data-testid="labels-reprints">1<' in page
    unlabelled = page.split('data-testid="unlabelled"')[1].split("</ul>")[0]
    several = page.split('data-testid="several-live"')[1].split("</ul>")[0]
    assert "22 of 24 vials have no label" in page
    assert third in unlabelled
    assert first not in unlabelled
    assert second in several
    assert "Ribbon ran out mid-job" in page
    assert 'data-testid="print-form"' not in page  # QC does not print labels


def test_the_print_form_downloads_a_pdf_and_records_the_job(client, session):
    token = sign_in(client, "qa")
    jobs_before = session.scalar(select(func.count(LabelPrintJob.id)))

    response = client.post(
        f"/lots/{RELEASED}/labels",
        data={"csrf_token": token, "format": "pdf", "layout": "a4", "dpi": "300"},
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert response.headers["Content-Disposition"].startswith(
        f'attachment; filename="labels-{RELEASED}-job'
    )
    job = session.scalars(select(LabelPrintJob).order_by(LabelPrintJob.id.desc())).first()
    assert session.scalar(select(func.count(LabelPrintJob.id))) == jobs_before + 1
    assert (job.format, job.layout, job.label_count, job.printed_by.username) == (
        "pdf",
        "a4",
        24,
        "qa",
    )
    page = client.get(f"/lots/{RELEASED}").get_data(as_text=True)
    assert "every vial labelled" in page


def test_the_print_form_prints_zpl_for_the_unlabelled_vials_only(client, session, app):
    qa = get_user(session, "qa")
    print_labels(
        session, qa, RELEASED, fmt="zpl", base=BASE, key=label_keys(app)[0], serials=[VIAL]
    )
    session.commit()
    token = sign_in(client, "manufacturing")

    response = client.post(
        f"/lots/{RELEASED}/labels",
        data={"csrf_token": token, "format": "zpl", "dpi": "203", "vials": "unlabelled"},
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.data.count(b"^XA") == 23
    assert client.get(f"/lots/{RELEASED}").get_data(as_text=True).count("every vial labelled") == 1


def test_a_reprint_without_a_reason_is_refused_on_the_lot_page(client, session):
    token = sign_in(client, "qa")
    data = {"csrf_token": token, "format": "pdf", "layout": "roll", "dpi": "300"}
    assert client.post(f"/lots/{RELEASED}/labels", data=data).status_code == 200
    jobs = session.scalar(select(func.count(LabelPrintJob.id)))

    response = client.post(f"/lots/{RELEASED}/labels", data=data)

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert response.mimetype == "text/html"
    assert 'data-testid="labels-errors"' in page
    assert "a reprint states its reason" in page
    assert session.scalar(select(func.count(LabelPrintJob.id))) == jobs
    assert '<option value="roll" selected>' in page  # the refused choices are kept


def test_a_lot_in_process_does_not_print_and_its_form_is_disabled(client, session):
    token = sign_in(client, "qa")
    found = get_lot(session, QUARANTINED)
    found.status = LotStatus.REJECTED
    session.commit()

    page = client.get(f"/lots/{QUARANTINED}").get_data(as_text=True)
    response = client.post(
        f"/lots/{QUARANTINED}/labels", data={"csrf_token": token, "format": "pdf"}
    )

    assert 'data-testid="not-printable"' in page
    assert "<fieldset disabled>" in page
    assert response.status_code == 409
    assert "only released or quarantined lots print labels" in response.get_data(as_text=True)


def test_a_bad_print_form_is_refused_with_its_reason(client):
    token = sign_in(client, "qa")

    response = client.post(
        f"/lots/{RELEASED}/labels",
        data={"csrf_token": token, "format": "png", "dpi": "600", "vials": "listed"},
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Choose PDF or ZPL." in page
    assert "Choose the printer&#39;s 203 or 300 dpi." in page
    listed = client.post(
        f"/lots/{RELEASED}/labels",
        data={"csrf_token": token, "format": "pdf", "vials": "listed"},
    )
    assert listed.status_code == 422
    assert "List the serials of the vials to print." in listed.get_data(as_text=True)


def test_a_clinician_may_not_print(client):
    token = sign_in(client, "clinician")

    response = client.post(f"/lots/{RELEASED}/labels", data={"csrf_token": token, "format": "pdf"})

    assert response.status_code == 403


def test_the_quarantined_lot_prints_with_the_mark_noted(client, session):
    token = sign_in(client, "qa")

    response = client.post(
        f"/lots/{QUARANTINED}/labels", data={"csrf_token": token, "format": "zpl", "dpi": "300"}
    )

    assert response.status_code == 200
    page = client.get(f"/lots/{QUARANTINED}").get_data(as_text=True)
    jobs = page.split('data-testid="print-jobs"')[1].split("</table>")[0]
    assert "QUARANTINE mark" in jobs
    assert "Li Wei" in jobs


def test_one_damaged_label_is_reprinted_by_serial_with_its_reason(client, session, app):
    qa = get_user(session, "qa")
    print_labels(session, qa, RELEASED, fmt="pdf", base=BASE, key=label_keys(app)[0])
    session.commit()
    token = sign_in(client, "qa")
    data = {"csrf_token": token, "format": "zpl", "vials": "listed", "serials": VIAL}

    unknown = client.post(f"/lots/{RELEASED}/labels", data={**data, "serials": "NOPE-V0001"})
    reprint = client.post(
        f"/lots/{RELEASED}/labels", data={**data, "reason": "Label torn when the box was opened"}
    )

    assert unknown.status_code == 422
    assert "Not vials of lot" in unknown.get_data(as_text=True)
    assert reprint.status_code == 200
    assert reprint.data.count(b"^XA") == 1
    page = client.get(f"/lots/{RELEASED}").get_data(as_text=True)
    assert 'data-testid="labels-reprints">1<' in page
    assert "every vial labelled" in page
    assert "Label torn when the box was opened" in page
