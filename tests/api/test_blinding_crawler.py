"""The blinding crawler: every page route and every API GET in the URL map, for every user
without the unblinded flag, in two worlds that differ only in which arm two kits belong to.

The worlds: the demo, with one arm's lot recalled, and then the same database with
the numbers of two kits swapped, one of each arm, in one packaging lot, with the same
history (both in stock at the pharmacy, unallocated). Every kit number, vial, lot, event and
subject is the same in both; only the arm behind kit A and kit B differs. A blinded reader
must not be able to tell the two worlds apart: each response (status, type, body after
removing ids, times, hashes and form tokens, and its size) must be identical.

Both worlds are built twice, once with the control arm's lot recalled and once with the
active arm's; and a third comparison crawls what a blinded person learns of kits (the trial's
pages, kits, subjects, scans and bedside) in those two recall worlds: which arm's lot was
recalled must not show through any kit.

The URLs are generated from `app.url_map`, their parameters filled from the database, so a
route added tomorrow is crawled the day it is added (an unfilled route fails the test).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.routing import Rule

from app import demo
from app.demo.doses import load_first_dose, load_sepsis_dose
from app.demo.trials import SEPSIS_TRIAL
from custody.ledger import CustodyEvent
from custody.shipping import Shipment
from custody.trials import (
    Administration,
    BedsideCheck,
    Kit,
    Subject,
    get_trial,
    kit_views,
    trial_kits,
)
from lots.batch import CellBank, Donor, Lot, Vial
from lots.models import Product, Site, User
from tests.worlds.blinding import kit_label
from tests.worlds.manufacturing import HASHER, qa_recalls
from tests.worlds.pages import sign_in

# Routes that serve the same bytes to everyone (assets, the API's own documentation).
PUBLIC_FILES = {"static", "web.static", "swagger_ui_static", "api-docs.openapi_swagger_ui"}
NOISE = [
    # Event ids derived from hashes first: the hash pattern below would eat their tails.
    re.compile(r"\bv?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
    re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?"),  # times
    re.compile(r"\b\d\d:\d\d(:\d\d)?\b"),  # local clock times on pages
    re.compile(r"\b[0-9a-f]{12,}\b"),  # hashes (whole or cut short), references
    re.compile(r'name="csrf_token" value="[^"]+"'),
    re.compile(r'data-token="[^"]+"'),
    re.compile(rb"/(CreationDate|ModDate) \(D:[^)]*\)".decode()),
    re.compile(r"/ID \[<[0-9a-fA-F]+><[0-9a-fA-F]+>\]"),
]
ID_KEYS = re.compile(r"^(id|.*_id)$")


def _blinded_users(session: Session) -> list[str]:
    return sorted(session.scalars(select(User.username).where(User.unblinded.is_(False))))


def _swap_pair(session: Session) -> tuple[Kit, Kit]:
    """Two unallocated kits of different arms in one packaging lot with the same history
    (their vials' states and places)."""
    trial = get_trial(session, SEPSIS_TRIAL)
    kits = trial_kits(session, trial)
    views = kit_views(session, kits)
    free = [kit for kit in kits if views[kit.id].subject is None]
    for first in free:
        for second in free:
            if (
                first.arm_id != second.arm_id
                and first.packaging_lot == second.packaging_lot
                and views[first.id].state == views[second.id].state
            ):
                return first, second
    raise AssertionError("the demo has no two free kits of different arms to swap")


def _swap_numbers(session: Session, first: Kit, second: Kit) -> None:
    one, other = first.number, second.number
    session.execute(update(Kit).where(Kit.id == first.id).values(number="swap-tmp"))
    session.execute(update(Kit).where(Kit.id == second.id).values(number=one))
    session.execute(update(Kit).where(Kit.id == first.id).values(number=other))
    session.commit()
    session.expire_all()


def one(name: str, items: Iterable[Any]) -> list[dict[str, Any]]:
    return [{name: item} for item in items]


def _values(session: Session, pair: tuple[Kit, Kit]) -> dict[str, list[dict[str, Any]]]:
    """Parameter sets by endpoint, read from the database."""
    trial = get_trial(session, SEPSIS_TRIAL)
    kit_vials = [kit.vial for kit in pair]
    some_vials = [
        *kit_vials,
        session.scalars(select(Vial).where(Vial.serial.like("XS228-%"))).first(),
    ]
    serials = [vial.serial for vial in some_vials] + [kit.number for kit in pair]
    lots = list(session.scalars(select(Lot.number)))
    subjects = list(session.scalars(select(Subject).where(Subject.trial_id == trial.id)))
    chains = (
        [vial.chain for vial in kit_vials]
        + [f"lot:{number}" for number in lots]
        + [f"subject:{SEPSIS_TRIAL}:{subject.code}" for subject in subjects]
        + [f"trial:{SEPSIS_TRIAL}"]
        + [f"site:{code}" for code in session.scalars(select(Site.code))]
    )
    events = list(session.scalars(select(CustodyEvent).where(CustodyEvent.chain.in_(chains))))
    subject_keys = [{"protocol_id": SEPSIS_TRIAL, "code": subject.code} for subject in subjects]
    products = list(session.scalars(select(Product)))
    gs1 = [
        {
            "gtin": vial.lot.product_version.product.gtin,
            "lot": vial.lot.number,
            "serial": vial.serial,
        }
        for vial in kit_vials
    ] + [
        {"gtin": trial.blinded_gtin, "lot": kit.packaging_lot, "serial": kit.number} for kit in pair
    ]
    return {
        "web.shipper_link": one("sscc", session.scalars(select(Shipment.sscc))),
        "web.vial_link": gs1,
        "bedside.AdministrationById": one(
            "administration_id", session.scalars(select(Administration.id))
        ),
        "banks.BankByCode": one("code", session.scalars(select(CellBank.code))),
        "trace.BankTrace": one("code", session.scalars(select(CellBank.code))),
        "banks.DonorByCode": one("code", session.scalars(select(Donor.code))),
        "trace.DonorTrace": one("code", session.scalars(select(Donor.code))),
        "bedside.BedsideCheckByReference": one(
            "reference", session.scalars(select(BedsideCheck.reference))
        ),
        "web.bedside_result": one("reference", session.scalars(select(BedsideCheck.reference))),
        "fhir.BiologicallyDerivedProductDispense": one(
            "administration_id", session.scalars(select(Administration.id))
        ),
        "fhir.ProvenanceByHash": one("event_hash", [event.hash for event in events]),
        "ledger.Chain": one("chain", chains),
        "ledger.EventById": one("event_id", [event.id for event in events]),
        "products.ProductByCode": one("code", [product.code for product in products]),
        "products.ProductVersions": one("code", [product.code for product in products]),
        "products.ProductVersionByNumber": [
            {"code": product.code, "version": version.version}
            for product in products
            for version in product.versions
        ],
        "web.product": one("code", [product.code for product in products]),
        "sites.SiteByCode": one("code", session.scalars(select(Site.code))),
        "trials.SubjectByCode": subject_keys,
        "trials.SubjectWristband": subject_keys,
        "web.subject_wristband": subject_keys,
        "users.UserByName": one("username", session.scalars(select(User.username))),
        "serial": one("serial", serials),
        "number": one("number", lots),
        "sscc": one("sscc", session.scalars(select(Shipment.sscc))),
        "protocol_id": one("protocol_id", [SEPSIS_TRIAL]),
    }


def _queries(pair: tuple[Kit, Kit]) -> list[str]:
    """GETs whose answer depends on a query string."""
    kit_chain = pair[0].vial.chain
    return [
        "/api/v1/ledger/export?format=epcis",
        f"/api/v1/ledger/export?format=epcis&chain={kit_chain}",
        f"/api/v1/ledger/export?format=epcis&chain=trial:{SEPSIS_TRIAL}",
        f"/api/v1/subjects?trial={SEPSIS_TRIAL}",
        f"/api/v1/trials/{SEPSIS_TRIAL}/kits/labels?format=svg",
        f"/api/v1/trials/{SEPSIS_TRIAL}/kits/labels?format=zpl",
        f"/api/v1/trials/{SEPSIS_TRIAL}/kits/labels?format=pdf",
        f"/api/v1/fhir/Provenance?target={kit_chain}",
        "/api/v1/audit?limit=500",
    ]


def urls(app: Flask, session: Session, pair: tuple[Kit, Kit]) -> list[str]:
    """One URL per parameter set of every GET route; fails on a route it cannot fill."""
    values = _values(session, pair)
    found: list[str] = []
    unfilled = []
    with app.test_request_context():
        for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
            if "GET" not in (rule.methods or ()) or rule.endpoint in PUBLIC_FILES:
                continue
            sets = _parameter_sets(rule, values)
            if sets is None:
                unfilled.append(rule.rule)
                continue
            found += [rule.build(params, append_unknown=False)[1] for params in sets]
    assert unfilled == [], f"no values to crawl {unfilled}: add them to _values"
    return sorted(set(found)) + _queries(pair)


# What a route is crawled with when the world holds none of its records (it answers 404).
ABSENT: dict[str, Any] = {"administration_id": 999_999, "reference": "NO-SUCH-CHECK"}


def _parameter_sets(rule: Rule, values: dict[str, list[dict[str, Any]]]) -> list | None:
    if not rule.arguments:
        return [{}]
    if rule.endpoint in values:
        return values[rule.endpoint] or (
            [{name: ABSENT[name] for name in rule.arguments}]
            if rule.arguments <= ABSENT.keys()
            else None
        )
    (argument,) = rule.arguments if len(rule.arguments) == 1 else (None,)
    return values.get(argument) if argument else None


def normalised(body: bytes, mimetype: str) -> bytes:
    if mimetype.endswith("json"):
        return orjson.dumps(_without_ids(orjson.loads(body)), option=orjson.OPT_SORT_KEYS)
    if mimetype.startswith("image/png"):
        return body
    text = pdf_text(body) if mimetype == "application/pdf" else body.decode(errors="replace")
    for pattern in NOISE:
        text = pattern.sub("~", text)
    return text.encode()


def pdf_text(pdf: bytes) -> str:
    """A PDF's text, page by page: its bytes carry compressed creation times."""
    return "\f".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_ids(item) for key, item in value.items() if not ID_KEYS.match(key)}
    if isinstance(value, list):
        return [_without_ids(item) for item in value]
    if isinstance(value, str):
        for pattern in NOISE:
            value = pattern.sub("~", value)
    return value


def scans(session: Session, app: Flask, pair: tuple[Kit, Kit]) -> list[dict[str, str]]:
    """The scans a blinded user makes of the two kits: their labels and their numbers."""
    return [{"code": kit_label(session, app, kit.number)} for kit in pair] + [
        {"code": kit.number} for kit in pair
    ]


def crawl(
    clients: dict[str, FlaskClient],
    headers: dict[str, dict],
    paths: list[str],
    scanned: list[dict[str, str]],
):
    answers = {}
    for username, client in clients.items():
        for path in paths:
            response = client.get(
                path, headers=headers[username] if path.startswith("/api") else {}
            )
            body = normalised(response.get_data(), response.mimetype)
            answers[username, path] = (response.status_code, response.mimetype, len(body), body)
        for number, scan in enumerate(scanned):
            response = client.post("/api/v1/scans", json=scan, headers=headers[username])
            body = normalised(response.get_data(), response.mimetype)
            key = (username, f"POST /api/v1/scans #{number}")
            answers[key] = (response.status_code, response.mimetype, len(body), body)
    return answers


@pytest.fixture
def readers(app: Flask, session: Session, auth_headers) -> tuple[dict[str, FlaskClient], dict]:
    """Every blinded user: a signed-in page client and API headers for each."""
    users = _blinded_users(session)
    signed_in = {}
    for username in users:
        client = app.test_client()
        sign_in(client, username)
        signed_in[username] = client
    return signed_in, {username: auth_headers(username) for username in users}


def _recalled_lot(session: Session, control: bool) -> str:
    """The lot of the control arm's product, or of the active arm's."""
    arm = next(arm for arm in get_trial(session, SEPSIS_TRIAL).arms if arm.control is control)
    product = next(link.product for link in arm.products)
    lot = session.scalar(select(Lot.number).where(Lot.product_version.has(product_id=product.id)))
    assert lot is not None
    return lot


def _world(app, session, recall_control: bool) -> tuple[tuple[Kit, Kit], list[str], list]:
    """The demo with both seed doses given and one arm's lot recalled: the pair of kits to
    swap and what to crawl."""
    passwords = {user.username: user.password for user in demo.USERS}
    load_first_dose(session, HASHER, passwords)  # the open-label dose and the blinded one
    load_sepsis_dose(session, HASHER, passwords)
    pair = _swap_pair(session)  # the same history: chosen before the recall
    recalled = _recalled_lot(session, recall_control)
    qa_recalls(session, "lot", recalled, reason="Lot found out of specification")
    session.commit()
    paths, scanned = urls(app, session, pair), scans(session, app, pair)
    paths += [f"/scan?{urlencode(scan)}" for scan in scanned]  # the scan page of each kit
    return pair, paths, scanned


@pytest.mark.parametrize(
    "recall_control", [True, False], ids=["control recalled", "active recalled"]
)
def test_no_blinded_user_can_tell_two_worlds_that_differ_only_in_kit_arms(
    app, connection, session, readers, recall_control
):
    clients, headers = readers
    pair, paths, scanned = _world(app, session, recall_control)
    # Reads may write (label prints, audit entries): each world is crawled from the same
    # start, and what the crawl wrote is rolled back before the next.
    world = connection.begin_nested()
    before = crawl(clients, headers, paths, scanned)
    world.rollback()
    session.expire_all()
    _swap_numbers(session, *pair)
    after = crawl(clients, headers, paths, scanned)

    differ = [key for key in before if before[key] != after[key]]
    assert differ == [], _report(before, after, differ)
    answered = {path for (_, path), (status, *_) in before.items() if status == 200}
    # The crawl reached the trial's pages and lists, not only refusals.
    assert {"/", f"/trials/{SEPSIS_TRIAL}", f"/api/v1/trials/{SEPSIS_TRIAL}/kits"} <= answered


# What a blinded person learns of kits: the trial's pages and lists, the kits, the subjects,
# the scans and the bedside. Which lot was recalled may show elsewhere (a lot's own page, to
# those who may open it); through these it must not.
# A bedside check's reference is random in each world: its page is judged within a world.
KIT_FACING = re.compile(r"/trials/|/kits|/subjects|/scan|/bedside|POST /api/v1/scans")
CHECK_PAGE = re.compile(r"/bedside/(checks/)?[\w-]{16,}$")


def test_no_blinded_user_can_tell_which_arm_s_lot_was_recalled_from_the_kits(
    app, connection, session, readers
):
    clients, headers = readers
    answers = []
    for recall_control in (True, False):
        session.commit()  # the session's savepoint must open inside the world, not under it
        world = connection.begin_nested()
        _pair, paths, scanned = _world(app, session, recall_control)
        kit_facing = [p for p in paths if KIT_FACING.search(p) and not CHECK_PAGE.search(p)]
        answers.append(crawl(clients, headers, kit_facing, scanned))
        session.rollback()  # the session's own savepoint first, then the world under it
        world.rollback()
        session.expire_all()
    control, active = answers
    differ = [key for key in control if control[key] != active[key]]
    assert differ == [], _report(control, active, differ)
    answered = {path for (_, path), (status, *_) in control.items() if status == 200}
    assert f"/api/v1/trials/{SEPSIS_TRIAL}/kits" in answered


def _report(before, after, differ) -> str:
    lines = [f"{len(differ)} responses tell the worlds apart: {differ}"]
    for key in differ[:12]:
        one, other = before[key], after[key]
        lines.append(f"  {key}: {one[:3]} vs {other[:3]}")
        if one[3] != other[3]:
            a, b = one[3], other[3]
            at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
            lines.append(f"    {a[max(0, at - 80) : at + 80]!r}")
            lines.append(f"    {b[max(0, at - 80) : at + 80]!r}")
    return "\n".join(lines)
