"""Signed checkpoints: Ed25519 over a digest of the whole ledger up to one event. Pure code.

The root is SHA-256 over the 32-byte hashes of every event with id <= upto_event_id, in id
order. A database rewritten consistently (every chain re-hashed) still changes the root,
and the signing key never enters the database, so the rewrite cannot re-sign it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class CheckpointClaim:
    """What a checkpoint asserts about the ledger."""

    upto_event_id: int
    event_count: int
    root: str
    created_at: str

    def message(self) -> bytes:
        """The canonical bytes that are signed."""
        return rfc8785.dumps(
            {
                "format": CHECKPOINT_FORMAT,
                "upto_event_id": self.upto_event_id,
                "event_count": self.event_count,
                "root": self.root,
                "created_at": self.created_at,
            }
        )


class RootBuilder:
    """Accumulates the checkpoint root one event hash at a time."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.count = 0

    def add(self, event_hash: str) -> None:
        """Fold in the next event's hex hash."""
        self._sha.update(bytes.fromhex(event_hash))
        self.count += 1

    def hexdigest(self) -> str:
        """The root so far."""
        return self._sha.hexdigest()


def root_of(event_hashes: Iterable[str]) -> tuple[str, int]:
    """The root and count of a sequence of event hashes."""
    builder = RootBuilder()
    for event_hash in event_hashes:
        builder.add(event_hash)
    return builder.hexdigest(), builder.count


@dataclass(frozen=True)
class SignedCheckpoint:
    """A claim with its signature, from the database or from an anchor kept outside it."""

    name: str
    claim: CheckpointClaim
    key_id: str
    signature: str

    def anchor(self) -> dict[str, object]:
        """The JSON an operator stores outside the database (a ticket, a log, a notary)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "upto_event_id": self.claim.upto_event_id,
            "event_count": self.claim.event_count,
            "root": self.claim.root,
            "created_at": self.claim.created_at,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def parse_anchor(document: Mapping[str, object], name: str = "anchor") -> SignedCheckpoint:
    """A checkpoint anchor read back from its JSON; ValueError when it is not one."""
    try:
        claim = CheckpointClaim(
            upto_event_id=int(str(document["upto_event_id"])),
            event_count=int(str(document["event_count"])),
            root=str(document["root"]),
            created_at=str(document["created_at"]),
        )
        return SignedCheckpoint(name, claim, str(document["key_id"]), str(document["signature"]))
    except KeyError as error:
        raise ValueError(f"a checkpoint anchor needs {error.args[0]!r}") from error


def load_private_key(encoded: str) -> Ed25519PrivateKey:
    """An Ed25519 key from the base64 of its 32-byte seed (the environment's form)."""
    seed = _b64decode(encoded)
    if len(seed) != 32:
        raise ValueError("an Ed25519 checkpoint key is the base64 of 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_public_key(encoded: str) -> Ed25519PublicKey:
    """An Ed25519 public key from the base64 of its 32 raw bytes."""
    raw = _b64decode(encoded)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is the base64 of 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    """The base64 of a public key's raw bytes, for CELLTRAIL_CHECKPOINT_PUBLIC_KEYS."""
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def sign(claim: CheckpointClaim, private_key: Ed25519PrivateKey) -> tuple[str, str]:
    """The key id and base64 signature of a claim."""
    signature = private_key.sign(claim.message())
    return key_id(private_key.public_key()), base64.b64encode(signature).decode()


def signature_is_valid(
    claim: CheckpointClaim,
    signer_key_id: str,
    signature: str,
    public_keys: Mapping[str, Ed25519PublicKey],
) -> bool:
    """Whether one of the trusted keys signed this claim."""
    key = public_keys.get(signer_key_id)
    if key is None:
        return False
    try:
        key.verify(_b64decode(signature), claim.message())
    except (InvalidSignature, ValueError):
        return False
    return True


def _b64decode(text: str) -> bytes:
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
