"""Test wiring: a migrated database (SQLite, or PostgreSQL via CELLTRAIL_TEST_DATABASE_URL)
with the demo data, and each test inside a transaction that is rolled back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import Connection, Engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

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

from app import create_app, demo  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from lots.accounts import get_site, password_hasher  # noqa: E402
from lots.banks import create_bank  # noqa: E402

TEST_CONFIG = {
    "TESTING": True,
    "PASSWORD_HASHER": "cheapest",
    "CHECKPOINT_KEY": TEST_CHECKPOINT_KEY,
    "LABEL_KEYS": TEST_LABEL_KEYS,
    "PUBLIC_URL": "https://trail.example.org",
    "SERVER_NAME": None,
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


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's database: migrated, with the demo data (one schema per run on PG)."""
    sqlite_file = tmp_path_factory.mktemp("db") / "celltrail-test.sqlite3"
    with demo_database(sqlite_file, f"celltrail_test_{os.getpid()}") as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The session's engine."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def dialect(engine: Engine) -> str:
    """'sqlite' or 'postgresql'."""
    return engine.dialect.name


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        if transaction.is_active:
            transaction.rollback()


@pytest.fixture
def app(database_url: str, connection: Connection) -> Iterator[Flask]:
    """The app, its sessions joined to the test's rolled-back transaction."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url})
    app.extensions["celltrail.db"].sessions = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield app
    app.extensions["celltrail.db"].engine.dispose()


@pytest.fixture
def committed_app(database_url: str) -> Iterator[Flask]:
    """The app on the real database: commits stay (concurrency and browser tests)."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url})
    yield app
    app.extensions["celltrail.db"].engine.dispose()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """A session in the test's transaction (no app context: requests made by the test get
    their own, as in production)."""
    session = app.extensions["celltrail.db"].sessions()
    yield session
    session.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A runner for the `celltrail` commands."""
    return app.test_cli_runner()


@pytest.fixture
def auth_headers(client: FlaskClient) -> Callable[[str], dict[str, str]]:
    """Bearer headers for a demo user, by username (the demo users exist in every test)."""
    cache: dict[str, dict[str, str]] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in cache:
            user = next(user for user in demo.USERS if user.username == username)
            response = client.post(
                "/api/v1/auth/tokens", json={"username": username, "password": user.password}
            )
            assert response.status_code == 201, response.json
            cache[username] = {"Authorization": f"Bearer {response.json['token']}"}
        return cache[username]

    return headers


def chromium_path() -> str | None:
    """Debian's Chromium, if installed."""
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).exists():
            return candidate
    return None


def own_bank(session: Session, prefix: str) -> str:
    """A new iPSC line with its master and working banks, for tests that commit lots: their
    lots stay out of the demo banks' genealogy (and so out of other tests' recalls and
    traces) once committed, since the ledger cannot be cleaned up. The working bank's code."""
    tag = uuid.uuid4().hex[:6].upper()
    site = get_site(session, "XSM-SZ")
    for code, kind, parent, passage in (
        (f"{prefix}-L-{tag}", "cell_line", None, 10),
        (f"{prefix}-M-{tag}", "master", f"{prefix}-L-{tag}", 15),
        (f"{prefix}-W-{tag}", "working", f"{prefix}-M-{tag}", 20),
    ):
        create_bank(
            session, actor="tests", code=code, kind=kind, site=site, parent_code=parent,
            passage=passage,
        )  # fmt: skip
    return f"{prefix}-W-{tag}"
