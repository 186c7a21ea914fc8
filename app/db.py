"""The database engine, one session per request, and the transaction around each write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


@dataclass
class Database:
    """The engine and session factory of one app."""

    engine: Engine
    sessions: sessionmaker[Session]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for celltrail on SQLite or PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        _make_sqlite_transactional(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def init_app(app: Flask) -> None:
    """Attach the database to the app and close the request's session on teardown."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["celltrail.db"] = Database(
        engine=engine, sessions=sessionmaker(engine, expire_on_commit=False)
    )
    app.teardown_appcontext(_close_session)


def database(app: Flask | None = None) -> Database:
    """The app's database."""
    return (app or current_app).extensions["celltrail.db"]  # type: ignore[no-any-return]


def get_session() -> Session:
    """The session of the current request (or app context), opened on first use."""
    if "db_session" not in g:
        g.db_session = database().sessions()
    return g.db_session  # type: ignore[no-any-return]


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def _make_sqlite_transactional(engine: Engine) -> None:
    # pysqlite's own transaction handling skips BEGIN before SELECT and DDL, which breaks
    # SAVEPOINTs and transactional DDL; the SQLAlchemy docs' recipe takes over. BEGIN
    # IMMEDIATE takes the write lock up front, so two writers never both read a chain head
    # and then fail to upgrade their lock.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 10000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
