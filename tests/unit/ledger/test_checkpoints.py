"""Signed checkpoints: the root, the signature and the keys, without a database."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.ledger import (
    CheckpointClaim,
    key_id,
    load_private_key,
    load_public_key,
    public_key_text,
    root_of,
    sign,
    signature_is_valid,
)

SEED = base64.b64encode(b"celltrail-unit-checkpoint-key-32").decode()
KEY = load_private_key(SEED)
TRUSTED = {key_id(KEY.public_key()): KEY.public_key()}
FIRST, SECOND = hashlib.sha256(b"event 1").hexdigest(), hashlib.sha256(b"event 2").hexdigest()
CLAIM = CheckpointClaim(
    upto_event_id=2,
    event_count=2,
    root=root_of([FIRST, SECOND])[0],
    created_at="2026-03-14T09:27:00.000000Z",
)


def test_the_root_is_sha256_over_the_raw_event_hashes_in_order():
    expected = hashlib.sha256(bytes.fromhex(FIRST) + bytes.fromhex(SECOND)).hexdigest()
    assert root_of([FIRST, SECOND]) == (expected, 2)


def test_the_root_depends_on_the_order_of_events():
    assert root_of([SECOND, FIRST]) != root_of([FIRST, SECOND])


def test_the_signed_message_is_the_canonical_claim():
    assert CLAIM.message() == (
        b'{"created_at":"2026-03-14T09:27:00.000000Z","event_count":2,"format":1,'
        b'"root":"' + CLAIM.root.encode() + b'","upto_event_id":2}'
    )


def test_a_signed_claim_verifies_with_the_trusted_key():
    signer, signature = sign(CLAIM, KEY)
    assert signature_is_valid(CLAIM, signer, signature, TRUSTED)


def test_the_signer_is_named_by_16_hex_digits_of_its_public_key_hash():
    signer, _ = sign(CLAIM, KEY)
    raw = base64.b64decode(public_key_text(KEY.public_key()))
    assert signer == hashlib.sha256(raw).hexdigest()[:16]


@pytest.mark.parametrize(
    "change",
    [
        {"root": root_of([FIRST])[0]},
        {"event_count": 3},
        {"upto_event_id": 3},
        {"created_at": "2026-03-14T09:27:00.000001Z"},
    ],
)
def test_a_claim_changed_after_signing_does_not_verify(change):
    signer, signature = sign(CLAIM, KEY)
    assert not signature_is_valid(dataclasses.replace(CLAIM, **change), signer, signature, TRUSTED)


def test_a_signature_by_an_unknown_key_does_not_verify():
    signer, signature = sign(CLAIM, Ed25519PrivateKey.generate())
    assert not signature_is_valid(CLAIM, signer, signature, TRUSTED)


def test_a_signature_filed_under_a_trusted_key_id_but_made_by_another_key_does_not_verify():
    _, signature = sign(CLAIM, Ed25519PrivateKey.generate())
    assert not signature_is_valid(CLAIM, key_id(KEY.public_key()), signature, TRUSTED)


def test_a_signature_that_is_not_base64_does_not_verify():
    signer, _ = sign(CLAIM, KEY)
    assert not signature_is_valid(CLAIM, signer, "not base64!", TRUSTED)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_a_private_key_seed_of_the_wrong_length_is_refused(length):
    with pytest.raises(ValueError, match="base64 of 32 bytes"):
        load_private_key(base64.b64encode(b"k" * length).decode())


def test_a_public_key_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="base64 of 32 bytes"):
        load_public_key(base64.b64encode(b"k" * 31).decode())


def test_a_public_key_round_trips_through_its_text_form():
    public = load_public_key(public_key_text(KEY.public_key()))
    assert key_id(public) == key_id(KEY.public_key())


def test_url_safe_base64_without_padding_names_the_same_key():
    url_safe = base64.urlsafe_b64encode(b"\xff" * 32).decode().rstrip("=")
    standard = base64.b64encode(b"\xff" * 32).decode()
    assert key_id(load_private_key(url_safe).public_key()) == key_id(
        load_private_key(standard).public_key()
    )
