"""Running the Alembic migrations in migrations/ against the app's database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for our migrations on a URL or an open connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(
    url: str | None = None, connection: Connection | None = None, revision: str = "head"
) -> None:
    """Apply every migration up to `revision`."""
    command.upgrade(alembic_config(url, connection), revision)


def create_append_only_triggers(op: Any, tables: tuple[str, ...]) -> None:
    """Refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on these tables.

    For migrations after 0001, which creates the PostgreSQL trigger function.
    """
    if op.get_bind().dialect.name == "postgresql":
        for table in tables:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION celltrail_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION celltrail_refuse_change()"
            )
        return
    for table in tables:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END"
            )


def drop_append_only_triggers(op: Any, tables: tuple[str, ...]) -> None:
    """Remove the triggers `create_append_only_triggers` made (downgrades)."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in tables:
        if postgresql:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        else:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER {table}_no_{action}")


def pending_migration(connection: Connection) -> tuple[str | None, str] | None:
    """(the database's revision, the code's head) when the schema is behind the code, or
    None when it is at the head."""
    current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # noqa: S101 - migrations/ always has a head
    return None if current == head else (current, head)
