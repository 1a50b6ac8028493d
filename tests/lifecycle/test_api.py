"""The lifecycle through the control API as `callvault serve` mounts it: roles, a rule set by the admin,
the dry run, a pass deleting what is due (tombstone, deleted objects listed), an export by a supervisor
whose evidence bundle verifies offline, and fails naming the file when one byte changes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

sys.path.append(str(Path(__file__).parents[1] / "api"))  # api_kit

from api_kit import ADMIN_KEY, Api, service_settings
from postgres_kit import BACKENDS

from recorder.api.app import ControlApi
from recorder.api.auth import Role
from recorder.api.site import HttpSite
from recorder.lifecycle.bundle_verify import run as verify_cli
from recorder.lifecycle.bundle_verify import verify_bundle
from recorder.lifecycle.settings import LifecycleSettings
from recorder.manifest.build import build_manifest, write_signed_manifest
from recorder.manifest.signing import public_key_pem
from recorder.service.app import build_app
from recorder.service.manager import RecordingManager

A, OP, S, U = "admin", "operator", "supervisor", "auditor"
STARTED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
DAY = 86400.0

pytestmark = BACKENDS  # the catalog in SQLite and in PostgreSQL


@pytest.fixture
async def api(tmp_path: Path, catalog_url: str | None) -> AsyncIterator[Api]:
    settings = service_settings(tmp_path, **({"catalog_url": catalog_url} if catalog_url else {}))
    settings.lifecycle = LifecycleSettings(interval_seconds=3600)
    settings.data_dir.mkdir(parents=True)
    manager = RecordingManager(settings)
    app = build_app(manager, [], {})
    control = await ControlApi.open(settings, manager)
    manager.sinks.insert(0, control.sink)
    control.mount(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = HttpSite(runner, "127.0.0.1", 0, settings.api)
    await site.start()
    made = Api(f"http://127.0.0.1:{site.port}", aiohttp.ClientSession(), control, manager, None, site)
    made.keys[A] = ADMIN_KEY
    for role in (Role.OPERATOR, Role.SUPERVISOR, Role.AUDITOR):
        status, body = await made.call("POST", "/v1/keys", json={"name": f"{role.value}-1", "role": role})
        assert status == 201
        made.keys[role.value] = body["key"]
    yield made
    await made.http.close()
    await manager.shutdown()
    await runner.cleanup()
    await control.close()


def add_recording(api: Api, rid: str, room: str) -> Path:
    """(blocking) A finished recording in the catalog with its local folder and a real signed manifest."""
    folder = api.manager.recordings_dir / rid
    folder.mkdir(parents=True)
    (folder / "1001-video-0.webm").write_bytes(bytes(range(256)) * 40)
    (folder / "1002-audio-1.webm").write_bytes(b"opus" * 300)
    lifecycle = api.api.lifecycle
    assert lifecycle is not None
    started = datetime.fromtimestamp(STARTED, UTC)
    manifest = build_manifest(folder, rid, tracks=[], created_at=started, finished_at=started, room_id=room)
    write_signed_manifest(folder, manifest, lifecycle._key())
    db = api.api.ctx.db
    db.submit(
        lambda: db.connection.execute(
            "INSERT INTO recordings (recording_id, room_id, folder, status, started_at, finished_at,"
            " duration, updated_at) VALUES (?, ?, ?, 'finished', ?, ?, 60, ?)",
            (rid, room, str(folder), STARTED, STARTED + 60, STARTED + 60),
        )
    ).result()
    return folder


async def test_rules_dry_run_and_deletion_by_role(api: Api) -> None:
    folder = add_recording(api, "rec-due", "billing")
    add_recording(api, "rec-kept", "sales")
    lifecycle = api.api.lifecycle
    assert lifecycle is not None
    clock = {"now": STARTED + 10 * DAY}  # the scheduler's days pass under a fake clock
    lifecycle.deletion.clock = lambda: clock["now"]
    rule = {"rooms": ["billing"], "keep_days": {"originals": 30}}
    for role in (OP, S, U):
        status, _ = await api.call("PUT", "/v1/lifecycle/rules/billing-30", role=role, json=rule)
        assert status == 403
    status, rules = await api.call("PUT", "/v1/lifecycle/rules/billing-30", json=rule)
    assert status == 200 and [r["rule_id"] for r in rules["rules"]] == ["billing-30"]
    status, problem = await api.call("PUT", "/v1/lifecycle/rules/bad", json={"keep_days": {"originals": -1}})
    assert status == 422 and problem["detail"].startswith("body.keep_days.originals")

    status, _ = await api.call("GET", "/v1/lifecycle/due", role=S)
    assert status == 403
    status, page = await api.call("GET", "/v1/lifecycle/due?until=2026-04-02T00:00:00Z", role=U)
    assert status == 200 and [i["recording_id"] for i in page["items"]] == ["rec-due"]
    assert page["items"][0]["kinds"] == [
        {"kind": "originals", "delete_after": "2026-04-01T10:01:00Z", "rule": "billing-30"}
    ]
    status, plan = await api.call("GET", "/v1/recordings/rec-due/lifecycle", role=S)
    assert status == 200 and plan["delete_after"] == "2026-04-01T10:01:00Z", plan
    assert {o["name"]: o["delete_after"] for o in plan["objects"]}[
        "1001-video-0.webm"
    ] == "2026-04-01T10:01:00Z"
    assert (folder / "1001-video-0.webm").exists()  # the dry run deleted nothing

    status, _ = await api.call("POST", "/v1/lifecycle/run", role=OP)
    assert status == 403
    status, done = await api.call("POST", "/v1/lifecycle/run")
    assert status == 200 and done["deleted"] == [] and folder.exists()  # not due yet
    clock["now"] = STARTED + 31 * DAY
    status, done = await api.call("POST", "/v1/lifecycle/run")
    assert status == 200 and done["deleted"] == ["rec-due"] and done["objects_deleted"] == 4
    assert not folder.exists()
    status, plan = await api.call("GET", "/v1/recordings/rec-due/lifecycle", role=U)
    assert plan["status"] == "deleted" and plan["deleted_by"] == "retention:billing-30"
    assert sorted(o["name"] for o in plan["objects"] if o["deleted_at"]) == [
        "1001-video-0.webm",
        "1002-audio-1.webm",
        "manifest.json",
        "manifest.json.sig",
    ]
    status, kept = await api.call("GET", "/v1/recordings/rec-kept/lifecycle", role=S)
    assert kept["status"] == "finished" and kept["delete_after"] is None  # no rule: kept forever
    status, audit = await api.call("GET", "/v1/audit?action=recording.retention_delete", role=U)
    assert [(e["actor"], e["target"]) for e in audit["entries"]] == [("system", "rec-due")]

    status, _ = await api.call("DELETE", "/v1/lifecycle/rules/billing-30")
    assert status == 200
    status, _ = await api.call("DELETE", "/v1/lifecycle/rules/billing-30")
    assert status == 404


async def test_export_bundle_verifies_offline_and_names_a_changed_byte(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_recording(api, "rec-x", "quality")
    add_recording(api, "rec-y", "other")
    request = {"filter": {"room": "quality"}, "include": ["originals", "manifests", "audit"]}
    status, _ = await api.call("POST", "/v1/exports", role=OP, json=request)
    assert status == 403
    status, job = await api.call("POST", "/v1/exports", role=S, json=request)
    assert status == 202 and job["total"] == 1
    lifecycle = api.api.lifecycle
    assert lifecycle is not None
    await lifecycle.exports.wait(job["job_id"])
    status, job = await api.call("GET", f"/v1/exports/{job['job_id']}", role=U)
    assert status == 200 and job["state"] == "finished" and job["index_sha256"]
    (bundle,) = job["bundles"]
    async with api.http.get(api.base + bundle["location"], headers=api.auth(U)) as r:
        assert r.status == 200
        data = await r.read()
    path = tmp_path / "rec-x.zip"
    path.write_bytes(data)
    key = lifecycle._key().public_key()

    report = verify_bundle(path, key)
    assert report.ok, report.problems
    assert report.recording_id == "rec-x" and report.key_pinned
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        audit = zf.read("audit.jsonl").decode()
    assert {"README.txt", "public-key.pem", "bundle.json", "bundle.json.sig", "audit.jsonl"} <= names
    assert {"recording/manifest.json", "recording/1001-video-0.webm"} <= names
    assert '"export.create"' not in audit  # entries about the recording, not about the job
    assert verify_cli(path, key) == 0 and "OK: bundle rec-x.zip" in capsys.readouterr().out

    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("recording/1001-video-0.webm")
    flipped = bytearray(data)
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 1000
    flipped[at] ^= 0x01
    bad = tmp_path / "rec-x-changed.zip"
    bad.write_bytes(bytes(flipped))
    report = verify_bundle(bad, key)
    assert not report.ok
    assert any(p.startswith("changed: recording/1001-video-0.webm") for p in report.problems), report.problems
    assert verify_cli(bad, key) == 1 and "recording/1001-video-0.webm" in capsys.readouterr().out

    pem = tmp_path / "sender.pem"
    pem.write_bytes(public_key_pem(key))
    for target, code in ((path, 0), (bad, 1)):  # the recipient's command, in a process of its own
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "recorder.cli", "verify", str(target), "--public-key", str(pem)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == code, done.stdout + done.stderr

    status, _ = await api.call("GET", f"/v1/exports/{job['job_id']}/bundles/rec-y", role=S)
    assert status == 404
