"""Every action a scan offers is one the user may take: for every demo user and a scan of
each lot's first and last vial, every shipper, every kit and every subject, each offered GET
answers 200 to that user, and each offered POST reaches a route the user's role may call
(an empty body is refused for its content, never as forbidden, unknown or not allowed)."""

from __future__ import annotations

from sqlalchemy import func, select

from app import demo
from app.auth import access_rule
from custody.shipping import Shipment
from custody.trials import Kit, Subject
from lots.access import Permission, roles_allowed
from lots.batch import Vial
from lots.models import User
from tests.worlds.pages import sign_in

USERNAMES = [user.username for user in demo.USERS]


def _codes(session) -> list[str]:
    first_last = (
        select(func.min(Vial.serial))
        .group_by(Vial.lot_id)
        .union(select(func.max(Vial.serial)).group_by(Vial.lot_id))
    )
    return sorted(
        {
            *session.scalars(first_last),
            *session.scalars(select(Shipment.sscc)),
            *session.scalars(select(Kit.number)),
            *session.scalars(select(Subject.code)),
        }
    )


def _post_rule(app, path: str) -> str | None:
    """The access rule of the view that answers a POST to `path`."""
    endpoint, _ = app.url_map.bind("localhost").match(path, method="POST")
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    return access_rule(view_class.post if view_class is not None else view)


def test_every_offered_action_is_one_the_user_may_take(app, session, auth_headers):
    offered: set[str] = set()
    refused = []
    for username in USERNAMES:
        refused += _refused(app, session, auth_headers, username, offered)
    assert refused == [], refused
    # The crawl met the actions worth checking, not an empty list.
    assert {
        "view_vial",
        "view_lot",
        "print_label",
        "recall_lot",
        "view_shipment",
        "thaw_vial",
    } <= offered


def _refused(app, session, auth_headers, username, offered: set[str]) -> list[tuple]:
    user = session.scalar(select(User).where(User.username == username))
    headers = auth_headers(username)
    client = app.test_client()
    sign_in(client, username)
    refused = []
    for code in _codes(session):
        answer = client.post("/api/v1/scans", json={"code": code}, headers=headers)
        assert answer.status_code == 200, (code, answer.json)
        for action in answer.json["actions"]:
            offered.add(action["action"])
            href, method = action["href"], action["method"]
            if method == "GET":
                response = client.get(href, headers=headers if href.startswith("/api") else {})
                if response.status_code != 200:
                    refused.append((username, code, action["action"], response.status_code))
                continue
            rule = _post_rule(app, href.split("?")[0])
            permission = Permission(rule) if rule in set(Permission) else None
            if permission is not None and user.role not in roles_allowed(permission):
                refused.append((username, code, action["action"], "role"))
            response = client.post(href, json={}, headers=headers)
            if response.status_code in (403, 404, 405):
                refused.append((username, code, action["action"], response.status_code))
    return refused
