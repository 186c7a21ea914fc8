"""The `celltrail` command: a Flask CLI group over create_app."""

from __future__ import annotations

import base64
import json
import secrets
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup
from sqlalchemy.orm import Session

from app import demo
from app.db import database
from app.keys import signing_key, trusted_keys
from app.migrate import upgrade
from custody.checkpoints import load_private_key, public_key_text
from custody.ledger import create_checkpoint, settle_ledger, verify_ledger
from lots.access import Role
from lots.accounts import create_user, password_hasher
from lots.errors import DomainError

db_cli = AppGroup("db", help="The database schema.")
demo_cli = AppGroup("demo", help="Demo data from the trial documents.")
users_cli = AppGroup("users", help="User accounts.")
ledger_cli = AppGroup("ledger", help="The custody ledger.")


def _session() -> Session:
    return database().sessions()


@db_cli.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations."""
    upgrade(current_app.config["DATABASE_URL"], revision=revision)
    click.echo(f"Database at revision {revision}.")


@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Only on a database with no users yet.")
def demo_load(if_empty: bool) -> None:
    """Load the demo sites, products and users (idempotent), and print the logins."""
    with _session() as session, session.begin():
        if if_empty and not demo.is_empty(session):
            click.echo("Demo data not loaded: the database already has users.")
        else:
            created = demo.load(session, password_hasher(current_app.config["PASSWORD_HASHER"]))
            click.echo(f"Demo data: {len(created)} records created.")
    click.echo("Demo logins (username / password, role @ site):")
    for user in demo.USERS:
        click.echo(f"  {user.username:<15} {user.password:<28} {user.role} @ {user.site}")


@users_cli.command("create")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="Printed name, used on signatures.")
@click.option("--role", type=click.Choice([role.value for role in Role]), required=True)
@click.option("--site", "site_code", required=True, help="Site code.")
@click.option("--unblinded", is_flag=True)
@click.password_option(help="At least 12 characters.")
def users_create(  # noqa: PLR0917 - click passes each option positionally
    username: str, full_name: str, role: str, site_code: str, unblinded: bool, password: str
) -> None:
    """Create a user."""
    try:
        with _session() as session, session.begin():
            create_user(
                session,
                password_hasher(current_app.config["PASSWORD_HASHER"]),
                actor="cli",
                username=username,
                full_name=full_name,
                role=role,
                site_code=site_code,
                password=password,
                unblinded=unblinded,
            )
    except DomainError as error:
        raise click.ClickException(error.detail) from error
    click.echo(f"User {username} created ({role} @ {site_code}).")


@ledger_cli.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def ledger_verify(as_json: bool) -> None:
    """Recompute every chain and check every checkpoint; exit 1 when anything is broken."""
    with _session() as session:
        report = verify_ledger(session, trusted_keys())
    broken = report.first_break
    if as_json:
        click.echo(
            json.dumps(
                {
                    "intact": report.intact,
                    "events": report.events,
                    "chains": report.chains,
                    "checkpoints": report.checkpoints,
                    "first_break": None if broken is None else broken.__dict__,
                }
            )
        )
    elif broken is None:
        click.echo(
            f"Ledger intact: {report.events} events in {report.chains} chains, "
            f"{report.checkpoints} checkpoints verified."
        )
    else:
        where = f"event {broken.seq} of {broken.chain}" if broken.seq else broken.chain
        click.echo(f"Ledger BROKEN at {where} (id {broken.event_id}): {broken.reason}.")
    if broken is not None:
        sys.exit(1)


@ledger_cli.command("checkpoint")
def ledger_checkpoint() -> None:
    """Sign the current ledger with the Ed25519 key from CELLTRAIL_CHECKPOINT_KEY."""
    try:
        key = signing_key()
    except DomainError as error:
        raise click.ClickException(error.detail) from error
    with _session() as session:
        with session.begin():
            upto = settle_ledger(session)
        with session.begin():
            checkpoint = create_checkpoint(session, key, upto=upto)
            count, key_name = checkpoint.event_count, checkpoint.key_id
    click.echo(f"Checkpoint signed by key {key_name}: {count} events up to id {upto}.")


@ledger_cli.command("keygen")
def ledger_keygen() -> None:
    """Print a new checkpoint key pair for the environment (nothing is stored)."""
    seed = base64.b64encode(secrets.token_bytes(32)).decode()
    public = public_key_text(load_private_key(seed).public_key())
    click.echo(f"CELLTRAIL_CHECKPOINT_KEY={seed}")
    click.echo(f"# public key, for CELLTRAIL_CHECKPOINT_PUBLIC_KEYS after rotation: {public}")


def init_app(app: Flask) -> None:
    """Attach the command groups to `flask`/`celltrail`."""
    for group in (db_cli, demo_cli, users_cli, ledger_cli):
        app.cli.add_command(group)


def main() -> None:
    """Entry point of the `celltrail` console script."""
    from app import create_app  # noqa: PLC0415 - the factory imports this module

    FlaskGroup(
        create_app=create_app,
        add_default_commands=True,
        help="celltrail: batch release and chain of custody.",
    )()
