"""Out-of-specification investigations at the service layer: an OOS result opens one at once
and blocks release; it is never corrected; QA (not the analyst, not whoever found the cause)
invalidates it for an assignable laboratory cause, or decides phase II; only then may a
retest supersede it, and the release is signed by someone else again."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody.manufacturing import (
    InvestigationStateError,
    OosResultError,
    ReleaseRefusedError,
    close_investigation,
    current_results,
    get_lot,
    lot_investigations,
    lot_results,
    open_phase_two,
    raise_deviation,
    record_laboratory_cause,
    record_result,
)
from lots.accounts import create_user, get_user
from lots.base import utcnow
from lots.errors import InvalidValueError
from tests.worlds.manufacturing import (
    HASHER,
    TEST_PASSWORD,
    event_types,
    lot_in_quarantine,
    password,
    qa_decides,
    ready_lot,
)

NOW = dt.datetime(2026, 12, 8, 1, 0, tzinfo=dt.UTC)


def _qa(session, username: str = "qa2"):
    return create_user(
        session,
        HASHER,
        actor="admin",
        username=username,
        full_name="Qing Second",
        role="qa",
        site_code="XSM-SZ",
        password=TEST_PASSWORD,
    )


def _retest(session, number: str, value: str, **kwargs):
    lot = get_lot(session, number)
    current = current_results(session, lot)["Viability"]
    return record_result(
        session,
        get_user(session, "qc"),
        number,
        test="Viability",
        value=value,
        unit="%",
        method=None,
        tested_at=utcnow() - dt.timedelta(minutes=5),
        supersedes=current.id,
        **kwargs,
    )


def _close(session, number: str, outcome: str, *, by: str = "qa", signing: str | None = None):
    return close_investigation(
        session,
        HASHER,
        get_user(session, by),
        number,
        1,
        outcome=outcome,
        reason="Reviewed the raw data and the analyst's notebook.",
        password=signing or password(by),
        now=NOW,
    )


@pytest.fixture
def oos_lot(session):
    """A lot in quarantine whose viability (19.5 % against ≥ 70 %) is out of specification."""
    ready_lot(session, "OOS-2612-01", Viability="19.5")
    return "OOS-2612-01"


def test_an_oos_result_opens_an_investigation_that_blocks_release(session, oos_lot):
    (investigation,) = lot_investigations(session, get_lot(session, oos_lot))
    assert (investigation.label, investigation.status, investigation.phase) == (
        "OOS-OOS-2612-01-01",
        "open",
        "laboratory",
    )
    assert (investigation.test, investigation.value, investigation.analyst) == (
        "Viability",
        "19.5",
        "qc",
    )
    assert "OOS_INVESTIGATION_OPENED" in event_types(session, f"lot:{oos_lot}")
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, oos_lot)
    assert "Out-of-specification investigation OOS-OOS-2612-01-01 (Viability) is still open." in (
        refused.value.blockers
    )


def test_an_oos_result_cannot_be_corrected_to_a_passing_value(session, oos_lot):
    with pytest.raises(OosResultError) as refused:
        _retest(session, oos_lot, "91.5", reason="Typo: 19.5 should read 91.5")
    assert "it can be superseded only by a retest after QA invalidates it" in refused.value.detail
    viability = [
        r.value
        for r in lot_results(session, get_lot(session, oos_lot))
        if r.line.test == "Viability"
    ]
    assert viability == ["19.5"]  # nothing was recorded


def test_a_laboratory_cause_approved_by_qa_opens_the_result_to_a_retest(session, oos_lot):
    record_laboratory_cause(
        session,
        get_user(session, "qc"),
        oos_lot,
        1,
        cause="Haemocytometer counted with the wrong dilution factor.",
        now=NOW,
    )
    closed = _close(session, oos_lot, "invalidated")
    assert (closed.status, closed.closed_by, closed.signature["name"]) == (
        "closed: invalidated",
        "qa",
        "Li Wei",
    )
    retest = _retest(session, oos_lot, "91.5")
    assert retest.supersede_reason == (
        "Retest after OOS-OOS-2612-01-01 invalidated result #"
        f"{lot_investigations(session, get_lot(session, oos_lot))[0].result_id}."
    )
    history = [r.value for r in lot_results(session, get_lot(session, oos_lot))]
    assert "19.5" in history  # the original stays visible forever
    # The QA who invalidated may not also release: someone else signs the release.
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, oos_lot)
    assert refused.value.blockers == [
        "You signed the invalidation of an out-of-specification result of this lot; "
        "someone else must release (segregation of duties)."
    ]
    _qa(session)
    assert qa_decides(session, oos_lot, by="qa2", password=TEST_PASSWORD).decision == "released"


def test_a_retest_that_is_oos_again_opens_a_new_investigation(session, oos_lot):
    record_laboratory_cause(
        session, get_user(session, "qc"), oos_lot, 1, cause="Pipette out of calibration.", now=NOW
    )
    _close(session, oos_lot, "invalidated")
    _retest(session, oos_lot, "40.0")
    investigations = lot_investigations(session, get_lot(session, oos_lot))
    assert [(i.number, i.value, i.status) for i in investigations] == [
        (1, "19.5", "closed: invalidated"),
        (2, "40.0", "open"),
    ]


def test_without_a_laboratory_cause_phase_one_cannot_invalidate(session, oos_lot):
    with pytest.raises(InvestigationStateError) as refused:
        _close(session, oos_lot, "invalidated")
    assert "none is recorded" in refused.value.detail


def test_phase_two_is_linked_to_a_deviation_and_a_confirmed_oos_stays(session, oos_lot):
    qc = get_user(session, "qc")
    with pytest.raises(InvalidValueError) as missing:
        open_phase_two(session, qc, oos_lot, 1, finding="Lab checks clean.", deviation=1, now=NOW)
    assert missing.value.field == "deviation"
    raise_deviation(
        session,
        get_user(session, "manufacturing"),
        oos_lot,
        description="Low viability after thaw",
        severity="major",
        capa_reference="CAPA-2026-31",
    )
    moved = open_phase_two(
        session, qc, oos_lot, 1, finding="Instrument, reagents, calc all checked.", deviation=1,
        now=NOW,
    )  # fmt: skip
    assert (moved.phase, moved.deviation) == ("manufacturing", "DEV-OOS-2612-01-01")
    with pytest.raises(InvestigationStateError):
        record_laboratory_cause(session, qc, oos_lot, 1, cause="Late finding.", now=NOW)
    confirmed = _close(session, oos_lot, "confirmed")
    assert confirmed.outcome == "confirmed"
    with pytest.raises(OosResultError) as refused:
        _retest(session, oos_lot, "91.5")
    assert "closed: the OOS is confirmed" in refused.value.detail
    with pytest.raises(InvestigationStateError):
        _close(session, oos_lot, "invalidated")  # closed once, for good


def test_whoever_took_part_does_not_sign_the_outcome(session, oos_lot):
    _qa(session)
    record_laboratory_cause(
        session, get_user(session, "qa2"), oos_lot, 1, cause="Wrong dilution.", now=NOW
    )
    with pytest.raises(InvestigationStateError) as refused:
        _close(session, oos_lot, "invalidated", by="qa2", signing=TEST_PASSWORD)
    assert "another QA person reviews and signs" in refused.value.detail
    assert _close(session, oos_lot, "invalidated").outcome == "invalidated"


def test_a_conforming_result_is_still_corrected_simply(session):
    lot_in_quarantine(session, "OOS-2612-09")
    first = record_result(
        session, get_user(session, "qc"), "OOS-2612-09", test="Viability", value="95.1",
        unit="%", method=None, tested_at=utcnow(),
    )  # fmt: skip
    fixed = _retest(session, "OOS-2612-09", "91.5", reason="Digits swapped on transcription")
    assert (fixed.supersedes_id, lot_investigations(session, get_lot(session, "OOS-2612-09"))) == (
        first.id,
        [],
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.sampled_from(["cause", "phase2", "invalidate", "confirm"]), max_size=4))
def test_the_lot_is_released_only_after_every_oos_is_invalidated_and_retested(session, steps):
    """Whatever the course, release needs every investigation closed as invalidated and a
    conforming retest in force; a confirmed OOS never releases."""
    nested = session.begin_nested()
    try:
        number = f"OOS-P-{len(steps)}{''.join(s[0] for s in steps)}"[:20]
        ready_lot(session, number, Viability="19.5")
        qc, deviation_raised = get_user(session, "qc"), False
        for name in steps:
            try:
                if name == "cause":
                    record_laboratory_cause(
                        session, qc, number, 1, cause="Wrong dilution.", now=NOW
                    )
                elif name == "phase2":
                    if not deviation_raised:
                        raise_deviation(
                            session, get_user(session, "manufacturing"), number,
                            description="Low viability", severity="major",
                        )  # fmt: skip
                        deviation_raised = True
                    open_phase_two(
                        session, qc, number, 1, finding="Lab clean.", deviation=1, now=NOW
                    )
                else:
                    _close(session, number, "invalidated" if name == "invalidate" else "confirmed")
            except (InvestigationStateError, InvalidValueError):
                pass
        (investigation,) = lot_investigations(session, get_lot(session, number))
        try:
            _retest(session, number, "91.5")
            retested = True
        except OosResultError:
            retested = False
        assert retested == (investigation.outcome == "invalidated")
        _qa(session, "qa-p")
        released = True
        try:
            qa_decides(session, number, by="qa-p", password=TEST_PASSWORD)
        except ReleaseRefusedError as refused:
            released = False
            blockers = " ".join(refused.blockers)
            assert (
                "still open" in blockers
                or "Out of specification" in blockers
                or ("Deviation" in blockers)
            )
        assert released == (
            investigation.outcome == "invalidated" and retested and not deviation_raised
        )
    finally:
        nested.rollback()
        session.expunge_all()  # the next example starts from the same world
