"""Test world builders."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from app import demo

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(client: FlaskClient, username: str) -> str:
    """Sign a demo user in through the form; the page's CSRF token for later posts."""
    token = TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    password = next(user.password for user in demo.USERS if user.username == username)
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return TOKEN.search(client.get("/").get_data(as_text=True)).group(1)
