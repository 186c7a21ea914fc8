"""What a printed vial label says, through the print service: the product version's label
name and storage limit in full, and a refusal, recording nothing, when a required element
cannot fit."""

from __future__ import annotations

import pypdfium2 as pdfium
import pytest
from sqlalchemy import func, select

from custody.manufacturing import LabelPrint, LabelsNotRenderableError, print_labels
from lots.accounts import get_user
from lots.products import SPEC_FIELDS, VERSIONED_FIELDS, add_product_version, get_product
from tests.worlds.bedside import BASE, KEYS, released_lot

RELEASED = "XS228-2610-01"


def _text(pdf: bytes) -> list[str]:
    document = pdfium.PdfDocument(pdf)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document).splitlines()
    finally:
        document.close()


def _print(session, lot: str):
    return print_labels(
        session, get_user(session, "qa"), lot, fmt="pdf", base=BASE, key=KEYS[0],
        serials=[f"{lot}-V0001"],
    )  # fmt: skip


def test_the_demo_label_prints_the_label_name_and_the_storage_limit_in_full(session):
    lines = _text(_print(session, RELEASED).content)
    assert "XS228 Cell Injection" in lines  # the product version's label name, not cut
    assert "≤ −150 °C vapour LN2" in lines  # the limit in °C, the condition abbreviated
    assert not any(line.endswith("...") for line in lines)


def test_a_product_without_a_label_name_that_does_not_fit_is_refused(session):
    current = get_product(session, "XS228").current
    add_product_version(
        session,
        actor="qa",
        code="XS228",
        version={
            **{field: getattr(current, field) for field in VERSIONED_FIELDS},
            "label_name": None,
        },
        specification=[
            {field: getattr(line, field) for field in SPEC_FIELDS} for line in current.specification
        ],
        change_reason="The label name left out, to see the label refuse.",
    )
    released_lot(session, "XS228-LBL-01", vials=1)
    before = session.scalar(select(func.count(LabelPrint.id)))
    with pytest.raises(LabelsNotRenderableError) as refused:
        _print(session, "XS228-LBL-01")
    assert "does not fit the 38 x 13 mm vial label" in refused.value.detail
    assert "give the product a shorter label name" in refused.value.detail
    assert session.scalar(select(func.count(LabelPrint.id))) == before
