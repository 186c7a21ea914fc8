"""Configuration from the environment; every variable is documented in the README."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEVELOPMENT_SECRET_KEY = "celltrail-development-only-secret-key"  # noqa: S105 - dev default


class ConfigurationError(RuntimeError):
    """The environment does not describe a service that may start."""


def from_environment(environ: Mapping[str, str], instance_path: str) -> dict[str, Any]:
    """Flask config values read from environment variables."""
    production = environ.get("CELLTRAIL_ENV", "development") == "production"
    secret_key = environ.get("SECRET_KEY")
    if not secret_key:
        if production:
            raise ConfigurationError("SECRET_KEY must be set when CELLTRAIL_ENV=production.")
        secret_key = DEVELOPMENT_SECRET_KEY
    database_url = environ.get("DATABASE_URL") or _default_database_url(instance_path)
    checkpoint_key = environ.get("CELLTRAIL_CHECKPOINT_KEY")
    if not checkpoint_key and not production:
        checkpoint_key = _development_key(instance_path, "checkpoint-dev.key")
    label_keys = environ.get("CELLTRAIL_LABEL_KEYS")
    if not label_keys and not production:
        label_keys = "dev1:" + _development_key(instance_path, "label-dev.key")
    return {
        "CELLTRAIL_PRODUCTION": production,
        "SECRET_KEY": secret_key,
        "DATABASE_URL": _psycopg3(database_url),
        "PUBLIC_URL": environ.get("CELLTRAIL_PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
        "CHECKPOINT_KEY": checkpoint_key or None,
        "LABEL_KEYS": label_keys or None,
        "CHECKPOINT_PUBLIC_KEYS": [
            key.strip()
            for key in environ.get("CELLTRAIL_CHECKPOINT_PUBLIC_KEYS", "").split(",")
            if key.strip()
        ],
        "TOKEN_TTL_HOURS": int(environ.get("CELLTRAIL_TOKEN_TTL_HOURS", "12")),
        # `ledger checkpoint --if-due` (run by a timer) signs after this many events, or after
        # this many minutes once anything new was recorded; each anchor goes to every witness
        # directory (development: instance/witness).
        "CHECKPOINT_EVERY_EVENTS": int(environ.get("CELLTRAIL_CHECKPOINT_EVERY_EVENTS", "1000")),
        "CHECKPOINT_EVERY_MINUTES": int(environ.get("CELLTRAIL_CHECKPOINT_EVERY_MINUTES", "60")),
        "CHECKPOINT_WITNESS_DIRS": [
            part.strip()
            for part in environ.get(
                "CELLTRAIL_CHECKPOINT_WITNESS_DIRS",
                "" if production else str(Path(instance_path) / "witness"),
            ).split(",")
            if part.strip()
        ],
        "PASSWORD_HASHER": "default",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "PERMANENT_SESSION_LIFETIME": 8 * 3600,
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    }


def _default_database_url(instance_path: str) -> str:
    return f"sqlite:///{Path(instance_path) / 'celltrail.sqlite3'}"


def _psycopg3(url: str) -> str:
    # Hosting platforms hand out postgres:// URLs; SQLAlchemy needs the driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _development_key(instance_path: str, name: str) -> str:
    # Outside production a key is made once and kept in instance/, never in the database.
    path = Path(instance_path) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def environment() -> Mapping[str, str]:
    """The process environment (a seam for tests that build their own)."""
    return os.environ
