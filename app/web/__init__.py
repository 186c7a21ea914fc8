"""Server-rendered pages: sign-in, a home page per role, master data and the ledger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from app.auth import current_user, hasher, login_session
from app.db import get_session
from app.keys import trusted_keys
from custody.integrity import verify_record
from custody.ledger import CustodyEvent
from custody.trials import chain_hidden, hidden_kit_chains
from lots.access import Permission, can, sees_all_sites
from lots.accounts import authenticate
from lots.errors import (
    AccountLockedError,
    AuthenticationError,
    ForbiddenError,
    TooManyAttemptsError,
)
from lots.local_time import local_time
from lots.models import AuditEntry, User
from lots.products import get_product, list_products
from lots.rules import describe_line

# The app's own /static route would shadow a blueprint's static folder at the same path.
bp = Blueprint(
    "web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets"
)

# What each role finds on its home page, in the order it needs them.
TILES: list[tuple[Permission, str, str, str]] = [
    (Permission.SCAN, "web.scan", "Scan", "Scan a vial or a shipper: what it is, what to do."),
    (
        Permission.BEDSIDE_CHECK,
        "web.bedside",
        "Bedside",
        "Check the vial against the wristband: GO or NO-GO, then give it with a second person.",
    ),
    (Permission.LOTS_READ, "web.lots", "Lots", "Lots, their QC results, deviations and release."),
    (
        Permission.PRODUCTS_WRITE,
        "web.products",
        "Products and specifications",
        "Create products and new specification versions.",
    ),
    (Permission.PRODUCTS_READ, "web.products", "Products", "Release specifications in force."),
    (
        Permission.LEDGER_VERIFY,
        "web.ledger",
        "Ledger verification",
        "Recompute every chain and check the signed checkpoints.",
    ),
    (Permission.AUDIT_READ, "web.audit", "Audit trail", "Changes to master data and users."),
    (Permission.USERS_READ, "web.users", "Users", "People, roles, sites and blinding."),
]

ROLE_PURPOSE = {
    "admin": "You maintain sites, users and master data.",
    "manufacturing": "You record manufacturing steps and ship released vials.",
    "qc": "You enter QC results against the release specification.",
    "qa": "You own specifications, and release or reject lots with your e-signature.",
    "courier": "You scan the shipper at every handoff.",
    "pharmacist": "You receive shipments, store, dispense and thaw vials.",
    "clinician": "You check the vial against the patient's wristband before every injection.",
    "auditor": "You read and verify the trail; you change nothing.",
}


class LoginForm(Schema):
    username = fields.String(required=True, validate=validate.Length(1, 64))
    password = fields.String(required=True, validate=validate.Length(1, 256))
    csrf_token = fields.String(load_default=None)


def signed_in(
    permission: Permission | None = None, *, before_password_change: bool = False
) -> Callable[..., Any]:
    """A page for signed-in users (optionally with a permission); others go to sign-in. A user
    whose password was reset goes to the password page until they choose a new one."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
            if user.must_change_password and not before_password_change:
                return redirect(url_for("web.password"))
            if permission is not None and not can(user, permission):
                raise ForbiddenError(user.role, str(permission))
            return view(user, *args, **kwargs)

        wrapper.access_rule = str(permission or "authenticated")  # type: ignore[attr-defined]
        return wrapper

    return decorate


@bp.get("/login")
def login() -> str:
    """The sign-in form."""
    return render_template("login.html", error=None, username="")


@bp.post("/login")
def login_submit() -> Any:
    """Check the password, start a session, go home (or where the user was going)."""
    try:
        form = LoginForm().load(request.form.to_dict())
    except ValidationError:
        return render_template(
            "login.html",
            error="Enter your username and password.",
            username=request.form.get("username", ""),
        ), 400
    db = get_session()
    try:
        user = authenticate(
            db,
            hasher(),
            username=form["username"],
            password=form["password"],
            remote_addr=request.remote_addr or "unknown",
            channel="web",
        )
    except (AuthenticationError, TooManyAttemptsError, AccountLockedError) as error:
        db.commit()
        status = error.status
        return render_template("login.html", error=error.detail, username=form["username"]), status
    db.commit()
    login_session(user)
    if user.must_change_password:
        return redirect(url_for("web.password"))
    target = request.args.get("next", "")
    # Only local paths: an open redirect after sign-in is a phishing tool.
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("web.home")
    return redirect(target)


@bp.post("/logout")
def logout() -> WerkzeugResponse:
    """End the page session."""
    session.clear()
    return redirect(url_for("web.login"))


@bp.get("/")
@signed_in()
def home(user: User) -> str:
    """The signed-in user's home page: what their role does here."""
    seen: set[str] = set()
    tiles = []
    for permission, endpoint, title, text in TILES:
        if can(user, permission) and endpoint not in seen:
            seen.add(endpoint)
            tiles.append({"href": url_for(endpoint), "title": title, "text": text})
    return render_template(
        "home.html",
        user=user,
        purpose=ROLE_PURPOSE[user.role],
        tiles=tiles,
        events=latest_events(user),
    )


@bp.app_template_filter("local_time")
def local_time_filter(moment: dt.datetime | None, time_zone: str) -> str:
    """A moment as wall-clock time at a site, with its offset: "2026-12-07 20:15 (UTC+08:00)"."""
    if moment is None:
        return "—"
    local = local_time(moment, time_zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


def latest_events(user: User, count: int = 10) -> list[CustodyEvent]:
    """The newest events of the user's site (every site's for oversight), each on a chain
    the user may read: a blinded kit vial's chain, or a lot's the user cannot open, is
    left out, as the chain API leaves it out."""
    session = get_session()
    statement = select(CustodyEvent).order_by(CustodyEvent.id.desc())
    if not user.unblinded:
        statement = statement.where(CustodyEvent.chain.not_in(hidden_kit_chains()))
    if not sees_all_sites(user):
        statement = statement.where(CustodyEvent.site_id == user.site_id)
    shown: list[CustodyEvent] = []
    readable: dict[str, bool] = {}
    for event in session.scalars(statement.limit(count * 5)):
        if event.chain not in readable:
            readable[event.chain] = not chain_hidden(session, user, event.chain)
        if readable[event.chain]:
            shown.append(event)
        if len(shown) == count:
            break
    return shown


@bp.get("/products")
@signed_in(Permission.PRODUCTS_READ)
def products(user: User) -> str:
    """Every product with its current version."""
    return render_template("products.html", user=user, products=list_products(get_session()))


@bp.get("/products/<code>")
@signed_in(Permission.PRODUCTS_READ)
def product(user: User, code: str) -> str:
    """One product: its versions and the specification of each."""
    found = get_product(get_session(), code)
    selected = request.args.get("version", type=int) or found.current.version
    version = next((v for v in found.versions if v.version == selected), found.current)
    return render_template(
        "product.html",
        user=user,
        product=found,
        version=version,
        describe=describe_line,
    )


@bp.get("/ledger")
@signed_in(Permission.LEDGER_VERIFY)
def ledger(user: User) -> str:
    """Verify the ledger now and show the result."""
    report = verify_record(get_session(), trusted_keys())
    return render_template("ledger.html", user=user, report=report)


@bp.get("/audit")
@signed_in(Permission.AUDIT_READ)
def audit(user: User) -> str:
    """The newest changes to master data and users."""
    entries = get_session().scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(200))
    return render_template("audit.html", user=user, entries=list(entries))


def init_app(app: Flask) -> None:
    """Register the pages and the template helpers."""
    app.register_blueprint(bp)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"current_user": current_user}

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


from app.web import account as _account  # noqa: E402,F401 - password change and reset pages
from app.web import bedside as _bedside  # noqa: E402,F401 - registers the bedside pages on `bp`
from app.web import investigations as _investigations  # noqa: E402,F401 - the lot's OOS steps
from app.web import labels as _labels  # noqa: E402,F401 - registers the label pages on `bp`
from app.web import lots as _lots  # noqa: E402,F401 - registers the lot pages on `bp`
from app.web import shipments as _shipments  # noqa: E402,F401 - registers scan and shipment pages
from app.web import temperature as _temperature  # noqa: E402,F401 - shipment temperature section
from app.web import trials as _trials  # noqa: E402,F401 - registers the trial pages on `bp`
