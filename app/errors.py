"""Every error as RFC 9457 problem+json for the API, and as a page for the browser."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, json, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from lots.errors import DomainError, TooManyAttemptsError

PROBLEM_TYPE_BASE = "https://celltrail.dev/problems/"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str | None = None,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An application/problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (kind or _slug(title)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(
        json.dumps(body), status=status, mimetype="application/problem+json", headers=headers
    )


def init_app(app: Flask) -> None:
    """Register the handlers; they must come after flask-smorest's to replace its JSON."""
    app.before_request(_refuse_unstorable_text)
    app.register_error_handler(RecursionError, _too_deep)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _wants_page() -> bool:
    return not request.path.startswith("/api/") and request.accept_mimetypes.accept_html


def _domain_error(error: DomainError) -> Response | tuple[str, int]:
    headers = {}
    if isinstance(error, TooManyAttemptsError):
        headers["Retry-After"] = str(error.retry_after_seconds)
    errors = _field_errors(error)
    if _wants_page():
        return render_template(
            "error.html", status=error.status, title=error.title, detail=error.detail
        ), error.status
    return problem(
        error.status,
        error.title,
        error.detail,
        kind=_slug(type(error).__name__.removesuffix("Error")),
        errors=errors,
        headers=headers,
    )


def _field_errors(error: DomainError) -> dict[str, list[str]] | None:
    """A refusal about one field: its listed reasons (facts `reasons`), else the detail."""
    field = error.facts.get("field")
    if not isinstance(field, str):
        return None
    reasons = error.facts.get("reasons")
    if isinstance(reasons, list | tuple) and reasons:
        return {field: [str(reason) for reason in reasons]}
    return {field: [error.detail]}


def _http_error(error: HTTPException) -> Response | tuple[str, int]:
    status = error.code or 500
    title = error.name
    detail = error.description or title
    errors = None
    data = getattr(error, "data", None)
    if isinstance(data, dict) and "messages" in data:
        # webargs/flask-smorest: {"json": {"field": ["message"]}} -> {"field": ["message"]}
        messages = data["messages"]
        errors = {}
        for location in messages.values():
            errors.update(location if isinstance(location, dict) else {"_schema": location})
        detail = "The request body does not match the schema; see errors."
    elif isinstance(data, dict) and "message" in data:
        detail = str(data["message"])
    if status == 400 and errors and "_schema" in errors and "Invalid JSON" in str(errors):
        detail = "The request body is not valid JSON."
    if _wants_page():
        return render_template("error.html", status=status, title=title, detail=detail), status
    headers = dict(error.get_headers()) if status in (405, 429) else {}
    headers.pop("Content-Type", None)
    return problem(status, title, detail, errors=errors, headers=headers or None)


def _unexpected_error(error: Exception) -> Response | tuple[str, int]:
    if isinstance(error, HTTPException):
        return _http_error(error)

    return _http_error(InternalServerError())


def _refuse_unstorable_text() -> Response | tuple[str, int] | None:
    # A NUL in a path, a query or a form reaches PostgreSQL as a DataError (a 500); refuse
    # it at the door, once, instead of in every view.
    # The answer is the one a JSON body's field gets (422, the part named): the request is
    # well formed, its text is what cannot be stored.
    parts = {"path": [request.path], "query": [*request.args.keys(), *request.args.values()]}
    if request.mimetype == "application/x-www-form-urlencoded":
        parts["form"] = [*request.form.keys(), *request.form.values()]
    bad = [name for name, values in parts.items() if not all(map(_storable, values))]
    if not bad:
        return None
    detail = "Text may not contain NUL characters or unpaired surrogates."
    if _wants_page():
        page = render_template(
            "error.html", status=422, title="Unprocessable Content", detail=detail
        )
        return page, 422
    return problem(422, "Unprocessable Content", detail, errors={name: [detail] for name in bad})


def _too_deep(_error: RecursionError) -> Response:
    return problem(400, "Bad Request", "The request body is nested too deeply.")


def _storable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _slug(text: str) -> str:
    out = []
    for index, char in enumerate(text):
        if char.isupper() and index:
            out.append("-")
        out.append(char.lower() if char.isalnum() else "-")
    return "".join(out).strip("-").replace("--", "-")
