"""`celltrail ledger verify|checkpoint` and GET /api/v1/ledger/verify, on a sound and a tampered
ledger. The runner's and client's sessions join the test's rolled-back transaction."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import select, text

from app import create_app
from custody.ledger import CustodyEvent, EventDraft, append_event
from lots.accounts import get_user
from tests.worlds.config import TEST_CONFIG
from tests.worlds.pages import sign_in


@pytest.fixture
def session(app):
    """A session in the test's transaction, outside any app context.

    The shared `session` fixture holds an app context open, so the client's requests would
    share its `g` and their session would outlive both requests and the fixture's savepoint.
    """
    with app.extensions["celltrail.db"].sessions() as session:
        yield session


@pytest.fixture
def vial(session):
    """A vial chain of two STORED events, flushed where the runner and client can see it."""
    courier = get_user(session, "courier")
    chain = f"vial:TEST-{uuid.uuid4().hex[:12]}"
    for position in ("A1", "A2"):
        append_event(
            session,
            EventDraft(
                chain=chain,
                event_type="STORED",
                occurred_at=dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC),
                payload={"position": position},
                actor=courier,
                site=courier.site,
            ),
        )
    return chain


@pytest.fixture
def tamper(session, dialect):
    """Edit the second event's payload with the append-only trigger off, in this test only."""

    def run(chain: str) -> None:
        if dialect == "postgresql":
            session.execute(
                text("ALTER TABLE custody_events DISABLE TRIGGER custody_events_append_only")
            )
        else:
            session.execute(text("DROP TRIGGER custody_events_no_update"))
        event = session.scalar(select(CustodyEvent).filter_by(chain=chain, seq=2))
        session.execute(
            text("UPDATE custody_events SET body = :body WHERE id = :id"),
            {"body": event.body.replace(b'"A2"', b'"Z9"'), "id": event.id},
        )

    return run


def _verify_json(runner):
    result = runner.invoke(args=["ledger", "verify", "--json"])
    return result.exit_code, json.loads(result.output)


@pytest.mark.usefixtures("vial")
def test_verify_says_intact_and_exits_0_on_a_sound_ledger(runner):
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Ledger intact:")


def test_verify_names_the_break_and_exits_1_after_tampering(runner, vial, tamper):
    tamper(vial)
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"Ledger BROKEN at event 2 of {vial}" in result.output


@pytest.mark.usefixtures("vial")
def test_verify_as_json_reports_the_counts(runner):
    exit_code, report = _verify_json(runner)
    assert exit_code == 0
    assert (report["intact"], report["first_break"]) == (True, None)


def test_verify_as_json_reports_the_first_break(runner, vial, tamper):
    tamper(vial)
    exit_code, report = _verify_json(runner)
    assert exit_code == 1
    assert (report["intact"], report["first_break"]["chain"], report["first_break"]["seq"]) == (
        False,
        vial,
        2,
    )


@pytest.mark.usefixtures("vial")
def test_a_checkpoint_is_signed_and_counted_by_the_next_verify(runner):
    _, before = _verify_json(runner)
    signed = runner.invoke(args=["ledger", "checkpoint"])
    assert signed.output.startswith("Checkpoint signed by key ")
    assert _verify_json(runner) == (0, {**before, "checkpoints": before["checkpoints"] + 1})


@pytest.mark.usefixtures("vial")
def test_the_api_reports_a_sound_ledger_to_an_auditor(client, auth_headers):
    response = client.get("/api/v1/ledger/verify", headers=auth_headers("auditor"))
    assert response.status_code == 200
    assert (response.json["intact"], response.json["first_break"]) == (True, None)


def test_the_api_names_the_chain_and_event_of_the_first_break(client, auth_headers, vial, tamper):
    headers = auth_headers("auditor")
    tamper(vial)
    response = client.get("/api/v1/ledger/verify", headers=headers)
    assert response.json["intact"] is False
    assert (response.json["first_break"]["chain"], response.json["first_break"]["seq"]) == (vial, 2)


def test_a_courier_may_not_verify_the_ledger(client, auth_headers):
    response = client.get("/api/v1/ledger/verify", headers=auth_headers("courier"))
    assert response.status_code == 403


@pytest.mark.usefixtures("vial")
def test_a_checkpoint_anchor_written_outside_the_database_is_checked_by_verify(runner, tmp_path):
    anchor = tmp_path / "anchor.json"
    runner.invoke(args=["ledger", "checkpoint", "--anchor-out", str(anchor)])
    result = runner.invoke(args=["ledger", "verify", "--json", "--anchor", str(anchor)])
    stored_only = json.loads(runner.invoke(args=["ledger", "verify", "--json"]).output)
    assert json.loads(result.output)["checkpoints"] == stored_only["checkpoints"] + 1


def test_a_file_that_is_not_an_anchor_is_refused_with_its_name(runner, tmp_path):
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"root": "00"}')
    result = runner.invoke(args=["ledger", "verify", "--anchor", str(bogus)])
    assert result.exit_code == 1
    assert "bogus.json is not a checkpoint anchor" in result.output


@pytest.fixture
def released_behind_the_ledgers_back(session):
    """`UPDATE lots SET status='released'` on the demo's lot in quarantine (issue 16)."""
    session.execute(text("UPDATE lots SET status = 'released' WHERE number = 'XS228-2611-01'"))
    session.flush()


@pytest.mark.usefixtures("released_behind_the_ledgers_back")
def test_verify_names_a_lot_row_edited_outside_the_ledger_and_exits_1(runner):
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert (
        "Record BROKEN: lots XS228-2611-01: Lot XS228-2611-01 reads released but its ledger "
        "says quarantine." in result.output
    )
    exit_code, report = _verify_json(runner)
    assert (exit_code, report["intact"], report["first_break"]) == (1, False, None)
    assert [(d["table"], d["key"]) for d in report["disagreements"]] == [("lots", "XS228-2611-01")]


@pytest.mark.usefixtures("released_behind_the_ledgers_back")
def test_the_api_and_the_page_list_a_row_that_disagrees_with_the_ledger(client, auth_headers):
    response = client.get("/api/v1/ledger/verify", headers=auth_headers("auditor"))
    assert response.json["intact"] is False
    assert [(d["table"], d["key"]) for d in response.json["disagreements"]] == [
        ("lots", "XS228-2611-01")
    ]
    sign_in(client, "auditor")
    page = client.get("/ledger").get_data(as_text=True)
    assert "BROKEN" in page
    assert "XS228-2611-01 reads released but its ledger says quarantine" in page


@pytest.mark.parametrize("command", [["ledger", "verify"], ["ledger", "checkpoint"]])
def test_a_command_on_an_unmigrated_database_says_so_without_a_traceback(tmp_path, command):
    empty = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path}/empty.sqlite3"})
    result = empty.test_cli_runner().invoke(args=command)
    assert result.exit_code == 1
    assert "is not migrated; this celltrail needs revision" in result.output
    assert "Run `celltrail db upgrade` first." in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.usefixtures("vial")
def test_each_witness_directory_receives_the_anchor_and_verify_accepts_it(
    runner, app, tmp_path, monkeypatch
):
    worm, share = tmp_path / "worm", tmp_path / "share"
    monkeypatch.setitem(app.config, "CHECKPOINT_WITNESS_DIRS", [str(worm), str(share)])
    signed = runner.invoke(args=["ledger", "checkpoint"])
    assert signed.exit_code == 0, signed.output
    (kept,) = worm.iterdir()
    assert [path.name for path in share.iterdir()] == [kept.name]
    assert f"Witnessed: {kept}" in signed.output
    result = runner.invoke(args=["ledger", "verify", "--json", "--anchor", str(kept)])
    assert json.loads(result.output)["intact"] is True


@pytest.mark.usefixtures("vial")
def test_a_witness_anchor_is_never_overwritten(runner, app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "CHECKPOINT_WITNESS_DIRS", [str(tmp_path)])
    assert runner.invoke(args=["ledger", "checkpoint"]).exit_code == 0
    (kept,) = tmp_path.iterdir()
    before = kept.read_text()
    again = runner.invoke(args=["ledger", "checkpoint"])  # the same upto: the same file name
    assert again.exit_code == 1
    assert "did not take it" in again.output
    assert kept.read_text() == before


def test_a_checkpoint_is_due_after_enough_events_or_time_and_not_without_new_events(
    runner, app, session, monkeypatch
):
    monkeypatch.setitem(app.config, "CHECKPOINT_EVERY_EVENTS", 2)
    monkeypatch.setitem(app.config, "CHECKPOINT_EVERY_MINUTES", 60)
    assert runner.invoke(args=["ledger", "checkpoint"]).exit_code == 0
    assert runner.invoke(args=["ledger", "checkpoint", "--if-due"]).output == "No checkpoint due.\n"
    courier = get_user(session, "courier")
    chain = f"vial:DUE-{uuid.uuid4().hex[:8]}"

    def record() -> None:
        append_event(
            session, EventDraft(chain, "STORED", dt.datetime.now(dt.UTC), {}, courier, courier.site)
        )
        session.flush()

    record()
    assert runner.invoke(args=["ledger", "checkpoint", "--if-due"]).output == "No checkpoint due.\n"
    record()
    due = runner.invoke(args=["ledger", "checkpoint", "--if-due"])
    assert due.output.startswith("Checkpoint signed by key ")
    record()
    monkeypatch.setitem(app.config, "CHECKPOINT_EVERY_MINUTES", 0)  # the time has passed
    assert runner.invoke(args=["ledger", "checkpoint", "--if-due"]).output.startswith(
        "Checkpoint signed"
    )
