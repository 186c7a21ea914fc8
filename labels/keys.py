"""Label authentication keys and the keyed MAC that makes a forged or altered label show."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

KEY_ID = re.compile(r"[A-Za-z0-9]{1,8}")
MIN_SECRET_BYTES = 32

# 64 bits of HMAC-SHA-256, base32 without padding: 13 characters.
# The key never leaves the service, so there is no offline oracle: a forger has to present each
# guess to celltrail as a scan, which is logged and can be rate-limited. At 64 bits even a
# million guesses succeed with probability 2^-44 (SP 800-107r1 §5.3.4 accepts ≥ 32 bits when
# guesses are limited). Base32 (A–Z, 2–7) has one case and no '-' or '_', so a QA person can
# read it out or type it. Length is what the 13 mm vial label pays for: with the realistic
# vial payload the QR stays at version 6, level M (the largest that keeps 0.25 mm modules),
# for a base URL of up to 34 characters; 80 bits would cut that to 31, 128 bits to 28.
MAC_BYTES = 8
MAC_CHARS = 13
_CODE = re.compile(rf"([A-Za-z0-9]{{1,8}})\.([A-Z2-7]{{{MAC_CHARS}}})")
_DOMAIN = b"celltrail label v1"


class LabelKeyError(ValueError):
    """A label key is malformed; the message says how."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class LabelKey:
    """One HMAC key, named by a short id printed in every code it signs (so keys can rotate)."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not KEY_ID.fullmatch(self.key_id):
            raise LabelKeyError(
                f"Key id {self.key_id!r} must be 1 to 8 letters or digits (it is printed on "
                "every label, so keep it short)."
            )
        if len(self.secret) < MIN_SECRET_BYTES:
            raise LabelKeyError(
                f"Key {self.key_id!r} has {len(self.secret)} bytes; a label key needs at "
                f"least {MIN_SECRET_BYTES} random bytes."
            )


def parse_label_keys(text: str) -> tuple[LabelKey, ...]:
    """Keys from configuration text `id:base64secret,id:base64secret`; the first signs new labels.

    The others stay trusted for verification until every label they signed has expired.
    """
    keys: list[LabelKey] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key_id, separator, encoded = item.partition(":")
        if not separator:
            raise LabelKeyError(f"Label key {key_id!r} needs the form id:base64secret.")
        try:
            secret = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise LabelKeyError(f"Label key {key_id!r} is not valid base64.") from error
        keys.append(LabelKey(key_id.strip(), secret))
    if len({key.key_id for key in keys}) != len(keys):
        raise LabelKeyError("Two label keys share an id; each id must name one key.")
    return tuple(keys)


def key_ring(keys: Iterable[LabelKey]) -> Mapping[str, LabelKey]:
    """The trusted keys by id."""
    return {key.key_id: key for key in keys}


def authentication_code(
    key: LabelKey, origin: str, elements: Mapping[str, str], *, generation: int = 1
) -> str:
    """The `ac` value: key id, a dot, and the truncated MAC of the code's canonical form.

    `generation` numbers the prints of one item's label: a reprint signs the next one, so the
    label it replaced no longer matches the live generation (and scans as superseded). The
    payload does not carry it: the verifier tries the generations the records hold.
    """
    message = _message(key.key_id, origin, elements, generation)
    digest = hmac.new(key.secret, message, hashlib.sha256)
    mac = base64.b32encode(digest.digest()[:MAC_BYTES]).decode("ascii").rstrip("=")
    return f"{key.key_id}.{mac}"


def split_code(code: str) -> tuple[str, str] | None:
    """(key id, MAC) of a well-formed `ac` value, else None."""
    match = _CODE.fullmatch(code)
    return (match.group(1), match.group(2)) if match else None


def codes_match(expected: str, presented: str) -> bool:
    """Constant-time comparison, so timing tells a forger nothing about how close he is."""
    return hmac.compare_digest(expected.encode("ascii"), presented.encode("ascii", "replace"))


def _message(key_id: str, origin: str, elements: Mapping[str, str], generation: int) -> bytes:
    # One element per line, `key=value`, sorted by key: GS1 values cannot contain a newline,
    # so two different codes never share a canonical form. The origin (host and path prefix,
    # case-folded host) is covered so a copied code moved to another address fails; the
    # scheme is not, because http and https name the same label.
    # The first print signs exactly what labels signed before reprints had generations, so
    # every label printed then still verifies; later generations add one line.
    lines = [_DOMAIN.decode(), key_id, origin, *(f"{k}={v}" for k, v in sorted(elements.items()))]
    if generation < 1:
        raise ValueError(f"A label generation counts from 1, not {generation}.")
    if generation > 1:
        lines.append(f"generation={generation}")
    return "\n".join(lines).encode("utf-8")
