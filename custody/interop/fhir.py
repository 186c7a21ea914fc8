"""FHIR R5 views of the record: BiologicallyDerivedProduct (a vial), BiologicallyDerivedProduct-
Dispense (an administration), the lookups behind them and every record's sites.

Blinding: for a reader without the `unblinded` flag a blinded trial's kit vial is the
trial's blinded product under its kit number: no serial, lot, bank, donor, cell count,
expiry or category of the real product, and no arm anywhere (DESIGN.md §5, hazard 12).
Unblindings and trial-chain events are not shown to such a reader at all.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import CustodyEvent, format_time
from custody.shipping import Shipment, vial_status
from custody.trials import Administration, Kit, Subject, Trial, TrialSite, Unblinding
from lots.banks import lineage
from lots.batch import Lot, LotStatus, Vial
from lots.errors import NotFoundError
from lots.models import Site, User

GTIN_SYSTEM = "https://www.gs1.org/gtin"
GLN_SYSTEM = "https://www.gs1.org/gln"
URI_SYSTEM = "urn:ietf:rfc:3986"
CATEGORY_SYSTEM = "http://hl7.org/fhir/product-category"
STATUS_SYSTEM = "http://hl7.org/fhir/biologicallyderived-product-status"
UCUM = "http://unitsofmeasure.org"
# Vial states in which the product can still be used (the lot permitting).
USABLE_STATES = frozenset(
    {"in_stock", "packed", "in_transit", "received", "stored", "dispensed", "thawed"}
)
USABLE_LOT_STATUSES = frozenset({LotStatus.RELEASED, LotStatus.EXCEPTIONALLY_RELEASED})
# The dispense value set has no "administered": `issued` is the product handed over for use.
DISPENSE_STATUS = "issued"
KIT_ID = re.compile(r"^kit-(?P<trial>.+)--(?P<number>[^-].*)$")


def product_status(state: str, lot_status: str, expires_on: dt.date, today: dt.date) -> str:
    """`available` while the vial can still be used, else `unavailable` (R5 value set
    biologicallyderived-product-status)."""
    usable = state in USABLE_STATES and lot_status in USABLE_LOT_STATUSES
    return "available" if usable and expires_on >= today else "unavailable"


def kit_resource_id(kit: Kit) -> str:
    """A kit vial's FHIR id: its trial and kit number, never the vial's serial."""
    return _fhir_id(f"kit-{kit.trial.protocol_id}--{kit.number}")


def find_product(session: Session, identifier: str) -> tuple[Vial, Kit | None]:
    """The vial behind a BiologicallyDerivedProduct id: a serial, or a kit's id."""
    vial = session.scalar(select(Vial).where(Vial.serial == identifier))
    if vial is not None:
        return vial, session.scalar(select(Kit).where(Kit.vial_id == vial.id))
    match = KIT_ID.match(identifier)
    if match is not None:
        kit = session.scalar(
            select(Kit)
            .join(Trial, Trial.id == Kit.trial_id)
            .where(Trial.protocol_id == match["trial"], Kit.number == match["number"])
        )
        if kit is not None:
            return kit.vial, kit
    raise NotFoundError("biologically derived product", identifier)


def product_site_ids(session: Session, vial: Vial) -> set[int | None]:
    """Sites that have held the vial: its maker and QC lab, every site on its chain, the
    ward it was dispensed to, and where it was given with the pharmacy serving that ward."""
    rows = session.execute(
        select(CustodyEvent.site_id, CustodyEvent.event_type, CustodyEvent.body).where(
            CustodyEvent.chain == vial.chain
        )
    )
    sites: set[int | None] = {vial.lot.site_id, vial.lot.qc_site_id}
    wards = set()
    for site_id, event_type, body in rows:
        sites.add(site_id)
        if event_type == "DISPENSED":
            wards.add(orjson.loads(body)["payload"].get("ward"))
    if wards:
        sites |= set(session.scalars(select(Site.id).where(Site.code.in_(wards))))
    given = session.scalar(select(Administration).where(Administration.vial_id == vial.id))
    if given is not None:
        sites |= dispense_site_ids(session, given)
    return sites


def is_hidden(kit: Kit | None, *, blinded: bool) -> bool:
    """Whether the vial must appear as its blinded kit to this reader."""
    return blinded and kit is not None and kit.trial.blinded


def biologically_derived_product(
    session: Session, vial: Vial, kit: Kit | None, *, base: str, blinded: bool, today: dt.date
) -> dict[str, Any]:
    """A vial as an R5 BiologicallyDerivedProduct."""
    lot, version = vial.lot, vial.lot.product_version
    state, _ = vial_status(session, [vial])[vial.serial]
    status = product_status(state, lot.status, lot.expires_on, today)
    temperature = {
        "high": {
            "value": float(version.storage_limit_c),
            "unit": "°C",
            "system": UCUM,
            "code": "Cel",
        }
    }
    if kit is not None and is_hidden(kit, blinded=blinded):
        trial = kit.trial
        return {
            "resourceType": "BiologicallyDerivedProduct",
            "id": kit_resource_id(kit),
            "productCode": _product_code(trial.blinded_gtin, trial.blinded_name),
            "identifier": [_kit_identifier(base, kit)],
            "biologicalSourceEvent": {
                "system": f"{base}/trials/{trial.protocol_id}/packaging-lots",
                "value": kit.packaging_lot,
            },
            "productStatus": {"system": STATUS_SYSTEM, "code": status},
            "storageTempRequirements": temperature,
        }
    resource: dict[str, Any] = {
        "resourceType": "BiologicallyDerivedProduct",
        "id": kit_resource_id(kit) if kit is not None else _fhir_id(vial.serial),
        "productCategory": {
            "system": CATEGORY_SYSTEM,
            "code": "cells" if version.cells_per_dose else "fluid",
        },
        "productCode": _product_code(lot.product.gtin, version.name),
        "parent": [_bank_reference(base, lot)],
        "identifier": [
            {"use": "official", "system": f"{base}/vials", "value": vial.serial},
            {"system": URI_SYSTEM, "value": _digital_link(base, lot, vial)},
            *([_kit_identifier(base, kit)] if kit is not None else []),
        ],
        "biologicalSourceEvent": {"system": f"{base}/lots", "value": lot.number},
        "processingFacility": [site_reference(lot.site)],
        "division": f"{vial.position:04d}",
        "productStatus": {"system": STATUS_SYSTEM, "code": status},
        "expirationDate": f"{lot.expires_on.isoformat()}T23:59:59Z",
        "storageTempRequirements": temperature,
        "property": _properties(vial, state),
    }
    donor = next((bank.donor for bank in lineage(lot.bank) if bank.donor is not None), None)
    if donor is not None:
        resource["collection"] = {
            "source": {
                "type": "Patient",
                "identifier": {"system": f"{base}/donors", "value": donor.code},
                "display": f"Donor {donor.code} (pseudonymous)",
            }
        }
    return resource


def find_administration(session: Session, administration_id: int) -> Administration:
    """An administration by id."""
    administration = session.get(Administration, administration_id)
    if administration is None:
        raise NotFoundError("administration", administration_id)
    return administration


def dispense_site_ids(session: Session, administration: Administration) -> set[int | None]:
    """The ward where it was given, the subject's site and the pharmacy serving it."""
    subject = administration.subject
    return {administration.site_id} | _subject_sites(
        session, subject.trial.protocol_id, subject.code
    )


def product_dispense(
    session: Session, administration: Administration, *, base: str, blinded: bool
) -> dict[str, Any]:
    """An administration as an R5 BiologicallyDerivedProductDispense."""
    vial = administration.vial
    kit = session.scalar(select(Kit).where(Kit.vial_id == vial.id))
    hidden = is_hidden(kit, blinded=blinded)
    usage = [f"Route: {administration.route}"]
    resource: dict[str, Any] = {
        "resourceType": "BiologicallyDerivedProductDispense",
        "id": str(administration.id),
        "identifier": [
            {"system": f"{base}/administrations", "value": str(administration.id)},
            {"system": f"{base}/ledger/events", "value": administration.event_hash},
        ],
        "status": DISPENSE_STATUS,
        "product": product_reference(vial, kit, hidden=hidden),
        "patient": patient_reference(base, administration.subject),
        "performer": [
            _performer(base, administration.administered_by, "Administered by"),
            _performer(base, administration.witness, "Witnessed by (second person)"),
        ],
        "whenHandedOver": format_time(administration.administered_at),
        "destination": site_reference(administration.site, "Location"),
    }
    if not hidden:
        # Dose and volume can tell an active kit from a control: only unblinded readers.
        if administration.dose_cells is not None:
            usage.append(f"dose {administration.dose_cells:,} cells")
        if administration.volume_ml is not None:
            usage.append(f"volume {administration.volume_ml} mL")
            resource["quantity"] = {
                "value": float(administration.volume_ml),
                "unit": "mL",
                "system": UCUM,
                "code": "mL",
            }
    resource["usageInstruction"] = "; ".join(usage)
    return resource


def find_event(session: Session, event_hash: str) -> CustodyEvent:
    """A ledger event by hash."""
    event = session.scalar(select(CustodyEvent).where(CustodyEvent.hash == event_hash))
    if event is None:
        raise NotFoundError("ledger event", event_hash)
    return event


def event_is_hidden(session: Session, event: CustodyEvent, *, blinded: bool) -> bool:
    """Unblindings and trial-chain events (randomization) are for unblinded readers only."""
    if not blinded:
        return False
    if event.chain.startswith("trial:") or event.event_type.startswith("UNBLIND"):
        return True
    return (
        session.scalar(select(Unblinding.id).where(Unblinding.event_hash == event.hash)) is not None
    )


def event_site_ids(session: Session, event: CustodyEvent) -> set[int | None]:
    """The event's own site, and the sites of what it is about (its vial, lot or shipment)."""
    sites: set[int | None] = {event.site_id}
    kind, _, key = event.chain.partition(":")
    if kind == "vial":
        vial = session.scalar(select(Vial).where(Vial.serial == key))
        if vial is not None:
            sites |= product_site_ids(session, vial)
    elif kind == "lot":
        lot = session.scalar(select(Lot).where(Lot.number == key))
        if lot is not None:
            sites |= {lot.site_id, lot.qc_site_id}
    elif kind == "shipment":
        shipment = session.scalar(select(Shipment).where(Shipment.sscc == key))
        if shipment is not None:
            sites |= {shipment.from_site_id, shipment.to_site_id}
    elif kind == "subject":
        protocol, _, code = key.partition(":")
        sites |= _subject_sites(session, protocol, code)
    return sites


def person_reference(base: str, username: str, name: str) -> dict[str, Any]:
    """A user as the Practitioner who did or signed something."""
    return {
        "type": "Practitioner",
        "identifier": {"system": f"{base}/users", "value": username},
        "display": name,
    }


def patient_reference(base: str, subject: Subject) -> dict[str, Any]:
    """A trial subject as the Patient, by trial and subject code (never a name)."""
    protocol = subject.trial.protocol_id
    return {
        "type": "Patient",
        "identifier": {"system": f"{base}/trials/{protocol}/subjects", "value": subject.code},
        "display": f"Subject {subject.code} ({protocol})",
    }


def product_reference(vial: Vial, kit: Kit | None, *, hidden: bool) -> dict[str, Any]:
    """A vial, or its kit, as a BiologicallyDerivedProduct reference; a hidden kit names
    no serial."""
    if kit is not None:
        display = f"Kit {kit.number} ({kit.trial.protocol_id})"
        if not hidden:
            display += f", vial {vial.serial}"
        return {
            "reference": f"BiologicallyDerivedProduct/{kit_resource_id(kit)}",
            "display": display,
        }
    return {
        "reference": f"BiologicallyDerivedProduct/{_fhir_id(vial.serial)}",
        "display": f"Vial {vial.serial}",
    }


def site_reference(site: Site, kind: str = "Organization") -> dict[str, Any]:
    """A site as an Organization (or Location), by its GLN when it has one."""
    reference: dict[str, Any] = {"type": kind, "display": site.name}
    if site.gln:
        reference["identifier"] = {"system": GLN_SYSTEM, "value": site.gln}
    return reference


def _subject_sites(session: Session, protocol: str, code: str) -> set[int | None]:
    """A subject's ward and the pharmacy serving it."""
    subject = session.scalar(
        select(Subject)
        .join(Trial, Trial.id == Subject.trial_id)
        .where(Trial.protocol_id == protocol, Subject.code == code)
    )
    if subject is None:
        return set()
    pharmacies = session.scalars(
        select(TrialSite.pharmacy_site_id).where(
            TrialSite.trial_id == subject.trial_id, TrialSite.site_id == subject.site_id
        )
    )
    return {subject.site_id, *pharmacies}


def _performer(base: str, user: User, function: str) -> dict[str, Any]:
    return {
        "function": {"text": function},
        "actor": person_reference(base, user.username, user.full_name),
    }


def _product_code(gtin: str | None, name: str | None) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": name or "Blinded investigational product"}
    if gtin:
        concept["coding"] = [{"system": GTIN_SYSTEM, "code": gtin.rjust(14, "0"), "display": name}]
    return concept


def _kit_identifier(base: str, kit: Kit) -> dict[str, Any]:
    return {"system": f"{base}/trials/{kit.trial.protocol_id}/kits", "value": kit.number}


def _bank_reference(base: str, lot: Lot) -> dict[str, Any]:
    bank = lot.bank
    return {
        "type": "BiologicallyDerivedProduct",
        "identifier": {"system": f"{base}/banks", "value": bank.code},
        "display": f"Cell bank {bank.code} ({bank.kind.replace('_', ' ')})",
    }


def _digital_link(base: str, lot: Lot, vial: Vial) -> str:
    # The link without the label's authentication code: an export is not a label.
    gtin = lot.product.gtin.rjust(14, "0")
    path = f"/01/{gtin}/10/{quote(lot.number, safe='')}/21/{quote(vial.serial, safe='')}"
    return f"{base}{path}?17={lot.expires_on:%y%m%d}"


def _properties(vial: Vial, state: str) -> list[dict[str, Any]]:
    lot = vial.lot
    return [
        {"type": {"text": "Custody state"}, "valueString": state},
        {"type": {"text": "Lot status"}, "valueString": lot.status},
        {
            "type": {"text": "Cells per vial"},
            "valueQuantity": {"value": lot.cells_per_vial, "unit": "cells"},
        },
        {
            "type": {"text": "Volume"},
            "valueQuantity": {
                "value": float(lot.volume_ml),
                "unit": "mL",
                "system": UCUM,
                "code": "mL",
            },
        },
        {
            "type": {"text": "Storage condition"},
            "valueString": lot.product_version.storage_condition,
        },
    ]


def _fhir_id(value: str) -> str:
    """A FHIR id: [A-Za-z0-9-.]{1,64}."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", value)[:64]
