"""Bearer tokens: issue, list, revoke; and who am I."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.api.schemas import (
    PasswordChangedSchema,
    PasswordChangeSchema,
    TokenRequestSchema,
    TokenSchema,
    WhoAmISchema,
)
from app.auth import AUTHENTICATED, PUBLIC, hasher, require_user, requires
from app.db import get_session
from app.writes import write
from lots.accounts import authenticate, change_password, issue_token, revoke_token
from lots.errors import AccountLockedError, AuthenticationError, NotFoundError, TooManyAttemptsError
from lots.models import ApiToken

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Sign-in and bearer tokens")


@blp.route("/tokens")
class Tokens(MethodView):
    @requires(PUBLIC)
    @blp.arguments(TokenRequestSchema)
    @blp.response(201, TokenSchema)
    @blp.alt_response(401, description="Wrong username or password")
    @blp.alt_response(
        429, description="The account must wait (or the address is over its limit); see Retry-After"
    )
    @blp.alt_response(
        423,
        description="Locked after 100 consecutive failures until an administrator resets it",
    )
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Exchange a username and password for a bearer token."""
        session = get_session()
        try:
            user = authenticate(
                session,
                hasher(),
                username=data["username"],
                password=data["password"],
                remote_addr=request.remote_addr or "unknown",
                channel="api",
            )
        except (AuthenticationError, TooManyAttemptsError, AccountLockedError):
            session.commit()  # the failed attempt is the audit record and the rate limit
            raise
        ttl = dt.timedelta(hours=data["ttl_hours"] or current_app.config["TOKEN_TTL_HOURS"])
        secret, token = issue_token(session, user, ttl=ttl, label=data["label"])
        session.commit()
        return {**_token_fields(token), "token": secret}

    @requires(AUTHENTICATED)
    @blp.response(200, TokenSchema(many=True))
    def get(self) -> list[ApiToken]:
        """The caller's own tokens (never their secrets)."""
        user = require_user()
        return list(
            get_session().scalars(
                select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
            )
        )


@blp.route("/tokens/<int:token_id>")
class Token(MethodView):
    @requires(AUTHENTICATED)
    @write
    @blp.response(200, TokenSchema)
    def delete(self, token_id: int) -> ApiToken:
        """Revoke one of the caller's tokens; it stops working at once."""
        return revoke_token(get_session(), require_user(), token_id)


@blp.route("/tokens/current")
class CurrentToken(MethodView):
    @requires(AUTHENTICATED, before_password_change=True)
    @write
    @blp.response(200, TokenSchema)
    def delete(self) -> ApiToken:
        """Revoke the token this request was made with (sign out)."""
        require_user()
        if g.get("auth_via") != "token":
            raise NotFoundError("token", "current")
        return revoke_token(get_session(), require_user(), g.token_id)


@blp.route("/me")
class Me(MethodView):
    @requires(AUTHENTICATED, before_password_change=True)
    @blp.response(200, WhoAmISchema)
    def get(self) -> Any:
        """The signed-in user, their role and site."""
        return require_user()


def _token_fields(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "label": token.label,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }


@blp.route("/password")
class Password(MethodView):
    @requires(AUTHENTICATED, before_password_change=True)
    @write
    @blp.arguments(PasswordChangeSchema)
    @blp.response(200, PasswordChangedSchema)
    @blp.alt_response(
        422, description="The current password is wrong (a failure) or the new one is refused"
    )
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Change your own password: every bearer token (this one too) and page session ends."""
        revoked = change_password(
            get_session(),
            hasher(),
            require_user(),
            current=data["current_password"],
            new=data["new_password"],
            remote_addr=request.remote_addr or "unknown",
        )
        return {
            "revoked_tokens": revoked,
            "detail": "Password changed. Every token and session ended: sign in again.",
        }
