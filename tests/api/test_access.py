"""Access control: the whole endpoint-by-role matrix (401 without a key, 403 with the wrong role, through
with the right one), hashed keys, revocation, and denials in the audit log."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from api_kit import ADMIN_KEY, Api, ApiFactory

A, OP, S, U = "admin", "operator", "supervisor", "auditor"
IN, INGEST, POST = "ingest", "/v1/ingest/rooms/{room_id}", "POST"
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/v1/recordings"): {A, S},
    ("GET", "/v1/recordings/{recording_id}"): {A, S},
    ("PATCH", "/v1/recordings/{recording_id}"): {A, OP},
    ("PATCH", "/v1/recordings/{recording_id}/participants/{participant_id}"): {A, OP},
    ("POST", "/v1/recordings/{recording_id}/pause"): {A, OP},
    ("POST", "/v1/recordings/{recording_id}/resume"): {A, OP},
    ("POST", "/v1/recordings/{recording_id}/participants/{participant_id}/pause"): {A, OP},
    ("POST", "/v1/recordings/{recording_id}/participants/{participant_id}/resume"): {A, OP},
    ("GET", "/v1/recordings/{recording_id}/links"): {A, S},
    ("GET", "/v1/recordings/{recording_id}/file"): {A, S},
    ("POST", "/v1/recordings/{recording_id}/verify"): {A, S, U},
    ("GET", "/v1/recordings/{recording_id}/audit"): {A, S, U},
    ("GET", "/v1/recordings/{recording_id}/report"): {A, S, U},
    ("GET", "/v1/recordings/{recording_id}/transcript"): {A, S},
    ("POST", "/v1/recordings/{recording_id}/redactions"): {A},
    ("PUT", "/v1/recordings/{recording_id}/legal-hold"): {A},
    ("DELETE", "/v1/recordings/{recording_id}"): {A},
    ("GET", "/v1/policy"): {A, OP},
    ("PUT", "/v1/policy"): {A, OP},
    ("GET", "/v1/rooms"): {A, OP, S},
    ("GET", "/v1/rooms/{room_id}"): {A, OP, S},
    ("PUT", "/v1/rooms/{room_id}/policy"): {A, OP},
    ("POST", "/v1/rooms/{room_id}/start"): {A, OP},
    ("POST", "/v1/rooms/{room_id}/stop"): {A, OP},
    ("GET", "/v1/keys"): {A},
    ("POST", "/v1/keys"): {A},
    ("DELETE", "/v1/keys/{key_id}"): {A},
    ("GET", "/v1/audit"): {A, U},
    ("GET", "/v1/audit/export"): {A, U},
    ("GET", "/v1/audit/verify"): {A, U},
    ("GET", "/v1/recorders"): {A, U},
    ("GET", "/v1/signing-key"): {A, OP, S, U},
    ("GET", "/metrics"): {A, OP},
    ("GET", "/v1/lifecycle/rules"): {A, U},
    ("PUT", "/v1/lifecycle/rules/{rule_id}"): {A},
    ("DELETE", "/v1/lifecycle/rules/{rule_id}"): {A},
    ("GET", "/v1/recordings/{recording_id}/lifecycle"): {A, S, U},
    ("GET", "/v1/lifecycle/due"): {A, U},
    ("POST", "/v1/lifecycle/run"): {A},
    ("POST", "/v1/exports"): {A, S, U},
    ("GET", "/v1/exports"): {A, S, U},
    ("GET", "/v1/exports/{job_id}"): {A, S, U},
    ("GET", "/v1/exports/{job_id}/bundles/{recording_id}"): {A, S, U},
    ("POST", "/v1/export-schedules"): {A},
    ("GET", "/v1/export-schedules"): {A},
    ("DELETE", "/v1/export-schedules/{schedule_id}"): {A},
    (POST, f"{INGEST}/participants/{{participant_id}}/streams"): {A, OP, IN},
    ("DELETE", f"{INGEST}/participants/{{participant_id}}/streams/{{mid}}"): {A, OP, IN},
    (POST, f"{INGEST}/participants/{{participant_id}}/streams/{{mid}}/pause"): {A, OP, IN},
    (POST, f"{INGEST}/participants/{{participant_id}}/streams/{{mid}}/resume"): {A, OP, IN},
    ("PUT", f"{INGEST}/lease"): {A, OP, IN},
    ("DELETE", INGEST): {A, OP, IN},
    ("GET", "/v1/status"): {A, OP},
}


def concrete(path: str) -> str:
    return path.replace("{recording_id}", "rec-1").replace("{participant_id}", "p1").replace(
        "{room_id}", "room-1"
    ).replace("{key_id}", "nokey").replace("{job_id}", "exp-1").replace("{rule_id}", "rule-1").replace(
        "{schedule_id}", "sch-1"
    ).replace("{mid}", "0") + ("?name=video.webm" if path.endswith("/file") else "")


async def test_every_endpoint_by_every_role(make_api: ApiFactory) -> None:
    api: Api = await make_api(status_requires_key=True)
    registered = {(r.method, r.path) for r in api.api.registry.routes} | {("GET", "/v1/status")}
    assert registered == set(MATRIX), "the matrix must list every endpoint"
    for route in api.api.registry.routes:
        assert {r.value for r in route.roles} == MATRIX[(route.method, route.path)], route.path
    for (method, path), allowed in sorted(MATRIX.items()):
        url = concrete(path)
        status, body = await api.call(method, url, role=None, json={})
        assert status == 401, (method, path, status)
        assert body["status"] == 401 and body["type"].endswith("/unauthorized")
        status, _ = await api.call(
            method, url, role=None, json={}, headers={"Authorization": "Bearer cv_x_y"}
        )
        assert status == 401
        for role in (A, OP, S, U):
            status, body = await api.call(method, url, role=role, json={})
            if role in allowed:
                assert status not in (401, 403), (method, path, role, status, body)
            else:
                assert status == 403, (method, path, role, status)
                assert role in body["detail"]
    # Denials are audited (who, what, from where); anonymous calls cannot be attributed and are not.
    status, page = await api.call("GET", "/v1/audit?action=recording.delete&limit=1000", role=U)
    assert status == 200
    outcomes = {(e["actor"], e["outcome"]) for e in page["entries"]}
    assert ("operator-1", "denied") in outcomes and all(e["remote"] == "127.0.0.1" for e in page["entries"])


async def test_keys_are_stored_hashed_and_can_be_revoked(make_api: ApiFactory) -> None:
    api: Api = await make_api()
    status, created = await api.call("POST", "/v1/keys", json={"name": "night shift", "role": "supervisor"})
    assert status == 201 and created["key"].startswith(f"cv_{created['key_id']}_")
    key = created["key"]
    db = sqlite3.connect(api.api.ctx.db.path)
    rows = db.execute("SELECT * FROM api_keys").fetchall()
    db.close()
    dump = repr(rows)
    assert key not in dump and hashlib.sha256(key.encode()).hexdigest() in dump
    assert ADMIN_KEY not in dump  # the bootstrap key is never written anywhere
    headers = {"Authorization": f"Bearer {key}"}
    status, _ = await api.call("GET", "/v1/recordings", role=None, headers=headers)
    assert status == 200
    status, _ = await api.call("GET", "/v1/recordings", role=None, headers={"X-API-Key": key})
    assert status == 200
    status, listed = await api.call("GET", "/v1/keys")
    assert status == 200 and all("key" not in k and "sha256" not in k for k in listed["keys"])
    status, revoked = await api.call("DELETE", f"/v1/keys/{created['key_id']}")
    assert status == 200 and revoked["revoked_at"] is not None
    status, _ = await api.call("GET", "/v1/recordings", role=None, headers=headers)
    assert status == 401
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    await api.call("POST", "/v1/keys", json={"name": "other", "role": "supervisor"})
    status, _ = await api.call("GET", "/v1/recordings", role=None, headers={"X-API-Key": tampered})
    assert status == 401


@pytest.mark.parametrize("open_metrics", [False, True])
async def test_metrics_key_setting(make_api: ApiFactory, open_metrics: bool) -> None:
    api: Api = await make_api(metrics_require_key=not open_metrics)
    status, text = await api.call("GET", "/metrics", role=None)
    assert status == (200 if open_metrics else 401)
    status, text = await api.call("GET", "/metrics", role=OP)
    assert status == 200 and "callvault_active_recordings 0.0" in text


async def test_status_page_needs_a_key(api: Api) -> None:
    status, _ = await api.call("GET", "/v1/status", role=None)
    assert status == 401
    status, body = await api.call("GET", "/v1/status", role="operator")
    assert status == 200 and body["rooms"] == {}


async def test_status_page_can_be_opened(make_api: ApiFactory) -> None:
    api: Api = await make_api(status_requires_key=False)
    status, body = await api.call("GET", "/v1/status", role=None)
    assert status == 200 and body["rooms"] == {}
