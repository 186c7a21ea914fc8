"""Pages for one's own password, the users list, and an administrator's reset of someone
else's password."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from marshmallow import ValidationError, fields, validate
from sqlalchemy import select

from app.auth import hasher, login_session
from app.db import get_session
from app.web import bp, signed_in
from app.web.forms import PageForm, messages
from app.writes import undo, write
from lots.access import Permission
from lots.accounts import change_password, reset_password
from lots.errors import DomainError
from lots.models import User
from lots.passwords import MAX_LENGTH, MIN_LENGTH


class PasswordForm(PageForm):
    current_password = fields.String(required=True, validate=validate.Length(1, 256))
    new_password = fields.String(required=True, validate=validate.Length(1, 256))
    repeat_password = fields.String(required=True, validate=validate.Length(1, 256))


class ResetForm(PageForm):
    temporary_password = fields.String(required=True, validate=validate.Length(1, 256))


def _password_page(user: User, *, errors: list[str], done: str | None = None) -> str:
    return render_template(
        "password.html",
        user=user,
        errors=errors,
        done=done,
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
    )


@bp.get("/account/password")
@signed_in(before_password_change=True)
def password(user: User) -> str:
    """Choose a new password (required after an administrator's reset)."""
    return _password_page(user, errors=[])


@bp.post("/account/password")
@signed_in(before_password_change=True)
@write
def password_change(user: User) -> Any:
    """Change the password: every token and every other page session ends."""
    try:
        form = PasswordForm().load(request.form.to_dict())
        if form["new_password"] != form["repeat_password"]:
            raise ValidationError({"repeat_password": ["The two new passwords differ."]})
        revoked = change_password(
            get_session(),
            hasher(),
            user,
            current=form["current_password"],
            new=form["new_password"],
            remote_addr=request.remote_addr or "unknown",
        )
    except ValidationError as error:
        return _password_page(user, errors=messages(error)), 422
    except DomainError as error:
        undo(error)
        return _password_page(user, errors=[error.detail]), error.status
    login_session(user)  # this browser stays signed in under the new password
    done = "Your password is changed. Other sessions ended"
    done += f" and {revoked} API token(s) were revoked." if revoked else "."
    return _password_page(user, errors=[], done=done)


@bp.post("/users/<username>/password-reset")
@signed_in(Permission.USERS_WRITE)
@write
def user_password_reset(user: User, username: str) -> Any:
    """An administrator sets a temporary password the user must change at next sign-in."""
    try:
        form = ResetForm().load(request.form.to_dict())
        reset_password(
            get_session(),
            hasher(),
            actor=user,
            username=username,
            temporary=form["temporary_password"],
            remote_addr=request.remote_addr or "unknown",
        )
    except ValidationError as error:
        return _users_page(user, errors=messages(error), about=username), 422
    except DomainError as error:
        undo(error)
        return _users_page(user, errors=[error.detail], about=username), error.status
    return redirect(url_for("web.users", reset=username), 303)


@bp.get("/users")
@signed_in(Permission.USERS_READ)
def users(user: User) -> str:
    """Everyone who can sign in, with role, site and blinding."""
    return _users_page(user, errors=[], about=None, reset=request.args.get("reset"))


def _users_page(
    user: User, *, errors: list[str], about: str | None, reset: str | None = None
) -> str:
    people = get_session().scalars(select(User).order_by(User.username))
    return render_template(
        "users.html", user=user, people=list(people), errors=errors, about=about, reset=reset
    )
