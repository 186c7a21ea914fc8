"""The custody ledger: canonical event bodies, hash-linked appends, verification and signed
checkpoints. The bottom layer of custody: every other capability writes events through it."""

from __future__ import annotations

from custody.ledger.append import EventDraft, append_event, append_events, chain_events
from custody.ledger.chain import (
    Actor,
    ChainVerifier,
    build_body,
    canonical_bytes,
    digest,
    format_time,
    link,
)
from custody.ledger.checkpoints import (
    CheckpointClaim,
    SignedCheckpoint,
    key_id,
    load_private_key,
    load_public_key,
    parse_anchor,
    public_key_text,
    root_of,
    sign,
    signature_is_valid,
)
from custody.ledger.errors import CheckpointKeyMissingError
from custody.ledger.models import ChainHead, CustodyEvent
from custody.ledger.observations import record_observation
from custody.ledger.verify import (
    VerificationReport,
    checkpoint_anchor,
    create_checkpoint,
    settle_ledger,
    verify_ledger,
)

__all__ = [
    "Actor",
    "ChainHead",
    "ChainVerifier",
    "CheckpointClaim",
    "CheckpointKeyMissingError",
    "CustodyEvent",
    "EventDraft",
    "SignedCheckpoint",
    "VerificationReport",
    "append_event",
    "append_events",
    "build_body",
    "canonical_bytes",
    "chain_events",
    "checkpoint_anchor",
    "create_checkpoint",
    "digest",
    "format_time",
    "key_id",
    "link",
    "load_private_key",
    "load_public_key",
    "parse_anchor",
    "public_key_text",
    "record_observation",
    "root_of",
    "settle_ledger",
    "sign",
    "signature_is_valid",
    "verify_ledger",
]
