"""The database itself refuses to change or remove ledger, audit and specification rows."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.keys import signing_key
from custody.ledger import EventDraft, append_event, create_checkpoint
from lots.accounts import get_user
from lots.models import LoginAttempt

# One column each, changed the way someone covering their tracks would change it.
EDITS = {
    "custody_events": "event_type = 'DESTROYED'",
    "ledger_checkpoints": "root = 'rewritten'",
    "audit_entries": "actor = 'nobody'",
    "login_attempts": "username = 'nobody'",
    "product_versions": "dose = '1 cell'",
    "specification_lines": "method = 'guesswork'",
}


@pytest.fixture
def a_row_in_every_table(session, app):
    """At least one row in each append-only table (row triggers need a row to fire on)."""
    courier = get_user(session, "courier")
    append_event(
        session,
        EventDraft(
            chain=f"vial:TEST-{uuid.uuid4().hex[:12]}",
            event_type="STORED",
            occurred_at=dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC),
            payload={"position": "A1"},
            actor=courier,
            site=courier.site,
        ),
    )
    create_checkpoint(session, signing_key(app))
    session.add(
        LoginAttempt(
            username="courier",
            remote_addr="192.0.2.7",
            channel="api",
            succeeded=False,
            at=dt.datetime.now(dt.UTC),
        )
    )
    session.flush()


@pytest.mark.usefixtures("a_row_in_every_table")
@pytest.mark.parametrize(("table", "edit"), EDITS.items())
def test_a_row_of_an_append_only_table_cannot_be_updated(session, table, edit):
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text(f"UPDATE {table} SET {edit}"))


@pytest.mark.usefixtures("a_row_in_every_table")
@pytest.mark.parametrize("table", EDITS)
def test_a_row_of_an_append_only_table_cannot_be_deleted(session, table):
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text(f"DELETE FROM {table}"))


@pytest.mark.parametrize("table", EDITS)
def test_an_append_only_table_cannot_be_truncated_on_postgresql(session, dialect, table):
    if dialect != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; its DELETE trigger covers a bulk delete")
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text(f"TRUNCATE {table} CASCADE"))


@pytest.mark.usefixtures("a_row_in_every_table")
def test_the_chain_heads_stay_updatable_for_writers(session):
    updated = session.execute(text("UPDATE chain_heads SET updated_at = updated_at"))
    assert updated.rowcount >= 1


@pytest.mark.usefixtures("a_row_in_every_table")
def test_a_refused_change_leaves_the_row_as_it_was(session):
    before = session.execute(text("SELECT count(*) FROM custody_events")).scalar()
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(text("DELETE FROM custody_events"))
    assert session.execute(text("SELECT count(*) FROM custody_events")).scalar() == before
