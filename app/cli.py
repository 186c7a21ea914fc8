"""The `celltrail` command: a Flask CLI group over create_app."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import sys
from pathlib import Path
from typing import Any, TextIO

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup
from sqlalchemy import make_url
from sqlalchemy.orm import Session

from app import demo
from app.api.labels import label_filename
from app.db import database
from app.keys import label_keys, signing_key, trusted_keys
from app.migrate import pending_migration, upgrade
from custody.integrity import verify_record
from custody.ledger import (
    checkpoint_anchor,
    checkpoint_due,
    create_checkpoint,
    load_private_key,
    parse_anchor,
    public_key_text,
    settle_ledger,
    write_witness,
)
from custody.manufacturing import print_labels
from labels.render import Format, Layout
from lots.access import Role
from lots.accounts import create_user, get_user, password_hasher
from lots.errors import DomainError

db_cli = AppGroup("db", help="The database schema.")
demo_cli = AppGroup("demo", help="Demo data from the trial documents.")
users_cli = AppGroup("users", help="User accounts.")
ledger_cli = AppGroup("ledger", help="The custody ledger.")
labels_cli = AppGroup("labels", help="Vial labels.")


def _session() -> Session:
    """A session on the app's database, refused with a clear message (not a traceback)
    while the schema is behind the code."""
    session = database().sessions()
    try:
        pending = pending_migration(session.connection())
        session.rollback()  # the check's own transaction ends; the command begins its own
    except Exception:
        session.close()
        raise
    if pending is not None:
        session.close()
        current, head = pending
        url = make_url(current_app.config["DATABASE_URL"]).render_as_string(hide_password=True)
        raise click.ClickException(
            f"The database at {url} is "
            + ("not migrated" if current is None else f"at revision {current}")
            + f"; this celltrail needs revision {head}. Run `celltrail db upgrade` first."
        )
    return session


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
            hasher = password_hasher(current_app.config["PASSWORD_HASHER"])
            # The full demo, with SCI-001's first dose; the test suite's fixture loads the
            # demo without it so that XS228-2610-01 is still whole in stock.
            created = demo.load(session, hasher, first_dose=True)
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
@click.option(
    "--anchor",
    "anchor_files",
    multiple=True,
    type=click.File("r"),
    help="A checkpoint anchor kept outside the database (from `ledger checkpoint`); repeatable.",
)
def ledger_verify(as_json: bool, anchor_files: tuple[TextIO, ...]) -> None:
    """Recompute every chain and check every checkpoint; exit 1 when anything is broken."""
    anchors = []
    for handle in anchor_files:
        try:
            anchors.append(parse_anchor(json.loads(handle.read()), f"anchor {handle.name}"))
        except ValueError as error:
            raise click.ClickException(
                f"{handle.name} is not a checkpoint anchor: {error}"
            ) from error
    with _session() as session:
        report = verify_record(session, trusted_keys(), anchors)
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
                    "disagreements": [
                        {"table": table, "key": key, "reason": reason}
                        for table, key, reason in report.disagreements
                    ],
                }
            )
        )
    else:
        if broken is None:
            click.echo(
                f"Ledger intact: {report.events} events in {report.chains} chains, "
                f"{report.checkpoints} checkpoints verified."
            )
        else:
            where = f"event {broken.seq} of {broken.chain}" if broken.seq else broken.chain
            click.echo(f"Ledger BROKEN at {where} (id {broken.event_id}): {broken.reason}.")
        for table, key, reason in report.disagreements:
            click.echo(f"Record BROKEN: {table} {key}: {reason}")
        if not report.disagreements:
            click.echo("Every state column agrees with the ledger.")
    if not report.intact:
        sys.exit(1)


@ledger_cli.command("checkpoint")
@click.option(
    "--anchor-out",
    type=click.File("w"),
    help="Also write the signed checkpoint here, to keep outside the database.",
)
@click.option(
    "--if-due",
    is_flag=True,
    help="Only when CELLTRAIL_CHECKPOINT_EVERY_EVENTS events, or any event after "
    "CELLTRAIL_CHECKPOINT_EVERY_MINUTES, were recorded since the last one (for a timer).",
)
def ledger_checkpoint(anchor_out: TextIO | None, if_due: bool) -> None:
    """Sign the current ledger with the Ed25519 key from CELLTRAIL_CHECKPOINT_KEY.

    The printed anchor line is the checkpoint itself, signed: kept anywhere but the database
    (a QA log, a ticket), it lets `ledger verify --anchor` catch a rewrite even if every
    stored checkpoint was deleted too. Each directory in CELLTRAIL_CHECKPOINT_WITNESS_DIRS
    (a WORM mount, a synced share) also receives it as a file of its own.
    """
    try:
        key = signing_key()
    except DomainError as error:
        raise click.ClickException(error.detail) from error
    config = current_app.config
    with _session() as session:
        if if_due:
            with session.begin():
                due = checkpoint_due(
                    session,
                    every_events=config["CHECKPOINT_EVERY_EVENTS"],
                    every=dt.timedelta(minutes=config["CHECKPOINT_EVERY_MINUTES"]),
                )
            if not due:
                click.echo("No checkpoint due.")
                return
        with session.begin():
            upto = settle_ledger(session)
        with session.begin():
            checkpoint = create_checkpoint(session, key, upto=upto)
            count, key_name = checkpoint.event_count, checkpoint.key_id
            document = checkpoint_anchor(checkpoint)
    anchor = json.dumps(document, sort_keys=True)
    click.echo(f"Checkpoint signed by key {key_name}: {count} events up to id {upto}.")
    click.echo(f"Anchor (keep outside the database): {anchor}")
    if anchor_out is not None:
        anchor_out.write(anchor + "\n")
    for directory in config["CHECKPOINT_WITNESS_DIRS"]:
        try:
            click.echo(f"Witnessed: {write_witness(Path(directory), document)}")
        except OSError as error:  # the checkpoint stands; the witness must be looked at
            message = f"The witness {directory} did not take it: {error}"
            raise click.ClickException(message) from error


@ledger_cli.command("keygen")
def ledger_keygen() -> None:
    """Print a new checkpoint key pair for the environment (nothing is stored)."""
    seed = base64.b64encode(secrets.token_bytes(32)).decode()
    public = public_key_text(load_private_key(seed).public_key())
    click.echo(f"CELLTRAIL_CHECKPOINT_KEY={seed}")
    click.echo(f"# public key, for CELLTRAIL_CHECKPOINT_PUBLIC_KEYS after rotation: {public}")


@labels_cli.command("render")
@click.argument("lot")
@click.option("--format", "fmt", type=click.Choice([fmt.value for fmt in Format]), required=True)
@click.option(
    "--layout",
    type=click.Choice([layout.value for layout in Layout]),
    default=Layout.ROLL.value,
    show_default=True,
    help="PDF: one label per page at label size (roll), or sheets of A4 or US Letter.",
)
@click.option("--dpi", type=click.Choice(["203", "300"]), default="300", show_default=True)
@click.option(
    "--serial", "serials", multiple=True, help="Only this vial (repeatable); PNG/SVG need one."
)
@click.option("--reason", help="Why vials that already have a label are labelled again.")
@click.option(
    "--as",
    "username",
    required=True,
    help="Who prints: every print is recorded per vial against this user.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Default: LOT-labels.<format> (SERIAL-label.<format> for one PNG/SVG label).",
)
def labels_render(  # noqa: PLR0917 - click passes each option positionally
    lot: str,
    fmt: str,
    layout: str,
    dpi: str,
    serials: tuple[str, ...],
    reason: str | None,
    username: str,
    output: str | None,
) -> None:
    """Render and record a print of LOT's vial labels (released or quarantined lots only)."""
    path = output or label_filename(lot, fmt, serials)
    bar = _ProgressBar(f"Rendering labels of {lot}")
    try:
        with _session() as session, session.begin():
            user = get_user(session, username)
            if not user.active:
                raise click.ClickException(f"User {username} is deactivated.")
            printed = print_labels(
                session,
                user,
                lot,
                fmt=fmt,
                base=current_app.config["PUBLIC_URL"],
                key=label_keys()[0],
                layout=layout,
                dpi=int(dpi),
                serials=serials or None,
                reason=(reason or "").strip() or None,
                progress=bar,
            )
            bar.close()
            # Written inside the transaction: a file that cannot be written records no print.
            with open(path, "wb") as file:
                file.write(printed.content)
            count, job_id = printed.job.label_count, printed.job.id
    except DomainError as error:
        raise click.ClickException(error.detail) from error
    except OSError as error:
        raise click.ClickException(str(error)) from error
    finally:
        bar.close()
    click.echo(f"{count} label(s) of lot {lot} written to {path} (print job {job_id}).")


class _ProgressBar:
    """print_labels' progress callback as a click progress bar, opened at the first label."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def init_app(app: Flask) -> None:
    """Attach the command groups to `flask`/`celltrail`."""
    for group in (db_cli, demo_cli, users_cli, ledger_cli, labels_cli):
        app.cli.add_command(group)


def main() -> None:
    """Entry point of the `celltrail` console script."""
    from app import create_app  # noqa: PLC0415 - the factory imports this module

    FlaskGroup(
        create_app=create_app,
        add_default_commands=True,
        help="celltrail: batch release and chain of custody.",
    )()
