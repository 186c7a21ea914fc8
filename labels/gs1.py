"""GS1 association rules for the Application Identifiers celltrail encodes or reads.

An AI may need another in the same code (`req`: one of a comma-separated list, every `req`
group holding) or be barred beside one (`ex`). biip parses element strings and Digital Links
but does not check these; the lines below are copied from the GS1 Barcode Syntax Dictionary
(gs1-syntax-dictionary.txt, Apache-2.0, GS1 AISBL) and read as they are written there, so a
rule can be checked against its source line by line.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# AI, flags, format, then the key=value attributes: one line each, exactly as the dictionary.
SYNTAX_DICTIONARY = """
00        * N18,csum,key                dlpkey                             # SSCC
01        * N14,csum,key                ex=02,255,37 dlpkey=22,10,21|235   # GTIN
10          X..20                       req=01,02,8006,8026                # BATCH/LOT
17        * N6,yymmd0                   req=01,02,255,8006,8026            # USE BY or EXPIRY
21          X..20                       req=01,8006 ex=235                 # SERIAL
7240        X..20                       req=01,8006                        # PROTOCOL
8017        N18,csum,key                ex=8018 dlpkey=8019                # GSRN - PROVIDER
8018        N18,csum,key                ex=8017 dlpkey=8019                # GSRN - RECIPIENT
"""


@dataclass(frozen=True)
class Rule:
    """One AI's association rule."""

    ai: str
    requires: tuple[frozenset[str], ...]  # each group: at least one of its AIs
    excludes: frozenset[str]


@functools.cache
def rules() -> Mapping[str, Rule]:
    """The rules by AI, parsed from `SYNTAX_DICTIONARY`."""
    parsed = {}
    for line in SYNTAX_DICTIONARY.strip().splitlines():
        fields = line.split("#", 1)[0].split()
        ai, attributes = fields[0], [field for field in fields[1:] if "=" in field]
        requires = tuple(
            frozenset(value.split(",")) for key, value in _pairs(attributes) if key == "req"
        )
        excludes = frozenset(
            ai for key, value in _pairs(attributes) if key == "ex" for ai in value.split(",")
        )
        parsed[ai] = Rule(ai, requires, excludes)
    return parsed


def association_problems(ais: Iterable[str]) -> list[str]:
    """Why a code holding these AIs breaks GS1's association rules, one sentence per rule
    broken; empty when it keeps them. AIs celltrail does not use are not judged here."""
    present = set(ais)
    problems = []
    for ai in sorted(present):
        rule = rules().get(ai)
        if rule is None:
            continue
        for group in rule.requires:
            if not group & present:
                either = " or ".join(f"({other})" for other in sorted(group))
                problems.append(f"AI ({ai}) requires AI {either} in the same code.")
        for other in sorted(rule.excludes & present):
            problems.append(f"AI ({ai}) may not appear with AI ({other}).")
    return problems


def _pairs(attributes: list[str]) -> list[tuple[str, str]]:
    return [(key, value) for key, _, value in (a.partition("=") for a in attributes)]
