"""Wristbands are authenticated like vial labels: celltrail prints each subject's wristband
with its authentication code, and the bedside judges a plain wristband (a bare code or GSRN)
NO-GO unless the site has explicitly allowed plain wristbands, and then every GO says so."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image

from custody.trials import print_wristband
from lots.accounts import get_site, get_user
from lots.base import utcnow
from tests.worlds.bedside import (
    BASE,
    KEYS,
    SUBJECT,
    TRIAL,
    check,
    enrol_patient,
    failed,
    thawed_at_the_ward,
)


def _printed(session, fmt="png") -> bytes:
    content, _ = print_wristband(
        session, get_user(session, "clinician"), TRIAL, SUBJECT, fmt=fmt, base=BASE,
        key=KEYS[0], now=utcnow(),
    )  # fmt: skip
    return content


def test_a_printed_wristband_decodes_to_an_authenticated_code_that_is_go(session):
    enrol_patient(session)
    thawed_at_the_ward(session)
    (code,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(_printed(session))))
    bedside = check(session, band=code.text)
    assert (bedside.outcome, failed(bedside)) == ("GO", {})
    assert _printed(session, "pdf").startswith(b"%PDF")
    assert _printed(session, "zpl").startswith(b"^XA")


def test_a_plain_wristband_is_no_go_where_the_site_has_not_allowed_them(session):
    enrol_patient(session)
    thawed_at_the_ward(session)
    bedside = check(session, band=SUBJECT)
    assert bedside.outcome == "NO-GO"
    assert "no authentication code" in failed(bedside)["wristband"]


def test_where_plain_wristbands_are_allowed_the_go_says_so(session):
    enrol_patient(session)
    thawed_at_the_ward(session)
    get_site(session, "SYSU3-SPINE").plain_wristbands_allowed = True
    session.flush()
    bedside = check(session, band=SUBJECT)
    assert bedside.outcome == "GO"
    (line,) = [c["sentence"] for c in bedside.checks if c["name"] == "wristband"]
    assert "a plain wristband, which this site allows" in line
