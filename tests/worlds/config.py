"""The suite's fixed configuration (keys, app settings) and its demo databases.

Imported before the app: it sets the test keys in the environment first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.orm import Session

# A fixed checkpoint key for the suite; production keys come from the environment only.
TEST_CHECKPOINT_KEY = "Y2VsbHRyYWlsLXRlc3QtY2hlY2twb2ludC1rZXktMzI="
os.environ["CELLTRAIL_CHECKPOINT_KEY"] = TEST_CHECKPOINT_KEY
# Fixed label keys: "t1" signs, "t0" is an older key still trusted (rotation).
TEST_LABEL_KEYS = (
    "t1:dGVzdC1sYWJlbC1rZXktb25lLTMyLWJ5dGVzLWxvbmchIQ==,"
    "t0:dGVzdC1sYWJlbC1rZXktemVyby0zMi1ieXRlcy1sb25nISE="
)
os.environ["CELLTRAIL_LABEL_KEYS"] = TEST_LABEL_KEYS
os.environ.pop("DATABASE_URL", None)

from app import demo  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from lots.accounts import password_hasher  # noqa: E402

TEST_CONFIG = {
    "TESTING": True,
    "PASSWORD_HASHER": "cheapest",
    "CHECKPOINT_KEY": TEST_CHECKPOINT_KEY,
    "LABEL_KEYS": TEST_LABEL_KEYS,
    "PUBLIC_URL": "https://trail.example.org",
    "SERVER_NAME": None,
    "CHECKPOINT_WITNESS_DIRS": [],  # a test that witnesses names its own tmp_path
}


def _normalise(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@contextmanager
def demo_database(sqlite_file: Path, schema: str) -> Iterator[str]:
    """The URL of a freshly migrated database holding the demo data, dropped afterwards.

    On PostgreSQL (CELLTRAIL_TEST_DATABASE_URL) it is `schema` in the configured database,
    so two runs on one server (a developer's and CI's, say) never drop each other's tables;
    otherwise the SQLite file `sqlite_file`.
    """
    configured = os.environ.get("CELLTRAIL_TEST_DATABASE_URL")
    admin = None
    if configured:
        base = make_url(_normalise(configured))
        admin = make_engine(base.render_as_string(hide_password=False))
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    else:
        url = f"sqlite:///{sqlite_file}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        demo.load(session, password_hasher("cheapest"))
    engine.dispose()
    try:
        yield url
    finally:
        if admin is not None:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()


def chromium_path() -> str | None:
    """Debian's Chromium, if installed."""
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).exists():
            return candidate
    return None
