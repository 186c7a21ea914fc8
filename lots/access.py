"""Who may do what (role) and see what (site): the one place celltrail decides access."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol

from lots.errors import ForbiddenError


class Role(enum.StrEnum):
    """The roles of DESIGN.md §2; the `unblinded` flag is separate from them."""

    ADMIN = "admin"
    MANUFACTURING = "manufacturing"
    QC = "qc"
    QA = "qa"
    COURIER = "courier"
    PHARMACIST = "pharmacist"
    CLINICIAN = "clinician"
    AUDITOR = "auditor"


class Permission(enum.StrEnum):
    """An action an endpoint or page can require."""

    PRODUCTS_READ = "products:read"
    PRODUCTS_WRITE = "products:write"
    SITES_READ = "sites:read"
    SITES_WRITE = "sites:write"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    AUDIT_READ = "audit:read"
    LEDGER_READ = "ledger:read"
    LEDGER_WRITE = "ledger:write"
    LEDGER_VERIFY = "ledger:verify"
    BANKS_READ = "banks:read"
    BANKS_WRITE = "banks:write"
    DONORS_DETERMINE = "donors:determine"
    LOTS_READ = "lots:read"
    LOTS_MANUFACTURE = "lots:manufacture"
    DEVIATIONS_RAISE = "deviations:raise"
    DEVIATIONS_CLOSE = "deviations:close"
    QC_RESULTS_WRITE = "qc-results:write"
    OOS_INVESTIGATE = "oos:investigate"  # the laboratory's findings on an OOS result
    OOS_DECIDE = "oos:decide"  # QA's signed outcome of an OOS investigation
    LOTS_RELEASE = "lots:release"
    LOTS_RECALL = "lots:recall"
    LABELS_PRINT = "labels:print"
    SHIPMENTS_READ = "shipments:read"
    SHIPMENTS_MANAGE = "shipments:manage"
    SHIPMENTS_HANDOFF = "shipments:handoff"
    SHIPMENTS_RECEIVE = "shipments:receive"
    VIALS_HANDLE = "vials:handle"
    TEMPERATURE_IMPORT = "temperature:import"
    EXCURSIONS_DISPOSE = "excursions:dispose"
    LEDGER_EXPORT = "ledger:export"
    SCAN = "scan"
    TRIALS_READ = "trials:read"
    TRIALS_MANAGE = "trials:manage"
    KITS_MANAGE = "kits:manage"
    SUBJECTS_READ = "subjects:read"
    SUBJECTS_ENROL = "subjects:enrol"
    SUBJECTS_RANDOMIZE = "subjects:randomize"
    ALLOCATE = "allocations:write"
    UNBLIND = "subjects:unblind"
    BEDSIDE_CHECK = "bedside:check"
    ADMINISTER = "administrations:write"
    TRACE_READ = "trace:read"
    FHIR_READ = "fhir:read"


EVERYONE = frozenset(Role)
# Roles whose people make or witness custody facts; admins and auditors only read the ledger.
FIELD_ROLES = frozenset(
    {
        Role.MANUFACTURING,
        Role.QC,
        Role.QA,
        Role.COURIER,
        Role.PHARMACIST,
        Role.CLINICIAN,
    }
)

MANUFACTURER_ROLES = frozenset({Role.MANUFACTURING, Role.QC, Role.QA})

POLICY: dict[Permission, frozenset[Role]] = {
    Permission.PRODUCTS_READ: EVERYONE,
    # QA owns release specifications; admins maintain master data.
    Permission.PRODUCTS_WRITE: frozenset({Role.ADMIN, Role.QA}),
    Permission.SITES_READ: EVERYONE,
    Permission.SITES_WRITE: frozenset({Role.ADMIN}),
    Permission.USERS_READ: frozenset({Role.ADMIN}),
    Permission.USERS_WRITE: frozenset({Role.ADMIN}),
    Permission.AUDIT_READ: frozenset({Role.ADMIN, Role.QA, Role.AUDITOR}),
    Permission.LEDGER_READ: EVERYONE,
    Permission.LEDGER_WRITE: FIELD_ROLES,
    Permission.LEDGER_VERIFY: frozenset({Role.ADMIN, Role.QA, Role.AUDITOR}),
    # Banks and donors are the manufacturer's records; donors appear only by pseudonym.
    Permission.BANKS_READ: MANUFACTURER_ROLES | {Role.ADMIN, Role.AUDITOR},
    Permission.BANKS_WRITE: frozenset({Role.MANUFACTURING, Role.QA}),
    Permission.DONORS_DETERMINE: frozenset({Role.QA}),
    Permission.LOTS_READ: EVERYONE,
    Permission.LOTS_MANUFACTURE: frozenset({Role.MANUFACTURING}),
    Permission.DEVIATIONS_RAISE: MANUFACTURER_ROLES,
    Permission.DEVIATIONS_CLOSE: frozenset({Role.QA}),
    Permission.QC_RESULTS_WRITE: frozenset({Role.QC}),
    Permission.OOS_INVESTIGATE: frozenset({Role.QC, Role.QA}),
    Permission.OOS_DECIDE: frozenset({Role.QA}),
    # 21 CFR 211.22 / EU Annex 16: only the quality unit releases, rejects and recalls.
    Permission.LOTS_RELEASE: frozenset({Role.QA}),
    Permission.LOTS_RECALL: frozenset({Role.QA}),
    # Labels are printed at the manufacturer (FACT: labelling is a controlled operation).
    Permission.LABELS_PRINT: frozenset({Role.MANUFACTURING, Role.QA}),
    Permission.SCAN: EVERYONE,
    Permission.SHIPMENTS_READ: EVERYONE,
    Permission.SHIPMENTS_MANAGE: frozenset({Role.MANUFACTURING}),
    # The person taking custody scans: a courier, or the receiving pharmacist.
    Permission.SHIPMENTS_HANDOFF: frozenset({Role.COURIER, Role.PHARMACIST}),
    Permission.SHIPMENTS_RECEIVE: frozenset({Role.PHARMACIST}),
    # Storing, dispensing to a ward and thawing at the hospital.
    Permission.VIALS_HANDLE: frozenset({Role.PHARMACIST, Role.CLINICIAN}),
    # Whoever reads the shipper's logger out uploads it: manufacturer, courier or pharmacy.
    Permission.TEMPERATURE_IMPORT: frozenset({Role.MANUFACTURING, Role.COURIER, Role.PHARMACIST}),
    # Using or destroying product after an excursion is the quality unit's call (21 CFR 211.22).
    Permission.EXCURSIONS_DISPOSE: frozenset({Role.QA}),
    # The whole ledger leaves the service only for oversight: every site's events are in it.
    Permission.LEDGER_EXPORT: frozenset({Role.ADMIN, Role.QA, Role.AUDITOR}),
    # Trials: protocols are master data; what a blinded user reads of them hides the arms.
    Permission.TRIALS_READ: frozenset(Role) - {Role.COURIER},
    Permission.TRIALS_MANAGE: frozenset({Role.ADMIN}),
    # Kits are packed at the manufacturer by someone who must see the arm (unblinded flag too).
    Permission.KITS_MANAGE: frozenset({Role.MANUFACTURING}),
    # Subjects are pseudonymous; only their site's clinical staff and oversight read them.
    Permission.SUBJECTS_READ: frozenset(
        {Role.ADMIN, Role.QA, Role.AUDITOR, Role.PHARMACIST, Role.CLINICIAN}
    ),
    Permission.SUBJECTS_ENROL: frozenset({Role.CLINICIAN, Role.PHARMACIST}),
    Permission.SUBJECTS_RANDOMIZE: frozenset({Role.CLINICIAN, Role.PHARMACIST}),
    # The pharmacy sets a vial (or the system's kit) aside for a subject's visit.
    Permission.ALLOCATE: frozenset({Role.PHARMACIST}),
    # Emergency unblinding is the treating clinician's call (ICH E6 5.1.3 / protocol).
    Permission.UNBLIND: frozenset({Role.CLINICIAN}),
    Permission.BEDSIDE_CHECK: frozenset({Role.CLINICIAN, Role.PHARMACIST}),
    # The administering person is a clinician; the second signer may be a pharmacist.
    Permission.ADMINISTER: frozenset({Role.CLINICIAN}),
    # A recall trace crosses every site: oversight only.
    Permission.TRACE_READ: frozenset({Role.ADMIN, Role.QA, Role.AUDITOR}),
    Permission.FHIR_READ: frozenset(
        {Role.ADMIN, Role.QA, Role.AUDITOR, Role.PHARMACIST, Role.CLINICIAN}
    ),
}

# Roles that see every site's records: oversight (QA disposition, audit, administration).
ALL_SITES_ROLES = frozenset({Role.ADMIN, Role.QA, Role.AUDITOR})


class Principal(Protocol):
    """What access decisions need to know of a user."""

    @property
    def role(self) -> str: ...

    @property
    def site_id(self) -> int: ...


def can(principal: Principal, permission: Permission) -> bool:
    """Whether the principal's role allows the action."""
    return Role(principal.role) in POLICY[permission]


def sees_all_sites(principal: Principal) -> bool:
    """Whether the principal's role reads records of every site."""
    return Role(principal.role) in ALL_SITES_ROLES


def can_see(principal: Principal, site_ids: Iterable[int | None]) -> bool:
    """Whether a record touching these sites is visible to the principal.

    A record no site owns (global master data) is visible to everyone.
    """
    if sees_all_sites(principal):
        return True
    ids = {site_id for site_id in site_ids if site_id is not None}
    return not ids or principal.site_id in ids


def roles_allowed(permission: Permission) -> frozenset[Role]:
    """The roles the policy grants this permission."""
    return POLICY[permission]


def require(principal: Principal, permission: Permission) -> None:
    """Refuse with ForbiddenError unless the role allows the action (services check too:
    the web layer is not the only way in)."""
    if not can(principal, permission):
        raise ForbiddenError(principal.role, str(permission))
