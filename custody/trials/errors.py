"""Trials' errors: what a trial's design, its kits or its vials do not allow."""

from __future__ import annotations

from lots.errors import DomainError


class TrialStateError(DomainError):
    """An action the trial's design or the subject's progress does not allow."""

    status = 409
    title = "Not allowed in this trial"


class VialNotAllocatableError(DomainError):
    """A vial that cannot be set aside for this subject, with every reason."""

    status = 409
    title = "Vial cannot be allocated"

    def __init__(self, serial: str, reasons: list[str]) -> None:
        super().__init__(" ".join(reasons), field="serial", serial=serial, reasons=reasons)


class NoKitAvailableError(DomainError):
    """No kit the subject may receive is in stock at the pharmacy. The message never says
    which arm was looked for: the pharmacist reading it may be blinded."""

    status = 409
    title = "No kit available"

    def __init__(self, subject: str, pharmacy: str) -> None:
        super().__init__(
            f"No kit for subject {subject} is in stock at {pharmacy}; ask the sponsor's "
            "supply manager to resupply the site.",
            subject=subject,
            pharmacy=pharmacy,
        )


class UnblindedUserRequiredError(DomainError):
    """Packing kits means seeing the arm: only a user with the unblinded flag may."""

    status = 403
    title = "Forbidden"

    def __init__(self, username: str) -> None:
        super().__init__(
            f"{username} is blinded; only an unblinded user may pack kits.", username=username
        )
