"""The JSON API under /api/v1, its OpenAPI document and its docs page."""

from __future__ import annotations

from flask import Flask, send_from_directory
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect
from swagger_ui_bundle import swagger_ui_path
from werkzeug.wrappers import Response

from app.api import (
    auth,
    banks,
    bedside,
    fhir,
    investigations,
    labels,
    ledger,
    lots,
    products,
    shipments,
    sites,
    temperature,
    trace,
    trials,
    users,
)

BLUEPRINTS = (
    auth.blp,
    sites.blp,
    users.blp,
    products.blp,
    banks.blp,
    lots.blp,
    investigations.blp,
    labels.blp,
    shipments.blp,
    temperature.blp,
    bedside.blp,
    ledger.blp,
    ledger.audit_blp,
    trace.blp,
    fhir.blp,
    trials.blp,
)


def init_app(app: Flask, csrf: CSRFProtect) -> None:
    """Register the API blueprints; the API authenticates by bearer token, not CSRF cookie."""
    api = Api(
        app,
        spec_kwargs={
            "info": {"description": "Batch release and chain of custody for cell therapy."},
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
        },
    )
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint, url_prefix=f"/api/v1{blueprint.url_prefix or ''}")
        csrf.exempt(blueprint)
    app.extensions["celltrail.api"] = api

    @app.get("/api/docs/static/<path:filename>")
    def swagger_ui_static(filename: str) -> Response:
        """Swagger UI's files, served from the installed package: nothing loads from a CDN."""
        return send_from_directory(swagger_ui_path, filename, max_age=86400)
