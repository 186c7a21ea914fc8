"""FHIR R5 reads: BiologicallyDerivedProduct (a vial), BiologicallyDerivedProductDispense (an
administration) and Provenance (a ledger event and its signatures), as application/fhir+json.

Site-scoped like the vial and shipment endpoints: another site's record is a 404. A reader
without the `unblinded` flag sees a blinded trial's kit vial as the blinded product under
its kit id only (see custody/interop/fhir.py); by serial it is unknown (404), and no Provenance of
its chain's events is shown (custody/trials/blinding.py), nor any unblinding.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from app.api.schemas import StrictSchema
from app.auth import ensure_visible, require_user, requires
from app.db import get_session
from custody.interop import (
    biologically_derived_product,
    chain_provenance_events,
    dispense_site_ids,
    event_is_hidden,
    event_site_ids,
    find_administration,
    find_event,
    find_product,
    product_dispense,
    product_site_ids,
    provenance,
    provenance_bundle,
)
from custody.trials import hides_chain, hides_kit_vial
from lots.access import Permission, can_see
from lots.base import utcnow
from lots.errors import NotFoundError
from lots.local_time import local_date

FHIR_JSON = "application/fhir+json"
PRODUCT = "BiologicallyDerivedProduct"

blp = Blueprint("fhir", __name__, url_prefix="/fhir", description="FHIR R5 exports")


class ProvenanceQuerySchema(StrictSchema):
    target = fields.String(
        required=True,
        validate=validate.Regexp(
            rf"^{PRODUCT}/[A-Za-z0-9.\-]{{1,64}}$",
            error=f"Search by target={PRODUCT}/<id>.",
        ),
        metadata={"description": f"{PRODUCT}/{{id}}: every event of that vial's chain."},
    )


def _fhir(resource: dict[str, Any]) -> Response:
    return Response(orjson.dumps(resource), mimetype=FHIR_JSON)


def _base() -> str:
    return str(current_app.config["PUBLIC_URL"])


@blp.route(f"/{PRODUCT}/<serial>")
class BiologicallyDerivedProduct(MethodView):
    @requires(Permission.FHIR_READ)
    @blp.response(200, content_type=FHIR_JSON, description="An R5 BiologicallyDerivedProduct.")
    def get(self, serial: str) -> Response:
        """A vial (by serial, or a kit's id) as a FHIR R5 BiologicallyDerivedProduct."""
        session, user = get_session(), require_user()
        vial, kit = find_product(session, serial)
        # A blinded kit vial is known by its kit id only: its serial is unknown to a blinded
        # reader, or the answer would map the serial (so the lot and arm) to the kit.
        if serial == vial.serial and hides_kit_vial(session, user, vial):
            raise NotFoundError("biologically derived product", serial)
        ensure_visible(
            user, product_site_ids(session, vial), "biologically derived product", serial
        )
        return _fhir(
            biologically_derived_product(
                session,
                vial,
                kit,
                base=_base(),
                blinded=not user.unblinded,
                today=local_date(utcnow(), user.site.time_zone),  # the reader's site
            )
        )


@blp.route("/BiologicallyDerivedProductDispense/<int:administration_id>")
class BiologicallyDerivedProductDispense(MethodView):
    @requires(Permission.FHIR_READ)
    @blp.response(
        200, content_type=FHIR_JSON, description="An R5 BiologicallyDerivedProductDispense."
    )
    def get(self, administration_id: int) -> Response:
        """An administration as a FHIR R5 BiologicallyDerivedProductDispense."""
        session, user = get_session(), require_user()
        administration = find_administration(session, administration_id)
        sites = dispense_site_ids(session, administration)
        ensure_visible(user, sites, "administration", administration_id)
        return _fhir(
            product_dispense(session, administration, base=_base(), blinded=not user.unblinded)
        )


@blp.route("/Provenance/<event_hash>")
class ProvenanceByHash(MethodView):
    @requires(Permission.FHIR_READ)
    @blp.response(200, content_type=FHIR_JSON, description="An R5 Provenance.")
    def get(self, event_hash: str) -> Response:
        """A ledger event as a FHIR R5 Provenance: target, agents, signatures, predecessor."""
        session, user = get_session(), require_user()
        event = find_event(session, event_hash)
        if event_is_hidden(session, event, blinded=not user.unblinded) or hides_chain(
            session, user, event.chain
        ):
            raise NotFoundError("ledger event", event_hash)
        ensure_visible(user, event_site_ids(session, event), "ledger event", event_hash)
        return _fhir(provenance(session, event, base=_base(), blinded=not user.unblinded))


@blp.route("/Provenance")
class ProvenanceSearch(MethodView):
    @requires(Permission.FHIR_READ)
    @blp.arguments(ProvenanceQuerySchema, location="query")
    @blp.response(200, content_type=FHIR_JSON, description="A searchset Bundle of Provenance.")
    def get(self, query: dict[str, Any]) -> Response:
        """Provenance of every event of a vial's chain (an unknown or hidden vial: none; a
        blinded kit's vial, by serial or kit id, is hidden from a reader without the flag)."""
        session, user = get_session(), require_user()
        events = []
        try:
            vial, _ = find_product(session, query["target"].removeprefix(f"{PRODUCT}/"))
        except NotFoundError:
            vial = None
        if vial is not None and hides_kit_vial(session, user, vial):
            vial = None
        if vial is not None and can_see(user, product_site_ids(session, vial)):
            events = chain_provenance_events(session, vial)
        return _fhir(provenance_bundle(session, events, base=_base(), blinded=not user.unblinded))
