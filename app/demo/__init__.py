"""The demo data: the seed trials' sites, users, products, banks, lots, trials and doses,
made through the same services as every user's work (`celltrail demo load`)."""

from __future__ import annotations

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo.doses import load_first_dose, load_sepsis_dose
from app.demo.lots import XS228_RESULTS, load_banks, load_lots
from app.demo.people import ACTOR, SITES, TIME_ZONE, USERS, WARD_PHARMACY, DemoUser, gs1
from app.demo.products import PRODUCTS
from app.demo.trials import load_trials
from lots.accounts import create_site, create_user
from lots.models import Product, Site, User
from lots.products import create_product

__all__ = ["PRODUCTS", "SITES", "USERS", "XS228_RESULTS", "DemoUser", "is_empty", "load"]


def is_empty(session: Session) -> bool:
    """Whether the database holds no users yet (a first start)."""
    return session.scalar(select(User.id).limit(1)) is None


def load(session: Session, hasher: PasswordHasher, *, first_dose: bool = False) -> list[str]:
    """Create whatever of the demo data is missing; running it twice changes nothing.

    `first_dose` also doses the seeds' subjects (app.demo.doses): SCI-001 from
    XS228-2610-01-V0001 and SEP-001 from its kit. Those vials then leave stock, which many
    tests still take as in stock, so `celltrail demo load` asks for it and the suite does not.
    """
    created: list[str] = []
    for code, name, kind, gln in SITES:
        if session.scalar(select(Site.id).where(Site.code == code)) is None:
            create_site(
                session,
                actor=ACTOR,
                code=code,
                name=name,
                kind=kind,
                gln=gs1(gln),
                time_zone=TIME_ZONE,
                supplied_by_code=WARD_PHARMACY.get(code),
            )
            created.append(f"site {code}")
    for product in PRODUCTS:
        if session.scalar(select(Product.id).where(Product.code == product["code"])) is None:
            create_product(session, actor=ACTOR, **product)
            created.append(f"product {product['code']}")
    for user in USERS:
        if session.scalar(select(User.id).where(User.username == user.username)) is None:
            create_user(
                session,
                hasher,
                actor=ACTOR,
                username=user.username,
                full_name=user.full_name,
                role=user.role,
                site_code=user.site,
                password=user.password,
                unblinded=user.unblinded,
            )
            created.append(f"user {user.username}")
    created += load_banks(session)
    created += load_lots(session, hasher)
    created += load_trials(session, hasher, {u.username: u.password for u in USERS})
    if first_dose:
        passwords = {u.username: u.password for u in USERS}
        created += load_first_dose(session, hasher, passwords)
        created += load_sepsis_dose(session, hasher, passwords)
    return created
