"""Sites: where custody can be held."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.api.schemas import SiteSchema
from app.auth import require_user, requires
from app.db import get_session
from app.writes import write
from lots.access import Permission
from lots.accounts import create_site, get_site
from lots.models import Site

blp = Blueprint("sites", __name__, url_prefix="/sites", description="Sites")


@blp.route("")
class Sites(MethodView):
    @requires(Permission.SITES_READ)
    @blp.response(200, SiteSchema(many=True))
    def get(self) -> list[Site]:
        """Every site, by code."""
        return list(get_session().scalars(select(Site).order_by(Site.code)))

    @requires(Permission.SITES_WRITE)
    @write
    @blp.arguments(SiteSchema)
    @blp.response(201, SiteSchema)
    def post(self, data: dict[str, Any]) -> Site:
        """Register a site."""
        return create_site(get_session(), actor=require_user().username, **data)


@blp.route("/<code>")
class SiteByCode(MethodView):
    @requires(Permission.SITES_READ)
    @blp.response(200, SiteSchema)
    def get(self, code: str) -> Site:
        """One site."""
        return get_site(get_session(), code)
