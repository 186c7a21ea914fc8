"""The ledger as JSON Lines with the chain list, checked by the reference verifier in docs/
(written from the published format, not from celltrail's code) for each tampering class."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from custody.ledger import ChainHead, CustodyEvent
from custody.trials import hidden_kit_chains

_SPEC = importlib.util.spec_from_file_location(
    "verify_ledger", Path(__file__).parents[2] / "docs" / "verify_ledger.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
reference = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(reference)


def _scalar(app, statement):
    with app.app_context():
        return app.extensions["celltrail.db"].sessions().scalar(statement)


def _export(client, auth_headers, who="auditor", **query):
    response = client.get(
        "/api/v1/ledger/export",
        query_string={"format": "jsonl", **query},
        headers=auth_headers(who),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/jsonl"
    return response.get_data(as_text=True).splitlines()


def _chains(client, auth_headers, who="auditor"):
    response = client.get("/api/v1/ledger/chains", headers=auth_headers(who))
    assert response.status_code == 200
    return response.json


@pytest.fixture
def unblinded_qa(client, auth_headers):
    patched = client.patch(
        "/api/v1/users/qa", json={"unblinded": True}, headers=auth_headers("admin")
    )
    assert patched.status_code == 200
    return "qa"


def test_an_unblinded_export_holds_every_event_and_the_reference_verifier_agrees(
    client, auth_headers, app, unblinded_qa
):
    lines = _export(client, auth_headers, unblinded_qa)
    heads = _chains(client, auth_headers, unblinded_qa)

    intact, found = reference.verify(lines, heads)

    assert intact, found
    assert len(lines) == _scalar(app, select(func.count(CustodyEvent.id)))
    assert len(heads) == _scalar(app, select(func.count()).where(ChainHead.seq > 0))
    assert "id" not in json.loads(lines[0])
    assert '"id"' not in json.loads(lines[0])["body"]


def _tampered(lines, heads, how):
    lines, heads = list(lines), [dict(head) for head in heads]
    record = json.loads(lines[len(lines) // 2])
    at = len(lines) // 2
    body = json.loads(record["body"])
    if how == "edited body":
        body["payload"] = {**body["payload"], "tampered": True}
        record["body"] = json.dumps(body, separators=(",", ":"), sort_keys=True)
        lines[at] = json.dumps(record)
    elif how == "edited hash":
        record["hash"] = "0" * 64
        lines[at] = json.dumps(record)
    elif how == "deleted event":
        del lines[at]
    elif how == "duplicated event":
        lines.insert(at, lines[at])
    elif how == "swapped events":
        # Lines come in chain and seq order: a chain's seq 2 follows its seq 1.
        second = next(i for i, line in enumerate(lines) if json.loads(line)["seq"] == 2)
        lines[second - 1], lines[second] = lines[second], lines[second - 1]
    elif how == "truncated tail":
        del lines[-1]  # the last chain loses its newest event
    elif how == "missing chain":
        chain = record["chain"]
        lines = [line for line in lines if json.loads(line)["chain"] != chain]
    elif how == "forged head":
        heads[0]["hash"] = "f" * 64
    return lines, heads


@pytest.mark.parametrize(
    "how",
    [
        "edited body",
        "edited hash",
        "deleted event",
        "duplicated event",
        "swapped events",
        "truncated tail",
        "missing chain",
        "forged head",
    ],
)
def test_the_reference_verifier_catches_each_tampering_of_an_export(client, auth_headers, how):
    lines, heads = _export(client, auth_headers), _chains(client, auth_headers)
    assert reference.verify(lines, heads)[0]

    intact, found = reference.verify(*_tampered(lines, heads, how))

    assert not intact, how
    assert found


def test_a_blinded_export_leaves_out_whole_chains_that_name_a_kit_vial_and_still_verifies(
    client, auth_headers, app
):
    with app.app_context():
        session = app.extensions["celltrail.db"].sessions()
        kit_chains = set(session.scalars(hidden_kit_chains()))
    assert kit_chains, "the demo has blinded kits"
    serials = {chain.removeprefix("vial:") for chain in kit_chains}

    lines = _export(client, auth_headers, "auditor")
    heads = _chains(client, auth_headers, "auditor")

    assert reference.verify(lines, heads)[0]
    for line in lines:
        record = json.loads(line)
        assert record["chain"] not in kit_chains
        assert not any(f'"{serial}"' in record["body"] for serial in serials), record["chain"]
    assert {head["chain"] for head in heads} == {json.loads(line)["chain"] for line in lines}


def test_one_chain_exports_alone_and_a_hidden_one_is_unknown(client, auth_headers, app):
    with app.app_context():
        session = app.extensions["celltrail.db"].sessions()
        kit_chain = session.scalars(hidden_kit_chains()).first()
    lines = _export(client, auth_headers, chain="lot:XS228-2610-01")
    assert {json.loads(line)["chain"] for line in lines} == {"lot:XS228-2610-01"}
    hidden = client.get(
        "/api/v1/ledger/export",
        query_string={"format": "jsonl", "chain": kit_chain},
        headers=auth_headers("auditor"),
    )
    assert hidden.status_code == 404


def test_jsonl_is_narrowed_by_chain_only(client, auth_headers):
    refused = client.get(
        "/api/v1/ledger/export",
        query_string={"format": "jsonl", "lot": "XS228-2610-01"},
        headers=auth_headers("auditor"),
    )
    assert refused.status_code == 422
    assert refused.content_type == "application/problem+json"


@pytest.mark.parametrize("who", ["manufacturing", "courier", "pharmacist", "clinician", "qc"])
def test_only_oversight_lists_chains(client, auth_headers, who):
    assert client.get("/api/v1/ledger/chains", headers=auth_headers(who)).status_code == 403
