"""Users: created and changed by admins, every change in the audit trail."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.api.schemas import PasswordResetSchema, UserCreateSchema, UserSchema, UserUpdateSchema
from app.auth import hasher, require_user, requires
from app.db import get_session
from app.writes import write
from lots.access import Permission
from lots.accounts import create_user, get_user, reset_password, update_user
from lots.models import User

blp = Blueprint("users", __name__, url_prefix="/users", description="Users and roles")


@blp.route("")
class Users(MethodView):
    @requires(Permission.USERS_READ)
    @blp.response(200, UserSchema(many=True))
    def get(self) -> list[User]:
        """Every user, by username."""
        return list(get_session().scalars(select(User).order_by(User.username)))

    @requires(Permission.USERS_WRITE)
    @write
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    def post(self, data: dict[str, Any]) -> User:
        """Create a user with a role at a site."""
        return create_user(
            get_session(),
            hasher(),
            actor=require_user().username,
            site_code=data.pop("site"),
            **data,
        )


@blp.route("/<username>")
class UserByName(MethodView):
    @requires(Permission.USERS_READ)
    @blp.response(200, UserSchema)
    def get(self, username: str) -> User:
        """One user."""
        return get_user(get_session(), username)

    @requires(Permission.USERS_WRITE)
    @write
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    def patch(self, data: dict[str, Any], username: str) -> User:
        """Change a user's name, role, site, blinding or activity."""
        site = data.pop("site", None)
        return update_user(
            get_session(), actor=require_user().username, username=username, site_code=site, **data
        )


@blp.route("/<username>/password-reset")
class PasswordReset(MethodView):
    @requires(Permission.USERS_WRITE)
    @write
    @blp.arguments(PasswordResetSchema)
    @blp.response(200, UserSchema)
    def post(self, data: dict[str, Any], username: str) -> User:
        """Set a temporary password the user must change at the next sign-in; their tokens
        and sessions end, and a lock from failed attempts is lifted."""
        return reset_password(
            get_session(),
            hasher(),
            actor=require_user(),
            username=username,
            temporary=data["temporary_password"],
            remote_addr=request.remote_addr or "unknown",
        )
