"""A reprint retires the label it replaces: the old label, read back from the printed PNG by
zxing-cpp, scans as "superseded label — use the reprint" and is NO-GO at the bedside, while
the reprint is the vial's one authentic label."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from custody.manufacturing import print_labels
from lots.accounts import get_user
from tests.worlds.bedside import BASE, KEYS, VIAL, check, enrol_patient, failed, thawed_at_the_ward
from tests.worlds.labels import decoded

LOT = VIAL.rsplit("-V", 1)[0]


@pytest.fixture(autouse=True)
def _patient(session):
    enrol_patient(session)


def printed_code(session, *, reason: str | None = None) -> str:
    """Print the vial's label as a PNG and read its QR code back."""
    printed = print_labels(
        session,
        get_user(session, "qa"),
        LOT,
        fmt="png",
        base=BASE,
        key=KEYS[0],
        serials=[VIAL],
        reason=reason,
    )
    (code,) = decoded(Image.open(io.BytesIO(printed.content)))
    return code.text


def test_a_reprinted_label_retires_the_old_one_at_the_bedside(session):
    thawed_at_the_ward(session)
    first = printed_code(session)
    assert check(session, code=first).outcome == "GO"

    second = printed_code(session, reason="Label smudged by frost.")
    third = printed_code(session, reason="Reprint torn while applying.")

    assert len({first, second, third}) == 3
    for old, generation in ((first, 1), (second, 2)):
        bedside = check(session, code=old)
        assert bedside.outcome == "NO-GO"
        reason = failed(bedside)["label"]
        assert reason.startswith("Superseded label — use the reprint:")
        assert f"print {generation} of the label of {VIAL}" in reason
    assert (check(session, code=third).outcome, failed(check(session, code=third))) == ("GO", {})
