"""The Certificate of Analysis, read back from the PDF's text."""

from __future__ import annotations

import io

from pypdf import PdfReader

from custody.manufacturing import (
    ExceptionalRequest,
    current_results,
    decide,
    recall,
    record_result,
    render_coa,
)
from lots.accounts import create_user, get_user
from lots.base import utcnow
from tests.worlds.manufacturing import (
    HASHER,
    TEST_PASSWORD,
    enter_results,
    lot_in_quarantine,
    made_lot,
    oos_confirmed,
    password,
)

MEANING = "Released for clinical use (QA)"


def pdf_text(pdf: bytes) -> str:
    """Every page's text, with runs of whitespace (line wraps included) as one space."""
    pages = PdfReader(io.BytesIO(pdf)).pages
    return " ".join(" ".join(page.extract_text().split()) for page in pages)


def released_lot(session, number, *, by="qa", **changed):
    """A lot made, tested by the demo QC analyst and released."""
    lot = lot_in_quarantine(session, number)
    enter_results(session, number, **changed)
    decision = decide(
        session,
        HASHER,
        get_user(session, by),
        number,
        decision="release",
        password=password(by),
        meaning=MEANING,
    )
    return lot, decision


def test_the_coa_of_a_released_lot_shows_what_was_made_tested_and_signed(session):
    lot, decision = released_lot(session, "COA-2612-01")
    pdf = render_coa(session, lot)
    text = pdf_text(pdf)
    assert pdf.startswith(b"%PDF-")
    assert "Certificate of Analysis" in text
    assert "XS228 — XS228 Cell Injection (iPSC-derived spinal neural progenitor cells)" in text
    assert "COA-2612-01" in text
    for line in lot.product_version.specification:
        assert line.test in text
    assert "91.5 %" in text
    assert "Li Wei" in text
    assert MEANING in text
    assert decision.event_hash in text
    assert "NOT RELEASED" not in text


def test_the_coa_shows_each_acceptance_criterion_and_conformance(session):
    lot, _ = released_lot(session, "COA-2612-02")
    text = pdf_text(render_coa(session, lot))
    assert "≥ 70 %" in text
    assert "< 1 %" in text
    assert "≤ 0.2 EU/kg" in text
    assert text.count("Conforms") == len(lot.product_version.specification)


def test_the_coa_names_the_bank_its_genealogy_and_the_dates(session):
    lot, _ = released_lot(session, "COA-2612-03")
    text = pdf_text(render_coa(session, lot))
    assert "XS-WCB-01 (working, passage 20), made from XS-MCB-01 (master, passage 15)" in text
    assert lot.expires_on.isoformat() in text
    assert f"{lot.manufacture_end:%Y-%m-%d %H:%M:%S} UTC" in text
    assert "10,000,000" in text


def test_the_coa_of_a_donor_lot_names_the_donor(session):
    lot = made_lot(session, "COA-2612-04", product="UCMSC-REG", bank="UC-D017-WCB-01")
    text = pdf_text(render_coa(session, lot))
    assert "UCD-2025-017 (eligibility: eligible)" in text
    assert "CD73 positive" in text


def test_the_coa_of_a_lot_in_quarantine_says_not_released(session):
    lot = lot_in_quarantine(session, "COA-2612-05")
    text = pdf_text(render_coa(session, lot))
    assert "NOT RELEASED — status quarantine" in text
    assert "No result" in text
    assert "No QA decision has been signed" in text


def test_the_coa_of_a_recalled_lot_says_not_released_and_keeps_both_signatures(session):
    lot, released = released_lot(session, "COA-2612-06")
    [recalled] = recall(
        session,
        HASHER,
        get_user(session, "qa"),
        scope="lot",
        code="COA-2612-06",
        reason="Shipping temperature excursion",
        password=password("qa"),
    )
    text = pdf_text(render_coa(session, lot))
    assert "NOT RELEASED — status recalled" in text
    assert released.event_hash in text
    assert recalled.event_hash in text
    assert "Shipping temperature excursion" in text


def test_a_superseded_result_is_listed_as_a_correction_not_as_current(session):
    lot = lot_in_quarantine(session, "COA-2612-07")
    enter_results(session, "COA-2612-07", Viability="95.1")
    first = current_results(session, lot)["Viability"]
    record_result(
        session,
        get_user(session, "qc"),
        "COA-2612-07",
        test="Viability",
        value="91.5",
        unit="%",
        method=None,
        tested_at=utcnow(),
        supersedes=first.id,
        reason="Digits swapped on transcription",
    )
    text = pdf_text(render_coa(session, lot))
    results_table = text.split("Specification and results")[1].split("Corrections")[0]
    assert "91.5 %" in results_table
    assert "95.1" not in results_table
    assert "Digits swapped on transcription" in text.split("Corrections")[1]


def test_the_coa_of_an_exceptional_release_names_the_subject_and_the_oos_result(session):
    lot = lot_in_quarantine(session, "COA-2612-08")
    enter_results(session, "COA-2612-08", Viability="61")
    oos_confirmed(session, "COA-2612-08")
    decide(
        session,
        HASHER,
        get_user(session, "qa"),
        "COA-2612-08",
        decision="exceptional_release",
        password=password("qa"),
        meaning="Exceptional release for one subject",
        exceptional=ExceptionalRequest(
            "NCT06976229", "XS-CN-0007", "Dr. Dong Jianwen", "REQ-114", "Accepted"
        ),
    )
    text = pdf_text(render_coa(session, lot))
    assert "EXCEPTIONAL RELEASE" in text
    assert "for subject XS-CN-0007 only" in text
    assert "61 % (Qiu Chen" in text
    assert "OUT OF SPECIFICATION" in text
    investigations = text.split("Out-of-specification investigations")[1]
    assert "OOS-COA-2612-08-01" in "".join(investigations.split())  # wrapped in its column
    assert "Viability 61" in investigations
    assert "confirmed" in investigations
    assert "No laboratory error: the result stands." in investigations


def test_a_signers_name_in_chinese_is_printed_as_written(session):
    create_user(
        session,
        HASHER,
        actor="admin",
        username="qa-li",
        full_name="李伟",
        role="qa",
        site_code="XSM-SZ",
        password=TEST_PASSWORD,
    )
    lot, _ = released_lot(session, "COA-2612-09", by="qa-li")
    assert "李伟" in pdf_text(render_coa(session, lot))
