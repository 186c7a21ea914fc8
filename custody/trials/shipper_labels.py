"""A dry shipper's logistic label (100 × 150 mm): the SSCC as GS1-128 and as an authenticated
QR, route, storage and contents, and the full investigational statement.

It lives beside the trials because its contents line must not tell a blinded courier or nurse
which arm travels: a shipper holding blinded kits names only their packaging lots.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event
from custody.shipping import ShipmentStateError, get_visible_shipment, packed
from custody.trials.models import Kit, Trial
from labels.keys import LabelKey
from labels.payload import shipper_uri
from labels.render import NOT_RENDERABLE, Format, ShipperLabel, media_type, render
from lots.access import Permission, require
from lots.models import User


def print_shipper_label(
    session: Session,
    user: User,
    sscc: str,
    *,
    fmt: Format | str,
    dpi: int,
    base: str,
    key: LabelKey,
    now: dt.datetime,
) -> tuple[bytes, str]:
    """Render the shipper's label and record the print on the shipment's chain."""
    require(user, Permission.SHIPMENTS_READ)
    shipment = get_visible_shipment(session, user, sscc)
    rows = packed(session, shipment)
    vial_ids = [row.vial.id for row in rows]
    blinded = set(
        session.scalars(
            select(Kit.packaging_lot)
            .join(Trial, Trial.id == Kit.trial_id)
            .where(Kit.vial_id.in_(vial_ids), Trial.blinded.is_(True))
        )
    )
    if blinded:
        product, lots = "Blinded trial kits", sorted(blinded)
    else:
        names = sorted({row.vial.lot.product_version.name for row in rows})
        product = names[0] if len(names) == 1 else f"{len(names)} products" if names else ""
        lots = sorted({row.vial.lot.number for row in rows})
    label = ShipperLabel(
        shipper_id=shipment.asset_id or shipment.sscc,
        sscc=shipment.sscc,
        payload=shipper_uri(base=base, sscc=shipment.sscc, key=key),
        from_site=shipment.from_site.name,
        to_site=shipment.to_site.name,
        storage_limit=_storage(shipment.storage_limit_c),
        contents_count=len(rows),
        product_name=product,
        lot=lots[0] if len(lots) == 1 else f"{len(lots)} lots" if lots else "",
    )
    try:
        content = render([label], fmt, dpi=dpi)
    except NOT_RENDERABLE as error:
        raise ShipmentStateError(
            f"The label of shipper {shipment.sscc} cannot be rendered: {error}",
            sscc=shipment.sscc,
        ) from error
    append_event(
        session,
        EventDraft(
            shipment.chain,
            "SHIPPER_LABEL_PRINTED",
            now,
            {"sscc": shipment.sscc, "format": str(fmt), "dpi": dpi, "key": key.key_id},
            user,
            user.site,
        ),
    )
    return content, media_type(fmt)


def _storage(limit_c: Decimal | None) -> str:
    if limit_c is None:
        return "Keep frozen as the product's storage condition states"
    # An ASCII minus: Zebra's resident fonts (code page 1252) have no U+2212.
    return f"Store at or below {format(limit_c.normalize(), 'f')} °C"
