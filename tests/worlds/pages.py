"""Test world builders."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from app import demo

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


# What differs between two renders of one page by time alone: the CSRF token (a signed
# timestamp) in a form and in the page's data attribute.
_TOKENS = re.compile(r'(name="csrf_token" value="|data-token=")[^"]+"')


def without_tokens(text: str) -> str:
    """A page with its time-dependent tokens blanked, for comparing two renders."""
    return _TOKENS.sub(r'\1TOKEN"', text)


def sign_in(client: FlaskClient, username: str) -> str:
    """Sign a demo user in through the form; the page's CSRF token for later posts."""
    token = TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    password = next(user.password for user in demo.USERS if user.username == username)
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return TOKEN.search(client.get("/").get_data(as_text=True)).group(1)


def csrf_token(client: FlaskClient) -> str:
    """A CSRF token for this client's session (the sign-in form always carries one)."""
    return TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
