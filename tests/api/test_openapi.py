"""The OpenAPI 3.1 document is generated from the routes and models (every route, its roles, problem
responses), and schemathesis drives every operation with generated requests: no 5xx, answers as
documented (status codes, content types, response schemas)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import hypothesis
import requests
import schemathesis
from api_kit import ADMIN_KEY, Api
from hypothesis import HealthCheck, Phase
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
    assert calls["requests"] >= calls["operations"]
    assert elapsed < 60
    status, result = await api.call("GET", "/v1/audit/verify", role="auditor")
    assert status == 200 and result["ok"] and result["entries"] > calls["operations"]
