"""The shipment page's temperature section: the logger curve, the excursions, QA's decision.

The curve is drawn on the server by matplotlib (its SVG backend, no pyplot state), so the
page loads no charting script and nothing from elsewhere.
"""

from __future__ import annotations

import datetime as dt
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Any

from flask import Response, redirect, render_template, request, url_for
from marshmallow import ValidationError, fields, validate

from app import clock
from app.auth import current_user, hasher
from app.db import get_session
from app.web import bp, signed_in
from app.web.forms import PageForm, messages
from app.writes import undo, write
from custody.shipping import (
    DESTROY_MEANING,
    UNNAMED_LOGGER,
    USE_MEANING,
    Disposition,
    ReadingsError,
    Shipment,
    ShipmentExcursion,
    TemperatureReading,
    dispose_excursion,
    get_visible_shipment,
    import_readings,
    judged_window,
    parse_zone,
    plain,
    shipment_excursions,
    shipment_readings,
)
from lots.access import Permission, can
from lots.errors import DomainError, NotFoundError
from lots.models import User

CHART_SIZE = (10.0, 3.6)  # inches at 100 dpi: the width of the page's main column
LINES = ("#12344d", "#2a7ab0", "#6b3fa0")  # one per logger
LIMIT, EXCURSION, HOLD, MUTED = "#b3261e", "#f4b6b0", "#f0b429", "#5c6670"


class DispositionForm(PageForm):
    """QA's decision on an excursion, signed by re-entering the password."""

    decision = fields.String(
        required=True,
        validate=validate.OneOf([d.value for d in Disposition]),
        error_messages={"required": "Choose: use the vials, or destroy them."},
    )
    reason = fields.String(
        required=True,
        validate=validate.Length(1, 2000),
        error_messages={"required": "State the reason for your decision."},
    )
    meaning = fields.String(load_default=None, validate=validate.Length(1, 200))
    password = fields.String(
        required=True,
        validate=validate.Length(1, 256),
        error_messages={"required": "Re-enter your password to sign."},
    )


@dataclass(frozen=True)
class ColdChainView:
    """What the temperature section shows of a shipment, and what this user may do there."""

    shipment: Shipment
    readings: int
    first: TemperatureReading | None
    last: TemperatureReading | None
    warmest: TemperatureReading | None
    excursions: list[ShipmentExcursion]
    may_import: bool
    may_dispose: bool

    @property
    def open(self) -> list[ShipmentExcursion]:
        """Excursions awaiting QA: the shipper's vials are quarantined meanwhile."""
        return [excursion for excursion in self.excursions if excursion.open]


@bp.app_template_global("cold_chain")
def cold_chain(shipment: Shipment) -> ColdChainView:
    """The temperature section's facts, for templates (`cold_chain(shipment)`)."""
    db, user = get_session(), current_user()
    readings = shipment_readings(db, shipment)
    return ColdChainView(
        shipment=shipment,
        readings=len(readings),
        first=readings[0] if readings else None,
        last=readings[-1] if readings else None,
        warmest=max(readings, key=lambda r: r.celsius) if readings else None,
        excursions=shipment_excursions(db, shipment),
        may_import=(
            user is not None
            and can(user, Permission.TEMPERATURE_IMPORT)
            and shipment.sealed_at is not None
        ),
        may_dispose=user is not None and can(user, Permission.EXCURSIONS_DISPOSE),
    )


@bp.app_template_filter("celsius")
def celsius(value: Decimal | None) -> str:
    """-148.100 as "−148.1 °C" (a true minus sign)."""
    return "—" if value is None else f"{plain(value).replace('-', '−')} °C"


@bp.get("/shipments/<sscc>/temperature.svg")
@signed_in(Permission.SHIPMENTS_READ)
def temperature_chart(user: User, sscc: str) -> Response:
    """The shipper's temperature curve, its storage limit and its excursions, as SVG."""
    db = get_session()
    found = get_visible_shipment(db, user, sscc)
    svg = render_chart(
        shipment_readings(db, found),
        limit=found.storage_limit_c,
        excursions=shipment_excursions(db, found),
        window=judged_window(found),
    )
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "private, no-cache"})


@bp.post("/shipments/<sscc>/temperatures")
@signed_in(Permission.TEMPERATURE_IMPORT)
@write
def temperature_upload(user: User, sscc: str) -> Any:
    """Attach a logger file from the page; back to the shipment, or the refusal."""
    db = get_session()
    found = get_visible_shipment(db, user, sscc)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _refusal(found, "Choose the logger's export file to upload.", 422)
    zone = request.form.get("timezone", "").strip()
    try:
        import_readings(
            db,
            user,
            found.sscc,
            upload.read(),
            filename=upload.filename,
            timezone=parse_zone(zone) if zone else None,
            now=clock.now(),
        )
    except ReadingsError as error:
        return _refusal(found, str(error), 422)
    except DomainError as error:
        undo(error)
        return _refusal(found, f"{error.title}: {error.detail}", error.status)
    return redirect(url_for("web.shipment", sscc=found.sscc, _anchor="temperature"), 303)


@bp.post("/shipments/<sscc>/excursions/<int:excursion_id>/disposition")
@signed_in(Permission.EXCURSIONS_DISPOSE)
@write
def excursion_disposition(user: User, sscc: str, excursion_id: int) -> Any:
    """QA's signed decision on an excursion, from the shipment page."""
    db = get_session()
    found = get_visible_shipment(db, user, sscc)
    excursion = next((e for e in shipment_excursions(db, found) if e.id == excursion_id), None)
    if excursion is None:
        raise NotFoundError("excursion", f"{excursion_id} of shipper {sscc}")
    posted = {k: v for k, v in request.form.to_dict().items() if k != "password"}
    try:
        form = DispositionForm().load(request.form.to_dict())
        dispose_excursion(
            db,
            hasher(),
            user,
            found.sscc,
            excursion.id,
            decision=form["decision"],
            reason=form["reason"],
            password=form["password"],
            meaning=form["meaning"],
            remote_addr=request.remote_addr or "unknown",
            now=clock.now(),
        )
    except ValidationError as error:
        return _excursion_page(user, found, excursion, posted, messages(error)), 422
    except DomainError as error:
        undo(error)
        fresh = db.get(ShipmentExcursion, excursion.id) or excursion
        errors = [f"{error.title}: {error.detail}"]
        return _excursion_page(user, found, fresh, posted, errors), error.status
    return redirect(url_for("web.shipment", sscc=found.sscc, _anchor="temperature"), 303)


def render_chart(
    readings: Sequence[TemperatureReading],
    *,
    limit: Decimal | None,
    excursions: Sequence[ShipmentExcursion],
    window: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
) -> bytes:
    """An SVG of the readings (one line per logger) with the limit and the excursions."""
    # Imported here: matplotlib takes half a second to import, and only this page needs it.
    import matplotlib as mpl  # noqa: PLC0415
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    style = {"svg.fonttype": "none", "svg.hashsalt": "celltrail", "font.size": 10}
    with mpl.rc_context(style):
        figure = Figure(figsize=CHART_SIZE, dpi=100, layout="constrained")
        axes = figure.add_subplot()
        _draw(axes, readings, limit, excursions, window)
        locator = AutoDateLocator(tz=dt.UTC)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=dt.UTC))
        out = io.BytesIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def _draw(
    axes: Any,
    readings: Sequence[TemperatureReading],
    limit: Decimal | None,
    excursions: Sequence[ShipmentExcursion],
    window: tuple[dt.datetime | None, dt.datetime | None],
) -> None:
    by_logger: dict[str, list[TemperatureReading]] = {}
    for reading in readings:
        by_logger.setdefault(reading.logger_id, []).append(reading)
    for index, (logger_id, series) in enumerate(by_logger.items()):
        axes.plot(
            [r.at for r in series],
            [float(r.celsius) for r in series],
            color=LINES[index % len(LINES)],
            linewidth=1.4,
            marker="." if len(series) <= 200 else None,
            label="readings" if logger_id == UNNAMED_LOGGER else f"logger {_literal(logger_id)}",
        )
    pad = _half_interval(readings)
    for excursion in excursions:
        hold = excursion.kind == "hold_time"
        axes.axvspan(
            excursion.started_at - (dt.timedelta(0) if hold else pad),
            excursion.ended_at + (dt.timedelta(0) if hold else pad),
            color=HOLD if hold else EXCURSION,
            alpha=0.45 if hold else 0.6,
            linewidth=0,
            label="hold time exceeded" if hold else "excursion",
            zorder=0,
        )
    if limit is not None:
        axes.axhline(
            float(limit),
            color=LIMIT,
            linestyle="--",
            linewidth=1.2,
            label=f"limit ≤ {plain(limit).replace('-', '−')} °C",
        )
    _mark_window(axes, readings, window)
    if limit is not None:
        low, high = axes.get_ylim()
        axes.set_ylim(min(low, float(limit) - 5), max(high, float(limit) + 5))
    axes.set_ylabel("°C")
    axes.grid(True, color="#d8dde3", linewidth=0.6)
    axes.spines[["top", "right"]].set_visible(False)
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.legend(
        unique.values(),
        unique.keys(),
        loc="lower left",
        bbox_to_anchor=(0, 1.01),
        ncols=len(unique),
        fontsize=9,
        frameon=False,
        borderaxespad=0,
    )


def _mark_window(
    axes: Any,
    readings: Sequence[TemperatureReading],
    window: tuple[dt.datetime | None, dt.datetime | None],
) -> None:
    """Sealing and receipt as dotted lines; readings outside them greyed: not judged."""
    sealed, received = window
    first = readings[0].at if readings else None
    last = readings[-1].at if readings else None
    outside = []
    if sealed is not None and first is not None and first < sealed:
        outside.append((first, sealed))
    if received is not None and last is not None and last > received:
        outside.append((received, last))
    for start, end in outside:
        axes.axvspan(start, end, color="#eceff2", linewidth=0, zorder=0, label="not judged")
    for moment, text in ((sealed, "sealed"), (received, "received")):
        if moment is not None:
            axes.axvline(moment, color=MUTED, linestyle=":", linewidth=1)
            axes.annotate(
                text,
                (moment, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                color=MUTED,
                fontsize=9,
            )


def _literal(text: str) -> str:
    # A logger id is the file's text: "$" would start matplotlib's mathtext.
    return text.replace("$", r"\$")


def _half_interval(readings: Sequence[TemperatureReading]) -> dt.timedelta:
    """Half the usual logging interval: a warm reading stands for that much time each side."""
    times = sorted({reading.at for reading in readings})
    gaps = [later - earlier for earlier, later in pairwise(times)]
    return statistics.median(gaps) / 2 if gaps else dt.timedelta(minutes=5)


def _refusal(found: Shipment, detail: str, status: int) -> tuple[str, int]:
    return render_template(
        "error.html", status=status, title=f"Shipper {found.sscc}: readings refused", detail=detail
    ), status


def _excursion_page(
    user: User,
    found: Shipment,
    excursion: ShipmentExcursion,
    values: dict[str, str],
    errors: list[str],
) -> str:
    return render_template(
        "excursion.html",
        user=user,
        shipment=found,
        excursion=excursion,
        values=values,
        errors=errors,
        use_meaning=USE_MEANING,
        destroy_meaning=DESTROY_MEANING,
    )
