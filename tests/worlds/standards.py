"""Test world builders."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

# GS1's files live in the shared folder beside the repository, never in it.
STANDARDS = Path(__file__).resolve().parents[2].parent / "shared" / "standards" / "epcis"


SCHEMA = STANDARDS / "EPCIS-JSON-Schema.json"


def read_standard(path: Path) -> Any:
    if not path.exists():
        message = f"GS1's EPCIS files are not in {path.parent} (../shared/standards/epcis/)."
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return json.loads(path.read_text(encoding="utf-8"))


def epcis_validator() -> Validator:
    """A format-checking validator of GS1's EPCIS 2.0 JSON schema."""
    schema = read_standard(SCHEMA)
    cls = validator_for(schema)
    assert cls is Draft7Validator  # the schema's $schema is draft-07
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def problems(validator: Validator, instance: Any) -> Iterator[str]:
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        yield f"{list(error.absolute_path)}: {error.message}"
