"""The custody ledger: canonical event bodies, hash-linked appends, verification and signed
checkpoints. The bottom layer of custody: every other capability writes events through it."""

from __future__ import annotations

from custody.ledger.append import EventDraft, append_event, append_events, chain_events
from custody.ledger.chain import (
    RECORDING_SKEW,
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
from custody.ledger.projections import (
    DISPUTED,
    LOT_STATUS_AFTER,
    LedgerDisagreementError,
    LotRecord,
    decided_lots,
    decided_rows,
    decision_status,
    fold_lot,
    ledger_lot_records,
    lot_row_problems,
    require_lot_agrees,
    row_record,
    status_words,
)
from custody.ledger.verify import (
    VerificationReport,
    checkpoint_anchor,
    checkpoint_due,
    create_checkpoint,
    settle_ledger,
    verify_ledger,
    write_witness,
)

__all__ = [
    "DISPUTED",
    "LOT_STATUS_AFTER",
    "RECORDING_SKEW",
    "Actor",
    "ChainHead",
    "ChainVerifier",
    "CheckpointClaim",
    "CheckpointKeyMissingError",
    "CustodyEvent",
    "EventDraft",
    "LedgerDisagreementError",
    "LotRecord",
    "SignedCheckpoint",
    "VerificationReport",
    "append_event",
    "append_events",
    "build_body",
    "canonical_bytes",
    "chain_events",
    "checkpoint_anchor",
    "checkpoint_due",
    "create_checkpoint",
    "decided_lots",
    "decided_rows",
    "decision_status",
    "digest",
    "fold_lot",
    "format_time",
    "key_id",
    "ledger_lot_records",
    "link",
    "load_private_key",
    "load_public_key",
    "lot_row_problems",
    "parse_anchor",
    "public_key_text",
    "record_observation",
    "require_lot_agrees",
    "root_of",
    "row_record",
    "settle_ledger",
    "sign",
    "signature_is_valid",
    "status_words",
    "verify_ledger",
    "write_witness",
]
