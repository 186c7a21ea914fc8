"""Who is asking: bearer tokens for the API, sessions for pages; and each view's access rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from argon2 import PasswordHasher
from flask import current_app, g, request, session
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from app.db import get_session
from lots.access import Permission, can, can_see
from lots.accounts import password_hasher, resolve_token
from lots.errors import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    PasswordChangeRequiredError,
)
from lots.models import User

P = ParamSpec("P")
R = TypeVar("R")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = "public"
AUTHENTICATED = "authenticated"


def hasher() -> PasswordHasher:
    """The app's argon2 hasher."""
    return password_hasher(current_app.config["PASSWORD_HASHER"])


def current_user() -> User | None:
    """The signed-in user of this request, by bearer token or page session."""
    if "user" in g:
        return g.user  # type: ignore[no-any-return]
    user = None
    g.auth_via = None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthenticationError("Use 'Authorization: Bearer <token>'.")
        token = resolve_token(get_session(), secret.strip())
        user, g.auth_via, g.token_id = token.user, "token", token.id
    elif "user_id" in session:
        candidate = get_session().get(User, session["user_id"])
        if (
            candidate is not None
            and candidate.active
            and (session.get("auth_stamp") == _auth_stamp(candidate))
        ):
            user, g.auth_via = candidate, "session"
        else:
            session.clear()
    g.user = user
    return user


def login_session(user: User) -> None:
    """Start a page session for the user."""
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["auth_stamp"] = _auth_stamp(user)


def requires(
    permission: Permission | str, *, before_password_change: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare and enforce a view's access rule: a permission, AUTHENTICATED or PUBLIC.

    A user whose password an administrator reset reaches only the views marked
    `before_password_change` (choosing the new password, signing out).
    """

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if permission != PUBLIC:
                user = require_user()
                if user.must_change_password and not before_password_change:
                    raise PasswordChangeRequiredError
                if permission != AUTHENTICATED and not can(user, Permission(permission)):
                    raise ForbiddenError(user.role, str(permission))
            return view(*args, **kwargs)

        wrapper.access_rule = str(permission)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def require_user() -> User:
    """The signed-in user, or 401; session-authenticated writes must carry the CSRF token."""
    user = current_user()
    if user is None:
        raise AuthenticationError("Sign in, or send a bearer token.")
    if g.auth_via == "session" and request.method not in SAFE_METHODS:
        try:
            validate_csrf(request.headers.get("X-CSRFToken") or request.form.get("csrf_token"))
        except ValidationError as error:
            raise CSRFError(str(error)) from error
    return user


def ensure_visible(user: User, site_ids: Iterable[int | None], kind: str, key: object) -> None:
    """404, never 403, for a record of a site the user may not see: its existence is private."""
    if not can_see(user, site_ids):
        raise NotFoundError(kind, key)


def access_rule(view: Callable[..., Any]) -> str | None:
    """The rule a view declared with `requires`, if any."""
    return getattr(view, "access_rule", None)


def _auth_stamp(user: User) -> str:
    # Changing the password or deactivating the user ends their open page sessions.
    return f"{user.password_changed_at.timestamp():.6f}:{int(user.active)}"
