"""The celltrail Flask application factory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from app import config, db, errors

csrf = CSRFProtect()


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, or from `test_config` laid over it."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(config.from_environment(config.environment(), app.instance_path))
    if test_config:
        app.config.update(test_config)
    app.config.update(
        API_TITLE="celltrail",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/api/docs/static/",
        OPENAPI_REDOC_PATH=None,
    )

    db.init_app(app)
    csrf.init_app(app)

    from app import api, cli, health, web  # noqa: PLC0415 - blueprints use the extensions

    app.register_blueprint(health.bp)
    csrf.exempt(health.bp)
    api.init_app(app, csrf)
    web.init_app(app)
    cli.init_app(app)
    errors.init_app(app)
    return app
