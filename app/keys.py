"""The checkpoint keys, read from configuration (never from the database)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Flask, current_app
from sqlalchemy.orm import Session

from custody.ledger import CheckpointKeyMissingError, key_id, load_private_key, load_public_key
from custody.manufacturing import label_generations
from labels.keys import LabelKey, parse_label_keys
from labels.resolution import Resolution
from labels.resolve import resolve
from lots.errors import DomainError


def signing_key(app: Flask | None = None) -> Ed25519PrivateKey:
    """The private key that signs checkpoints."""
    encoded = (app or current_app).config.get("CHECKPOINT_KEY")
    if not encoded:
        raise CheckpointKeyMissingError()
    return load_private_key(encoded)


def trusted_keys(app: Flask | None = None) -> dict[str, Ed25519PublicKey]:
    """Public keys whose checkpoints verify: the current key and any rotated-out ones."""
    config = (app or current_app).config
    keys = [load_public_key(encoded) for encoded in config.get("CHECKPOINT_PUBLIC_KEYS", [])]
    if config.get("CHECKPOINT_KEY"):
        keys.append(load_private_key(config["CHECKPOINT_KEY"]).public_key())
    return {key_id(key): key for key in keys}


def label_keys(app: Flask | None = None) -> tuple[LabelKey, ...]:
    """The label MAC keys: the first signs new labels, all of them verify."""
    encoded = (app or current_app).config.get("LABEL_KEYS")
    if not encoded:
        raise LabelKeysMissingError()
    return parse_label_keys(encoded)


class LabelKeysMissingError(DomainError):
    """Labels cannot be signed or checked without keys from the environment."""

    status = 503
    title = "Label keys not configured"

    def __init__(self) -> None:
        super().__init__("No label keys are configured; set CELLTRAIL_LABEL_KEYS.")


def resolve_scan(session: Session, text: str) -> Resolution:
    """What a scanned or typed code is, checked against this service's public address, its
    trusted label keys and the vials' label prints (a replaced label reads as superseded)."""
    return resolve(
        text,
        base=str(current_app.config["PUBLIC_URL"]),
        keys=label_keys(),
        printed=label_generations(session),
    )
