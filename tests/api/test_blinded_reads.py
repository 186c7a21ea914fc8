"""What a page or an export names, the reader may open: one rule (`chain_hidden`) for the
chain API, the ledger export and the home page, for every user, after the demo's two doses
(the open-label one and the blinded kit's)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app import demo
from app.demo.doses import load_first_dose, load_sepsis_dose
from custody.ledger import CustodyEvent
from custody.trials import Kit, Trial
from lots.access import Permission, roles_allowed
from lots.accounts import password_hasher
from lots.batch import Vial
from lots.models import User
from tests.worlds.pages import sign_in

CHAIN_CELL = re.compile(r"<td>((?:vial|lot|subject|shipment|trial|site|product|bank):[^<]+)</td>")
USERNAMES = [user.username for user in demo.USERS]
EXPORTERS = [
    user.username for user in demo.USERS if user.role in roles_allowed(Permission.LEDGER_EXPORT)
]


@pytest.fixture
def dosed(session):
    passwords = {user.username: user.password for user in demo.USERS}
    hasher = password_hasher("cheapest")
    assert load_first_dose(session, hasher, passwords)
    assert load_sepsis_dose(session, hasher, passwords)
    session.commit()


def _kit_chains(session) -> set[str]:
    return {
        f"vial:{serial}"
        for serial in session.scalars(
            select(Vial.serial)
            .join(Kit, Kit.vial_id == Vial.id)
            .join(Trial, Trial.id == Kit.trial_id)
            .where(Trial.blinded.is_(True))
        )
    }


@pytest.mark.usefixtures("dosed")
@pytest.mark.parametrize("username", USERNAMES)
def test_every_chain_on_the_home_page_opens_for_its_reader(app, session, auth_headers, username):
    client = app.test_client()
    sign_in(client, username)
    page = client.get("/").get_data(as_text=True)
    chains = set(CHAIN_CELL.findall(page))
    assert chains, f"{username}'s home page lists no events"
    headers = auth_headers(username)
    unreadable = [
        chain
        for chain in sorted(chains)
        if client.get(f"/api/v1/ledger/chains/{chain}", headers=headers).status_code != 200
    ]
    assert unreadable == []
    if not _user(session, username).unblinded:
        assert chains.isdisjoint(_kit_chains(session))


@pytest.mark.usefixtures("dosed")
@pytest.mark.parametrize("username", EXPORTERS)
def test_the_export_answers_a_chain_as_the_chain_api_does(app, session, auth_headers, username):
    client, headers = app.test_client(), auth_headers(username)
    chains = sorted(set(session.scalars(select(CustodyEvent.chain).distinct())))
    custody = [chain for chain in chains if chain.startswith(("vial:", "lot:", "shipment:"))]
    differ = []
    for chain in custody:
        read = client.get(f"/api/v1/ledger/chains/{chain}", headers=headers).status_code
        export = client.get(
            f"/api/v1/ledger/export?format=epcis&chain={chain}", headers=headers
        ).status_code
        if (read == 404) != (export == 404):
            differ.append((chain, read, export))
    assert differ == []


@pytest.mark.usefixtures("dosed")
def test_a_blinded_readers_export_holds_no_event_of_a_kits_vial(app, session, auth_headers):
    kit_serials = {chain.removeprefix("vial:") for chain in _kit_chains(session)}
    blinded = [name for name in EXPORTERS if not _user(session, name).unblinded]
    assert blinded
    for username in blinded:
        text = (
            app.test_client()
            .get("/api/v1/ledger/export?format=epcis", headers=auth_headers(username))
            .get_data(as_text=True)
        )
        assert [serial for serial in kit_serials if serial in text] == [], username


def _user(session, username: str) -> User:
    return session.scalar(select(User).where(User.username == username))
