"""Read back any code celltrail prints, and what real scanners send, into one `Resolution`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementStrings
from biip.gs1_messages import GS1Message
from biip.symbology import SymbologyIdentifier

from labels.gs1 import association_problems
from labels.keys import LabelKey, authentication_code, codes_match, key_ring, split_code
from labels.payload import (
    AI82,
    AUTH_PARAMETER,
    SUBJECT_SEGMENT,
    TRIAL_PARAMETER,
    has_check_digit,
    origin_of,
)
from labels.resolution import Authentication, Kind, Problem, Resolution, Source, describe

GS = "\x1d"
T = TypeVar("T")
_KINDS = {"01": Kind.VIAL, "00": Kind.SHIPPER, "8018": Kind.SUBJECT}


@dataclass(frozen=True)
class _Read:
    """Element values read from the text, before they are judged."""

    source: Source
    elements: dict[str, str]
    expiry: dt.date | None = None
    gtin_ok: bool = True
    on_our_base: bool | None = None
    authentication: Authentication = Authentication.MISSING
    key_id: str | None = None
    generation: int | None = None


# How many labels have been printed for the item with this serial (AI 21): the generation of
# its live label, the newest. 1 when none was recorded (a label's first print).
Printed = Callable[[str], int]


def resolve(text: str, *, base: str, keys: Iterable[LabelKey], printed: Printed) -> Resolution:
    """What `text` (a URI, element string, `(01)…` form or typed serial) identifies.

    `printed` tells the live label generation of a serial, so that a label a reprint replaced
    reads as superseded. Never raises for bad input: every failure is a `Resolution` with a
    problem and a sentence.
    """
    try:
        read = _read(text.strip(), base, key_ring(keys), printed)  # wedge scanners end with CR/LF
    except _RefusedError as error:
        return Resolution(
            text=text,
            kind=Kind.UNREADABLE,
            authentication=Authentication.NOT_CHECKED,
            reason=describe(error.problem, None, detail=error.detail),
            problem=error.problem,
        )
    if isinstance(read, str):
        return Resolution(
            text=text,
            kind=Kind.SERIAL_ONLY,
            authentication=Authentication.MISSING,
            reason="A typed serial: look it up as a vial serial, subject code or SSCC.",
            source=Source.TYPED,
            serial=read,
        )
    return _judge(text, read)


class _RefusedError(Exception):
    def __init__(self, problem: Problem, detail: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.detail = detail


def _read(raw: str, base: str, keys: Mapping[str, LabelKey], printed: Printed) -> _Read | str:
    """What was read, or the stripped text when it can only be a hand-typed serial."""
    symbology = None
    if raw.startswith("]"):
        try:
            symbology = SymbologyIdentifier.extract(raw)
        except (ParseError, IndexError) as error:  # biip indexes past a lone "]"
            raise _RefusedError(Problem.UNREADABLE, "the scanner's prefix is unknown.") from error
        raw = raw[len(symbology.value) :]
    if not raw:
        raise _RefusedError(Problem.NOTHING_SCANNED)
    if raw[:8].lower().startswith(("http://", "https://")):
        broken = next((at for at, char in enumerate(raw, 1) if char in "\t\r\n"), None)
        if broken is not None:
            # urlsplit would drop them silently (WHATWG): the text read is not the code.
            name = {"\t": "a tab", "\r": "a carriage return", "\n": "a line feed"}
            raise _RefusedError(
                Problem.UNREADABLE,
                f"the web address is broken by {name[raw[broken - 1]]} at character {broken}.",
            )
        return _read_uri(raw, base, keys, printed)
    if raw.startswith("("):
        return _from_message(_biip(GS1Message.parse_hri, raw), Source.HUMAN_READABLE)
    if symbology is not None or GS in raw or len(raw) > 20:
        # A scanner's element string (with or without the AIM prefix); a hand-typed serial
        # is never longer than AI 21 allows.
        return _from_message(_biip(GS1Message.parse, raw), Source.ELEMENT_STRING)
    if not AI82.fullmatch(raw):
        raise _RefusedError(Problem.UNREADABLE, "it is neither a label code nor a serial.")
    return raw


def _read_uri(raw: str, base: str, keys: Mapping[str, LabelKey], printed: Printed) -> _Read:
    try:
        parts = urlsplit(raw)
    except ValueError as error:  # e.g. an unbalanced "[" read as an IPv6 host
        raise _RefusedError(Problem.UNREADABLE, "the web address is malformed.") from error
    segments = parts.path.split("/")
    if len(segments) >= 3 and segments[-2] == SUBJECT_SEGMENT:
        read, prefix = _subject_link(segments, parts.query), segments[:-2]
    else:
        link = _biip(GS1DigitalLinkURI.parse, raw)
        read = _from_elements(link.element_strings, Source.DIGITAL_LINK)
        prefix = segments[: segments.index(link.element_strings[0].ai.ai)]
    origin = parts.netloc.lower() + "/".join(unquote(segment) for segment in prefix)
    verdict, key_id, generation = _authenticate(parts.query, origin, read.elements, keys, printed)
    return replace(
        read,
        on_our_base=origin == origin_of(base),
        authentication=verdict,
        key_id=key_id,
        generation=generation,
    )


def _subject_link(segments: list[str], query: str) -> _Read:
    elements = {SUBJECT_SEGMENT: unquote(segments[-1])}
    parameters = parse_qs(query)
    # Wristbands printed before the trial left AI 7240 carry it as "7240"; each verifies
    # under the name it was signed with.
    for name in (TRIAL_PARAMETER, "7240"):
        if parameters.get(name):
            elements[name] = parameters[name][-1]
            break
    if not all(AI82.fullmatch(value) for value in elements.values()):
        raise _RefusedError(
            Problem.UNREADABLE, "the subject code or trial has characters GS1 does not allow."
        )
    return _Read(source=Source.DIGITAL_LINK, elements=elements)


def _authenticate(
    query: str,
    origin: str,
    elements: Mapping[str, str],
    keys: Mapping[str, LabelKey],
    printed: Printed,
) -> tuple[Authentication, str | None, int | None]:
    """The verdict, the key id and the label generation the code was signed for."""
    presented = parse_qs(query, keep_blank_values=True).get(AUTH_PARAMETER)
    if not presented:
        return Authentication.MISSING, None, None
    split = split_code(presented[-1])
    if split is None:
        return Authentication.WRONG, None, None
    key_id = split[0]
    key = keys.get(key_id)
    if key is None:
        return Authentication.UNKNOWN_KEY, key_id, None
    # Only an item's own serial has reprints: the live generation first, then each older one.
    live = max(1, printed(elements["21"])) if "21" in elements else 1
    for generation in range(live, 0, -1):
        expected = authentication_code(key, origin, elements, generation=generation)
        if codes_match(expected, presented[-1]):
            verdict = Authentication.VALID if generation == live else Authentication.SUPERSEDED
            return verdict, key_id, generation
    return Authentication.WRONG, key_id, None


def _from_message(message: GS1Message, source: Source) -> _Read:
    return _from_elements(message.element_strings, source)


def _from_elements(element_strings: GS1ElementStrings, source: Source) -> _Read:
    elements = {element.ai.ai: element.value for element in element_strings}
    if len(elements) != len(element_strings):
        raise _RefusedError(Problem.UNREADABLE, "an Application Identifier appears twice.")
    broken = association_problems(elements)
    if broken:
        raise _RefusedError(Problem.UNREADABLE, f"it breaks GS1's rules: {' '.join(broken)}")
    expiry = next((e.date for e in element_strings if e.ai.ai == "17"), None)
    gtin_ok = all(e.gtin_error is None for e in element_strings)
    return _Read(source=source, elements=elements, expiry=expiry, gtin_ok=gtin_ok)


def _judge(text: str, read: _Read) -> Resolution:
    e = read.elements
    kind = (
        Kind.SUBJECT
        if SUBJECT_SEGMENT in e
        else next((_KINDS[ai] for ai in _KINDS if ai in e), Kind.UNREADABLE)
    )
    resolution = Resolution(
        text=text,
        kind=kind,
        authentication=read.authentication,
        reason="",
        source=read.source,
        on_our_base=read.on_our_base,
        gtin=e.get("01"),
        lot=e.get("10"),
        serial=e.get("21"),
        expiry=read.expiry,
        sscc=e.get("00"),
        gsrn=e.get("8018"),
        subject_code=e.get(SUBJECT_SEGMENT),
        trial=e.get(TRIAL_PARAMETER) or e.get("7240"),
        key_id=read.key_id,
        generation=read.generation,
    )
    problem = _code_problem(resolution, read)
    if problem is not None:
        # The code itself is broken: whatever it seems to name, nothing may be looked up.
        unreadable = replace(resolution, kind=Kind.UNREADABLE)
        return unreadable.refuse(problem, detail=_detail(resolution))
    problem = _trust_problem(read)
    if problem is not None:
        return resolution.refuse(problem)
    return replace(resolution, reason=_accepted(resolution))


def _code_problem(resolution: Resolution, read: _Read) -> Problem | None:
    if not read.gtin_ok:
        return Problem.GTIN_CHECK_DIGIT
    if resolution.sscc is not None and not has_check_digit(resolution.sscc):
        return Problem.SSCC_CHECK_DIGIT
    if resolution.gsrn is not None and not has_check_digit(resolution.gsrn):
        return Problem.GSRN_CHECK_DIGIT
    if resolution.kind is Kind.UNREADABLE or (
        resolution.kind is Kind.VIAL and resolution.serial is None
    ):
        return Problem.NOT_A_CELLTRAIL_CODE
    return None


def _trust_problem(read: _Read) -> Problem | None:
    match read.authentication:
        case Authentication.WRONG:
            return Problem.AUTHENTICATION_WRONG
        case Authentication.UNKNOWN_KEY:
            return Problem.AUTHENTICATION_UNKNOWN_KEY
        case Authentication.SUPERSEDED:
            return Problem.LABEL_SUPERSEDED
        case Authentication.MISSING if read.on_our_base:
            return Problem.AUTHENTICATION_MISSING
    return None


def _detail(resolution: Resolution) -> str:
    if resolution.kind is Kind.VIAL:
        return "a GTIN without a serial names a product, not one vial."
    return "it carries none of AI (00), (01) with (21), or (8018)."


def _accepted(resolution: Resolution) -> str:
    what = {
        Kind.VIAL: f"Vial {resolution.serial} of lot {resolution.lot}",
        Kind.SHIPPER: f"Shipper {resolution.sscc}",
        Kind.SUBJECT: f"Subject {resolution.gsrn or resolution.subject_code}",
    }[resolution.kind]
    if resolution.authentication is Authentication.VALID:
        return f"{what}: authentic celltrail label."
    return f"{what}: no authentication code, so not a celltrail-printed code; check it by hand."


def _biip(parse: Callable[[str], T], raw: str) -> T:
    try:
        return parse(raw)
    except (ParseError, ValueError) as error:
        # biip's messages name the AI and pattern; useful to QA, so they are kept.
        raise _RefusedError(Problem.UNREADABLE, f"the GS1 data does not parse ({error})") from error
