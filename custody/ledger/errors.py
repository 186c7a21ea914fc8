"""Errors of the custody ledger."""

from __future__ import annotations

from lots.errors import DomainError


class CheckpointKeyMissingError(DomainError):
    """Checkpoints need the signing key, which lives only in the environment."""

    status = 503
    title = "Checkpoint key not configured"

    def __init__(self) -> None:
        super().__init__("No checkpoint signing key is configured; set CELLTRAIL_CHECKPOINT_KEY.")
