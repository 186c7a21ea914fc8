"""What every page form shares: blank fields count as absent, and a refused form's problems
read as one sentence per field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, pre_load


class PageForm(Schema):
    """A posted page form: blank fields count as absent, the CSRF token is Flask-WTF's."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _drop_blanks(self, data: Mapping[str, Any], **_kwargs: Any) -> dict[str, Any]:
        return {key: value.strip() for key, value in data.items() if value.strip()}


def messages(error: ValidationError) -> list[str]:
    """One sentence per problem, named by its field ("Reason: …")."""
    out = []
    for name, problems in error.normalized_messages().items():
        label = "" if name == "_schema" else f"{name.replace('_', ' ').capitalize()}: "
        items = problems if isinstance(problems, list) else [str(problems)]
        out.extend(f"{label}{problem}" for problem in items)
    return out
