"""`celltrail labels render`: the file a label printer gets, and the print recorded against
the person named by --as. The runner's session joins the test's rolled-back transaction."""

from __future__ import annotations

import io

import pytest
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from PIL import Image
from sqlalchemy import func, select

from custody.manufacturing import LabelPrint, LabelPrintJob
from labels.keys import parse_label_keys
from labels.payload import vial_uri
from lots.accounts import get_user
from tests.worlds.config import TEST_CONFIG, TEST_LABEL_KEYS
from tests.worlds.labels import EXPIRY, FIRST, RELEASED, XS228_GTIN, decoded, pdf_pages

QUARANTINED = "XS228-2611-01"


@pytest.fixture
def session(app):
    """A session in the test's transaction, outside any app context (see test_ledger_cli)."""
    with app.extensions["celltrail.db"].sessions() as session:
        yield session


def render(runner, *args: str):
    return runner.invoke(args=["labels", "render", *args])


# Browser tests commit print jobs of their own lots to the shared database: count only
# what this test printed.
_BEFORE = {"job": 0, "label": 0}


@pytest.fixture(autouse=True)
def _only_this_tests_prints(session):
    _BEFORE["job"] = session.scalar(select(func.max(LabelPrintJob.id))) or 0
    _BEFORE["label"] = session.scalar(select(func.max(LabelPrint.id))) or 0


def jobs(session) -> list[LabelPrintJob]:
    session.expire_all()
    return list(
        session.scalars(
            select(LabelPrintJob)
            .where(LabelPrintJob.id > _BEFORE["job"])
            .order_by(LabelPrintJob.id)
        )
    )


def label_count(session) -> int:
    return session.scalar(
        select(func.count()).select_from(LabelPrint).where(LabelPrint.id > _BEFORE["label"])
    )


def test_qa_renders_the_released_lot_as_a_pdf_with_a_progress_bar_and_the_print_is_recorded(
    runner, session, tmp_path
):
    output = tmp_path / "labels.pdf"
    result = render(runner, RELEASED, "--format", "pdf", "--as", "qa", "--output", str(output))
    [barcode] = decoded(pdf_pages(output.read_bytes())[0])
    [job] = jobs(session)
    assert result.exit_code == 0, result.output
    assert f"Rendering labels of {RELEASED}" in result.output
    assert f"24 label(s) of lot {RELEASED} written to {output} (print job {job.id})." in (
        result.output
    )
    assert barcode.text == vial_uri(
        base=TEST_CONFIG["PUBLIC_URL"],
        gtin=XS228_GTIN,
        lot=RELEASED,
        serial=FIRST,
        expiry=EXPIRY,
        key=parse_label_keys(TEST_LABEL_KEYS)[0],
    )
    assert GS1DigitalLinkURI.parse(barcode.text).element_strings[2].value == FIRST
    assert (job.printed_by.username, job.format, job.layout, job.label_count) == (
        "qa",
        "pdf",
        "roll",
        24,
    )
    assert label_count(session) == 24


def test_the_default_file_is_named_after_the_lot(runner, session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = render(runner, QUARANTINED, "--format", "zpl", "--dpi", "203", "--as", "qa")
    zpl = (tmp_path / f"{QUARANTINED}-labels.zpl").read_text(encoding="utf-8")
    assert result.exit_code == 0, result.output
    assert zpl.count("^XA") == 24
    assert "^GFA," in zpl  # the QR as a bitmap of whole printer dots
    assert "QUARANTINE" in zpl


def test_one_vials_png_label_decodes(runner, session, tmp_path):
    output = tmp_path / "one.png"
    result = render(
        runner, RELEASED, "--format", "png", "--serial", FIRST, "--as", "manufacturing",
        "--output", str(output),
    )  # fmt: skip
    [barcode] = decoded(Image.open(io.BytesIO(output.read_bytes())))
    assert result.exit_code == 0, result.output
    assert GS1DigitalLinkURI.parse(barcode.text).element_strings[2].value == FIRST
    assert jobs(session)[0].printed_by.username == "manufacturing"


def test_the_printing_person_must_be_named(runner, session, tmp_path):
    result = render(runner, RELEASED, "--format", "pdf", "--output", str(tmp_path / "x.pdf"))
    assert result.exit_code == 2
    assert "Missing option '--as'" in result.output
    assert jobs(session) == []


def test_a_reprint_needs_a_reason_and_with_one_it_replaces_the_labels(runner, session, tmp_path):
    first = render(
        runner, RELEASED, "--format", "zpl", "--as", "qa", "--output", str(tmp_path / "1")
    )
    again = render(
        runner, RELEASED, "--format", "zpl", "--as", "qa", "--output", str(tmp_path / "2")
    )
    reason = "Label torn when the vial was moved to rack B."
    reprint = render(
        runner, RELEASED, "--format", "zpl", "--as", "qa", "--serial", FIRST,
        "--reason", reason, "--output", str(tmp_path / "3"),
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    assert again.exit_code == 1
    assert "already have a label" in again.output
    assert "a reprint states its reason" in again.output
    assert not (tmp_path / "2").exists()
    assert reprint.exit_code == 0, reprint.output
    assert [job.reason for job in jobs(session)] == [None, reason]
    assert label_count(session) == 25


def test_a_recalled_lot_is_refused_with_the_reason_and_nothing_is_written(
    runner, session, tmp_path, client, auth_headers
):
    from tests.worlds.api import recall  # noqa: PLC0415 - an API step in a CLI test

    assert recall(client, auth_headers, "lot", RELEASED).status_code == 201
    output = tmp_path / "recalled.pdf"
    result = render(runner, RELEASED, "--format", "pdf", "--as", "qa", "--output", str(output))
    assert result.exit_code == 1
    assert (
        f"Lot {RELEASED} is recalled: only released or quarantined lots print labels."
        in result.output
    )
    assert not output.exists()
    assert jobs(session) == []


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("courier", "courier"),  # the role may not print
        ("nobody", "No user nobody was found."),
    ],
)
def test_only_a_known_user_allowed_to_print_labels_prints(
    runner, session, tmp_path, username, message
):
    result = render(
        runner, RELEASED, "--format", "pdf", "--as", username, "--output", str(tmp_path / "x")
    )
    assert result.exit_code == 1
    assert message in result.output
    assert jobs(session) == []


def test_a_deactivated_user_prints_nothing(runner, session, tmp_path):
    get_user(session, "manufacturing").active = False
    session.flush()
    result = render(
        runner, RELEASED, "--format", "pdf", "--as", "manufacturing", "--output",
        str(tmp_path / "x"),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "User manufacturing is deactivated." in result.output
    assert jobs(session) == []
