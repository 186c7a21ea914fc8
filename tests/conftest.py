"""Test wiring: a migrated database (SQLite, or PostgreSQL via CELLTRAIL_TEST_DATABASE_URL)
with the demo data, and each test inside a transaction that is rolled back."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import settings
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.worlds.config import TEST_CONFIG, demo_database  # isort: skip - sets the test keys first
from app import create_app, demo
from app.db import make_engine
from tests.worlds.shipping import SEALED_AT, Clock

# Property tests explore new examples on a developer's machine; in CI (CI=true) they replay
# the same derandomized examples every run, so a red CI is a defect, not a dice roll. An
# example that once failed is kept in its test as an explicit @example.
settings.register_profile("ci", derandomize=True, print_blob=True, database=None)
settings.register_profile("explore", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "explore")
)


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
def clock(app: Flask) -> Clock:
    """The test's clock, on the sample logger files' morning: the test hands its time to the
    commands it calls, and the app's views read it (`app.config["CLOCK"]`)."""
    clock = Clock(SEALED_AT)
    app.config["CLOCK"] = clock
    return clock


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
