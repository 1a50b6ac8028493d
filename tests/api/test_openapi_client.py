"""The OpenAPI document as third-party tools take it.

- openapi-spec-validator accepts it; one time format (RFC 3339 date-times, never Unix seconds); an example
  of every body, valid under its schema; the 307 of `GET .../file`; `/v1/status`'s 401 and 403 as
  problems; the webhooks in a top-level `webhooks` section generated from the payload models; a license
  and tag descriptions.
- openapi-python-client generates a client from the served document (into the test's temporary folder)
  and that client, raising on any undocumented status, makes one call of each kind against the running
  service (a real archive on a local store, a real call from ffmpeg): JSON reads with path and query
  parameters, bodies to POST, PUT and PATCH, a DELETE, a file (200 from the local folder, then the 307 to
  the store), text (metrics, the audit export), the status page, and problems (401, 403, 404, 409, 422).
  Every answer parses into its documented model, times as datetimes.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_kit import ADMIN_KEY, Api, ApiFactory
from jsonschema import Draft202012Validator
from media import encode_reference, rtp_sender
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from recorder.archive import Archive, ArchiveSettings
from recorder.webhooks import EventType, WebhookEvent
from recorder.webhooks.events import EVENT_BODIES


def is_time_name(name: str) -> bool:
    """A property holding a point in time (rtp timestamps are media clock values, not times)."""
    return name.endswith(("_at", "_until")) or name in {"start_time", "end_time", "timestamp"}


CLIENT_CONFIG = """\
content_type_overrides:
  application/x-ndjson: text/plain
post_hooks: []
"""
"""openapi-python-client reads JSON, text/* and octet-stream answers: the JSON Lines export as text; no
formatter run on the generated code."""


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def manifest_parts(schemas: dict[str, Any]) -> set[str]:
    """Names of the schemas the manifest's schema refers to, itself included."""
    found, todo = set(), ["Manifest"]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += [n["$ref"].rsplit("/", 1)[-1] for n in walk(schemas[name]) if "$ref" in n]
    return found


def is_date_time(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(o.get("format") == "date-time" for o in options) and all(
        o.get("format") == "date-time" or o.get("type") == "null" for o in options
    )


async def test_document_conventions(api: Api) -> None:
    status, doc = await api.call("GET", "/v1/openapi.json", role=None)
    assert status == 200
    validate(doc)  # openapi-spec-validator (OpenAPI 3.1 and its JSON Schema dialect)

    assert doc["info"]["license"] == {"name": "Apache-2.0", "identifier": "Apache-2.0"}
    described = {t["name"]: t.get("description") for t in doc["tags"]}
    for item in [*doc["paths"].values(), *doc["webhooks"].values()]:
        for op in item.values():
            assert all(described.get(tag) for tag in op["tags"]), op["operationId"]

    schemas = doc["components"]["schemas"]
    for name, schema in schemas.items():  # one time format
        if name in manifest_parts(schemas) - {"Manifest"}:
            continue  # the signed manifest's track summaries keep Unix seconds (callvault.manifest/1)
        for prop, sub in schema.get("properties", {}).items():
            if is_time_name(prop):
                assert is_date_time(sub), f"{name}.{prop}: {sub}"

    registry = Registry().with_resource("urn:callvault", Resource.from_contents(doc, DRAFT202012))

    def check_example(where: str, media: dict[str, Any]) -> None:
        schema = media["schema"]
        if schema.get("format") == "binary":
            return  # a file: no example
        assert "example" in media, where
        if "$ref" in schema:
            schema = {"$ref": "urn:callvault" + schema["$ref"]}
        validator = Draft202012Validator(
            schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        errors = [e.message for e in validator.iter_errors(media["example"])]
        assert not errors, (where, errors[:3])

    bodies = 0
    for path, item in [*doc["paths"].items(), *doc["webhooks"].items()]:
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            for media_type, media in op.get("requestBody", {}).get("content", {}).items():
                check_example(f"{where} request {media_type}", media)
                bodies += 1
            for code, response in op["responses"].items():
                for media_type, media in response.get("content", {}).items():
                    check_example(f"{where} {code} {media_type}", media)
                    bodies += 1
    assert bodies > 150

    file_op = doc["paths"]["/v1/recordings/{recording_id}/file"]["get"]
    redirect = file_op["responses"]["307"]
    assert redirect["headers"]["Location"]["required"] is True
    assert file_op["responses"]["200"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"

    status_op = doc["paths"]["/v1/status"]["get"]
    for code in ("401", "403"):
        problem = status_op["responses"][code]["content"]["application/problem+json"]
        assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert problem["example"]["status"] == int(code) and problem["example"]["instance"] == "/v1/status"

    assert set(doc["webhooks"]) == {t.value for t in EventType}
    for kind, model in EVENT_BODIES.items():
        hook = doc["webhooks"][kind.value]["post"]
        media = hook["requestBody"]["content"]["application/json"]
        assert media["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        data = doc["components"]["schemas"][model.__name__]["properties"]["data"]
        assert data == {"$ref": f"#/components/schemas/{model.__name__.removesuffix('Event')}"}
        event = WebhookEvent.model_validate(media["example"])  # what the dispatcher sends, parsed back
        assert event.type is kind and event.timestamp.tzinfo is not None
        assert {p["name"] for p in hook["parameters"]} == {
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }


def generate_client(doc: dict[str, Any], folder: Path) -> Any:
    """openapi-python-client's package for `doc`, generated into `folder` and imported."""
    (folder / "openapi.json").write_text(json.dumps(doc))
    (folder / "config.yaml").write_text(CLIENT_CONFIG)
    package = folder / "callvault_client"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(folder / "openapi.json"),
            "--output-path",
            str(package),
            "--meta",
            "none",
            "--config",
            str(folder / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output and "Error" not in output, output  # every operation generated whole
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("callvault_client")
    finally:
        sys.path.remove(str(folder))


@pytest.fixture
def forget_client() -> Iterator[None]:
    yield
    for name in [n for n in sys.modules if n == "callvault_client" or n.startswith("callvault_client.")]:
        del sys.modules[name]


async def test_generated_client_calls_every_kind(
    make_api: ApiFactory, tmp_path: Path, forget_client: None
) -> None:
    reference = await asyncio.to_thread(encode_reference, "vp8", tmp_path, 1.5)
    archive = Archive(ArchiveSettings.model_validate({"finish_timeout": 20}), tmp_path / "data")
    await archive.start()
    api: Api = await make_api(sinks=[archive])
    try:
        _, doc = await api.call("GET", "/v1/openapi.json", role=None)
        started = datetime.now(UTC) - timedelta(seconds=1)
        cv = await asyncio.to_thread(generate_client, doc, tmp_path)
        await calls(cv, api, reference, started)
    finally:
        for room in list(api.manager.rooms):
            await api.manager.finish_room(room)
        await archive.stop()


async def calls(cv: Any, api: Api, reference: Path, started: datetime) -> None:
    rec = importlib.import_module("callvault_client.api.recordings")
    policy = importlib.import_module("callvault_client.api.policy")
    keys = importlib.import_module("callvault_client.api.keys")
    audit = importlib.import_module("callvault_client.api.audit")
    ops = importlib.import_module("callvault_client.api.operations")
    m = importlib.import_module("callvault_client.models")
    types = importlib.import_module("callvault_client.types")

    def client(key: str) -> Any:
        return cv.AuthenticatedClient(base_url=api.base, token=key, raise_on_unexpected_status=True)

    def call(module: Any, operation: str) -> Any:
        return importlib.import_module(f"{module.__name__}.{operation}").asyncio_detailed

    admin, operator = client(ADMIN_KEY), client(api.keys["operator"])
    supervisor, auditor = client(api.keys["supervisor"]), client(api.keys["auditor"])
    anonymous = cv.Client(base_url=api.base, raise_on_unexpected_status=True)

    async def ok(expected: type, code: int, request: Any, **kw: Any) -> Any:
        response = await request(**kw)
        assert response.status_code == code, (response.status_code, response.content[:300])
        assert isinstance(response.parsed, expected), type(response.parsed)
        return response.parsed

    # PUT with a body, then a room recorded: POST with a body
    room_policy = m.RoomPolicy.from_dict({"record": True, "metadata": {"queue": "billing"}})
    room = await ok(
        m.RoomOut, 200, call(policy, "set_room_policy"), room_id="r", client=operator, body=room_policy
    )
    assert room.recording is True
    start = m.StartRequest.from_dict({"call_id": "call-1", "metadata": {"ticket": "T-1"}})
    await ok(m.RoomOut, 200, call(policy, "start_room"), room_id="r", client=operator, body=start)
    assert api.sfu is not None
    await api.sfu.publish("r", "1001", "Agent")
    sender = rtp_sender(reference, api.sfu.port_of("r", "1001"))
    await asyncio.to_thread(sender.wait, 30)
    (rid,) = [r.info.recording_id for r in api.manager.rooms.values()]

    # GET with query parameters (a date-time filter), answers with times as datetimes
    page = await ok(
        m.RecordingPage,
        200,
        call(rec, "search_recordings"),
        client=supervisor,
        room="r",
        started_after=started,
        status=m.RecordingStatus.RECORDING,
    )
    (item,) = page.items
    assert item.recording_id == rid and isinstance(item.started_at, datetime) and item.started_at >= started
    assert item.started_at.tzinfo is not None and item.participants[0].joined_at is not None

    # POST with a body and without one, PATCH with a body
    pause = m.PauseRequest(reason="card number")
    state = await ok(
        m.PauseState, 200, call(rec, "pause_recording"), recording_id=rid, client=operator, body=pause
    )
    assert state.paused is True
    await ok(m.PauseState, 200, call(rec, "resume_recording"), recording_id=rid, client=operator)
    patch = m.MetadataPatch.from_dict({"metadata": {"case": "7"}})
    detail = await ok(
        m.RecordingDetail, 200, call(rec, "patch_recording"), recording_id=rid, client=operator, body=patch
    )
    assert detail.metadata.additional_properties["case"] == "7"
    assert isinstance(detail.pauses[0].start_time, datetime)

    # a file of the recording in progress, from the local folder; its links
    links = await ok(m.FileLinks, 200, call(rec, "recording_links"), recording_id=rid, client=supervisor)
    segment = next(f.name for f in links.files if f.name.endswith("000000.webm"))
    data = await ok(
        types.File, 200, call(rec, "recording_file"), recording_id=rid, client=supervisor, name=segment
    )
    assert data.payload.read(4) == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file

    # the recording finishes and is stored (the local copy removed): the same file is a 307 to the store
    await ok(m.RoomOut, 200, call(policy, "stop_room"), room_id="r", client=operator)
    response = await call(rec, "recording_file")(recording_id=rid, client=supervisor, name=segment)
    assert response.status_code == 307 and response.headers["location"], response.content[:300]
    detail = await ok(m.RecordingDetail, 200, call(rec, "get_recording"), recording_id=rid, client=supervisor)
    assert detail.status == m.RecordingStatus.FINISHED and detail.manifest.recording_id == rid
    assert isinstance(detail.finished_at, datetime) and detail.finished_at > detail.started_at
    links = await ok(m.FileLinks, 200, call(rec, "recording_links"), recording_id=rid, client=supervisor)
    assert all(f.presigned and isinstance(f.expires_at, datetime) for f in links.files)
    report = await ok(m.VerifyResult, 200, call(rec, "verify_recording"), recording_id=rid, client=auditor)
    assert report.ok

    # PUT, then the problems a client meets: 409, 404, 422, 403, 401
    hold = m.LegalHold.from_dict({"hold": True, "reason": "case 7"})
    await ok(m.RecordingDetail, 200, call(rec, "set_legal_hold"), recording_id=rid, client=admin, body=hold)
    refused = await ok(m.Problem, 409, call(rec, "delete_recording"), recording_id=rid, client=admin)
    assert "legal hold" in refused.detail
    await ok(m.Problem, 404, call(rec, "get_recording"), recording_id="no-such-recording", client=supervisor)
    invalid = await ok(m.Problem, 422, call(rec, "search_recordings"), client=supervisor, limit=1000)
    assert invalid.invalid_params[0].name == "query.limit"
    await ok(m.Problem, 403, call(keys, "list_keys"), client=supervisor)
    await ok(m.Problem, 401, call(keys, "list_keys"), client=anonymous)
    await ok(m.Problem, 401, call(ops, "status"), client=anonymous)

    # POST creating (201) and DELETE
    request = m.KeyRequest(name="crm", role=m.Role.SUPERVISOR)
    created = await ok(m.NewApiKey, 201, call(keys, "create_key"), client=admin, body=request)
    assert created.key.startswith("cv_") and isinstance(created.created_at, datetime)
    revoked = await ok(m.ApiKeyOut, 200, call(keys, "revoke_key"), key_id=created.key_id, client=admin)
    assert isinstance(revoked.revoked_at, datetime) and revoked.revoked_at >= revoked.created_at

    # text answers and the status page
    metrics = await ok(str, 200, call(ops, "metrics"), client=operator)
    assert "callvault_recording_available_seconds_bucket" in metrics
    export = await ok(str, 200, call(audit, "export_audit"), client=auditor)
    assert json.loads(export.splitlines()[0])["seq"] == 1
    page = await ok(m.AuditPage, 200, call(audit, "read_audit"), client=auditor, action="recording.pause")
    assert page.entries[0].actor == "operator-1"
    status = await ok(m.StatusResponse200, 200, call(ops, "status"), client=operator)
    assert status.active_streams == 0
