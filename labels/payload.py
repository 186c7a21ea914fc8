"""What celltrail prints in its QR codes: GS1 Digital Link URIs with an authentication code."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote, unquote, urlsplit

from biip.checksums import gs1_standard_check_digit

from labels.gs1 import association_problems
from labels.keys import LabelKey, authentication_code

# GS1 AI encodable character set 82 (General Specifications §7.11, figure 7.11-1), which AI 10,
# AI 21 and AI 7240 use, at most 20 characters.
AI82 = re.compile(r"[!\"%-?A-Z_a-z]{1,20}")
GTIN_LENGTHS = (8, 12, 13, 14)
AUTH_PARAMETER = "ac"
SUBJECT_SEGMENT = "subject"
# The trial of a plain subject code, on celltrail's own /subject/ path. Not AI 7240: GS1
# lets that AI stand only beside a GTIN (01) or an ITIP (8006), never a GSRN or no key.
TRIAL_PARAMETER = "trial"


class InvalidIdentifierError(ValueError):
    """An identifier cannot go on a label; the message says which and why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"The {field} {value!r} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


def vial_uri(
    *,
    base: str,
    gtin: str,
    lot: str,
    serial: str,
    expiry: dt.date,
    key: LabelKey | None,
    generation: int = 1,
) -> str:
    """`{base}/01/{GTIN-14}/10/{lot}/21/{serial}?17={YYMMDD}&ac={key id}.{MAC}`; the MAC also
    covers which print of the vial's label this is (`generation`, 1 for the first). Without
    a key (a preview) the link has no authentication code, and every scan refuses it."""
    elements = {
        "01": gtin14(gtin),
        "10": _ai82("lot", lot),
        "21": _ai82("serial", serial),
        "17": f"{expiry:%y%m%d}",
    }
    path = f"/01/{elements['01']}/10/{_escape(lot)}/21/{_escape(serial)}"
    return _signed(base, path, {"17": elements["17"]}, elements, key, generation=generation)


def shipper_uri(*, base: str, sscc: str, key: LabelKey) -> str:
    """`{base}/00/{SSCC}?ac=…`: the shipper's SSCC, authenticated like a vial's code."""
    if not (sscc.isascii() and sscc.isdigit() and len(sscc) == 18) or not has_check_digit(sscc):
        raise InvalidIdentifierError("SSCC", sscc, "is not 18 digits with a GS1 check digit.")
    return _signed(base, f"/00/{sscc}", {}, {"00": sscc}, key)


def subject_uri(
    *,
    base: str,
    key: LabelKey,
    gsrn: str | None = None,
    subject: str | None = None,
    trial: str | None = None,
) -> str:
    """The wristband's code: `{base}/8018/{GSRN}`, or `{base}/subject/{code}?trial={trial}`.

    A Digital Link rather than an element string: the bedside phone opens the subject's page
    directly, a handheld scanner sends the same text, and `qrcode` cannot set the FNC1 mode a
    GS1 QR element string needs. A GSRN names the subject alone (GS1 has no AI for its
    trial beside a GSRN). A plain subject code has no GS1 key, so it rides on celltrail's own
    `/subject/` path with its trial, under the same authentication code.
    """
    if (gsrn is None) == (subject is None):
        raise ValueError("A wristband carries either a GSRN or a plain subject code.")
    if gsrn is not None and trial is not None:
        raise InvalidIdentifierError(
            "trial", trial, "cannot go beside a GSRN: AI (7240) requires AI (01) or (8006)."
        )
    query = {TRIAL_PARAMETER: _ai82("trial", trial)} if trial is not None else {}
    if gsrn is not None:
        if not (gsrn.isascii() and gsrn.isdigit() and len(gsrn) == 18) or not has_check_digit(gsrn):
            raise InvalidIdentifierError("GSRN", gsrn, "is not 18 digits with a GS1 check digit.")
        return _signed(base, f"/8018/{gsrn}", query, {"8018": gsrn, **query}, key)
    code = _ai82("subject code", subject)
    path = f"/{SUBJECT_SEGMENT}/{_escape(code)}"
    return _signed(base, path, query, {SUBJECT_SEGMENT: code, **query}, key)


def sscc_from(company_prefix: str, serial_reference: int, *, extension: int = 0) -> str:
    """An SSCC: extension digit, GS1 company prefix, serial reference, check digit."""
    if not (
        company_prefix.isascii() and company_prefix.isdigit() and 4 <= len(company_prefix) <= 12
    ):
        raise InvalidIdentifierError(
            "GS1 company prefix", company_prefix, "must be 4 to 12 digits."
        )
    if not 0 <= extension <= 9:
        raise InvalidIdentifierError("extension digit", extension, "must be 0 to 9.")
    width = 16 - len(company_prefix)
    if not 0 <= serial_reference < 10**width:
        raise InvalidIdentifierError(
            "serial reference", serial_reference, f"must fit in {width} digits after that prefix."
        )
    body = f"{extension}{company_prefix}{serial_reference:0{width}d}"
    return body + str(gs1_standard_check_digit(body))


def gtin14(gtin: str) -> str:
    """The GTIN zero-padded to the 14 digits of AI (01), after checking its check digit."""
    if not (gtin.isascii() and gtin.isdigit() and len(gtin) in GTIN_LENGTHS):
        raise InvalidIdentifierError("GTIN", gtin, "must be 8, 12, 13 or 14 digits.")
    if not has_check_digit(gtin):
        raise InvalidIdentifierError("GTIN", gtin, "has a wrong check digit.")
    return gtin.rjust(14, "0")


def has_check_digit(number: str) -> bool:
    """Whether the last digit is the GS1 mod-10 check digit of the others."""
    return gs1_standard_check_digit(number[:-1]) == int(number[-1])


def origin_of(base: str) -> str:
    """Host (case-folded) and path prefix of a base URL: what the MAC binds a code to."""
    parts = urlsplit(base)
    prefix = "/".join(unquote(segment) for segment in parts.path.rstrip("/").split("/"))
    return parts.netloc.lower() + prefix


def check_base(base: str) -> str:
    """The base without a trailing slash, once it is an http(s) URL a Digital Link can use."""
    parts = urlsplit(base)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidIdentifierError("base URL", base, "must be http(s)://host[/prefix].")
    if any(s.isdigit() or s == SUBJECT_SEGMENT for s in segments):
        # A resolver finds the GS1 key as the first all-digit segment; the prefix must not
        # look like one.
        raise InvalidIdentifierError("base URL", base, "has a path segment a resolver misreads.")
    return base.rstrip("/")


def _signed(
    base: str,
    path: str,
    query: dict[str, str],
    elements: dict[str, str],
    key: LabelKey | None,
    *,
    generation: int = 1,
) -> str:
    root = check_base(base)
    gs1 = [ai for ai in elements if ai.isdigit()]
    problems = association_problems(gs1) if len(gs1) == len(elements) else []
    if problems:
        raise InvalidIdentifierError("code", path, f"breaks GS1's rules: {' '.join(problems)}")
    params = [f"{name}={_escape(value)}" for name, value in query.items()]
    if key is not None:
        code = authentication_code(key, origin_of(root), elements, generation=generation)
        params.append(f"{AUTH_PARAMETER}={code}")
    return f"{root}{path}?{'&'.join(params)}" if params else f"{root}{path}"


def _ai82(field: str, value: str | None) -> str:
    if value is None or not AI82.fullmatch(value):
        raise InvalidIdentifierError(
            field,
            value,
            "must be 1 to 20 characters of GS1's AI 82 set (letters, digits, "
            "and !\"%&'()*+,-./:;<=>?_).",
        )
    return value


def _escape(value: str) -> str:
    # GS1 Digital Link §4.4: percent-encode every character of a value outside the URI
    # unreserved set, which for AI 82 leaves letters, digits, '-', '.', '_'.
    return quote(value, safe="")
