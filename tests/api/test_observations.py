"""An observation goes on the writer's own site chain only: writing on another site's chain
would open it to the writer, so it reads as an unknown site (404) and records nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from app import demo
from custody.ledger import CustodyEvent
from lots.access import Permission, roles_allowed, sees_all_sites
from lots.models import Site, User
from tests.worlds.api import scalar


def test_an_observation_goes_only_on_the_writers_own_site_chain(app, client, session, auth_headers):
    sites = sorted(session.scalars(select(Site.code)))
    writers = [
        user
        for user in session.scalars(select(User))
        if user.role in roles_allowed(Permission.LEDGER_WRITE)
        and not sees_all_sites(user)
        and user.username in {u.username for u in demo.USERS}
    ]
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat()
    for user in writers:
        for code in sites:
            before = scalar(app, select(func.count(CustodyEvent.id)))
            response = client.post(
                "/api/v1/ledger/events",
                headers=auth_headers(user.username),
                json={"chain": f"site:{code}", "occurred_at": at, "note": "Checked"},
            )
            own = code == user.site.code
            assert response.status_code == (201 if own else 404), (user.username, code)
            after = scalar(app, select(func.count(CustodyEvent.id)))
            assert after == before + (1 if own else 0)
    assert writers
