"""The migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from app.db import make_engine
from app.migrate import alembic_config
from app.schema import metadata


def test_the_migrated_schema_matches_the_models(connection: Connection):
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    assert compare_metadata(context, metadata) == []


def test_every_model_table_exists_after_migration(connection: Connection):
    assert set(metadata.tables) <= set(inspect(connection).get_table_names())


@pytest.fixture
def empty_database_url(database_url: str, tmp_path) -> Iterator[str]:
    """A brand-new, empty database of the suite's kind."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    name = f"celltrail_migrations_{uuid.uuid4().hex[:8]}"
    admin = make_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url: URL = make_url(database_url).set(database=name, query={})
    yield url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_migrations_upgrade_from_empty_downgrade_and_upgrade_again(empty_database_url: str):
    config = alembic_config(empty_database_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    engine = make_engine(empty_database_url)
    with engine.connect() as connection:
        assert "custody_events" in inspect(connection).get_table_names()
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert version == ScriptDirectory.from_config(config).get_current_head()


def test_the_migrations_form_one_line_numbered_in_order():
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(reversed(list(script.walk_revisions())))
    assert [revision.revision for revision in revisions] == [
        f"{number:04d}" for number in range(1, len(revisions) + 1)
    ]


def test_an_existing_site_gets_utc_and_a_new_site_must_name_its_zone(empty_database_url: str):
    config = alembic_config(empty_database_url)
    command.upgrade(config, "0006")
    engine = make_engine(empty_database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sites (code, name, kind, created_at) "
                "VALUES ('OLD-PH', 'Old pharmacy', 'hospital_pharmacy', CURRENT_TIMESTAMP)"
            )
        )
    command.upgrade(config, "0007")
    with engine.connect() as connection:
        zone = connection.execute(text("SELECT time_zone FROM sites WHERE code = 'OLD-PH'"))
        assert zone.scalar() == "UTC"
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sites (code, name, kind, created_at) "
                "VALUES ('NEW-PH', 'New pharmacy', 'hospital_pharmacy', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
