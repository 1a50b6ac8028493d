"""The OpenAPI 3.1 document is generated from the routes and models (every route, its roles, problem
responses), and schemathesis drives every operation with generated requests: no 5xx, answers as
documented (status codes, content types, response schemas)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import hypothesis
import requests
import schemathesis
from api_kit import ADMIN_KEY, Api
from hypothesis import HealthCheck, Phase
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 25


async def test_document_lists_every_route_with_roles_and_problems(api: Api) -> None:
    status, doc = await api.call("GET", "/v1/openapi.json", role=None)
    assert status == 200 and doc["openapi"] == "3.1.0"
    for route in api.api.registry.routes:
        op = doc["paths"][route.path][route.method.lower()]
        assert op["x-roles"] == sorted(r.value for r in route.roles)
        assert op["responses"]["401"]["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
        if route.response is not None:
            ref = op["responses"][str(route.status)]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in doc["components"]["schemas"]
    search = doc["paths"]["/v1/recordings"]["get"]
    params = {p["name"]: p for p in search["parameters"]}
    assert {"room", "participant", "tag", "status", "started_after", "min_duration", "limit"} <= set(params)
    assert params["tag"]["schema"]["type"] == "array"
    assert "RecordingDetail" in doc["components"]["schemas"] and "Manifest" in doc["components"]["schemas"]
    schemathesis.openapi.from_dict(doc).validate()


def fuzz(base: str) -> dict[str, Any]:
    """(worker thread) Every operation, MAX_EXAMPLES generated requests each, as the admin."""
    schema = schemathesis.openapi.from_url(f"{base}/v1/openapi.json")
    session = requests.Session()
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    calls = {"operations": 0, "requests": 0}
    for result in schema.get_all_operations():
        operation = result.ok()
        calls["operations"] += 1

        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            calls["requests"] += 1
            case.call_and_validate(base_url=base, session=session, headers=headers, checks=checks)

        run()
    return calls


async def test_schemathesis_finds_no_server_error(api: Api) -> None:
    assert api.sfu is not None
    await api.sfu.publish("r1", "100", "Alice")  # something live to pause, patch and search
    started = time.monotonic()
    calls = await asyncio.to_thread(fuzz, api.base)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {calls} in {elapsed:.1f} s")
    assert calls["operations"] == len(api.api.registry.routes) + 1  # + /v1/status
    assert calls["requests"] >= calls["operations"]  # bounded by MAX_EXAMPLES per operation, not by time
    status, result = await api.call("GET", "/v1/audit/verify", role="auditor")
    assert status == 200 and result["ok"] and result["entries"] > calls["operations"]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


async def test_schema_refuses_what_the_api_refuses(api: Api) -> None:
    """Each request the API refuses (422) for a constraint is invalid under the published schema too: a
    client validating against the document learns the rule before the server tells it."""
    status, doc = await api.call("GET", "/v1/openapi.json", role=None)
    assert status == 200
    for schema in walk(doc):  # patternProperties would let a key matching no pattern through (and
        # generated clients ignore it): maps constrain their keys with propertyNames
        assert "patternProperties" not in schema, schema
        if "propertyNames" in schema:
            assert isinstance(schema.get("additionalProperties"), dict), schema
    registry = Registry().with_resource("urn:callvault", Resource.from_contents(doc, DRAFT202012))

    def validator(schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(
            schema,
            registry=registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )

    def body_schema(method: str, path: str) -> dict[str, Any]:
        ref: str = doc["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"][
            "$ref"
        ]
        return {"$ref": "urn:callvault" + ref}

    bodies = [
        ("PUT", "/v1/rooms/{room_id}/policy", {"metadata": {"queue": "b"}}, {"metadata": {"bad key": "b"}}),
        ("PATCH", "/v1/recordings/{recording_id}", {"metadata": {"case": "1"}}, {"metadata": {"-case": "1"}}),
        (
            "PATCH",
            "/v1/recordings/{recording_id}/participants/{participant_id}",
            {"metadata": {"k": None}},
            {"metadata": {"a/b": "v"}},
        ),
        ("POST", "/v1/rooms/{room_id}/start", {"metadata": {"k.1": "v"}}, {"metadata": {"é": "v"}}),
        ("PUT", "/v1/recordings/{recording_id}/legal-hold", {"hold": False}, {"hold": 0}),
        ("PUT", "/v1/rooms/{room_id}/policy", {"record": True}, {"record": "true"}),
    ]
    for method, path, valid, invalid in bodies:
        check = validator(body_schema(method, path))
        assert check.is_valid(valid), (path, valid)
        assert not check.is_valid(invalid), (path, invalid)
        url = path.format(room_id="r1", recording_id="rec-1", participant_id="p1")
        status, problem = await api.call(method, url, json=invalid)
        assert status == 422 and problem["detail"].startswith("body."), (path, invalid, problem)

    params = {p["name"]: p["schema"] for p in doc["paths"]["/v1/recordings"]["get"]["parameters"]}
    check = validator(params["started_before"])
    assert check.is_valid("2024-05-01T12:00:00Z")
    for value in ["0.5", "2024-05-01"]:
        assert not check.is_valid(value)
        status, _ = await api.call("GET", f"/v1/recordings?started_before={value}")
        assert status == 422, value
