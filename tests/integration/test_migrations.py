"""The migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, make_url, text
from sqlalchemy.engine import URL

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
    assert version == "0006"
