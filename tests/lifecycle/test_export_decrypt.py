"""Exports handing over decrypted originals: a real recording (VP8 over RTP) encrypted at rest with the real
`age` tools' keys, exported through the API with `decrypt` by an auditor while the service holds a playback
identity. The bundle's media are the plaintext (byte-equal to `age -d` of the stored ciphertext), its index
says so and lists both hashes of each, it verifies offline (also in a process of its own), a changed byte
of a decrypted file is named; supervisors may not ask for it, a service without a playback identity
refuses it, and each decrypting export is audited per recording."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from age_kit import age_decrypt, keygen
from media import encode_reference, rtp_sender

sys.path.append(str(Path(__file__).parents[1] / "api"))  # api_kit

from api_kit import Api, served_api, service_settings

from recorder.api.auth import Role
from recorder.archive import Archive, ArchiveSettings
from recorder.lifecycle.bundle_verify import verify_bundle
from recorder.lifecycle.settings import LifecycleSettings
from recorder.manifest.signing import public_key_pem

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is installed by make")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Api, Archive, str]]:
    """The API with the lifecycle and an archive encrypting to a fresh age key (also the playback
    identity), and one finished encrypted recording of a 2-second VP8 call."""
    recipient = await asyncio.to_thread(keygen, tmp_path / "key.txt")
    reference = await asyncio.to_thread(encode_reference, "vp8", tmp_path, 2.0)
    settings = service_settings(tmp_path)
    settings.lifecycle = LifecycleSettings(interval_seconds=3600)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    archive = Archive(
        ArchiveSettings.model_validate(
            {
                "finish_timeout": 20,
                "encryption": {
                    "recipients": [recipient],
                    "playback_identity_file": str(tmp_path / "key.txt"),
                },
            }
        ),
        settings.data_dir,
    )
    await archive.start()
    try:
        roles = (Role.SUPERVISOR, Role.AUDITOR, Role.OPERATOR)
        async with served_api(settings, [archive], roles=roles) as api:
            assert api.sfu is not None
            await api.sfu.publish("room-d", "2001", "Customer")
            (rid,) = [r.info.recording_id for r in api.manager.rooms.values()]
            sender = rtp_sender(reference, api.sfu.port_of("room-d", "2001"))
            await asyncio.to_thread(sender.wait, 30)
            status, _ = await api.call("POST", "/v1/rooms/room-d/stop", role="operator")
            assert status == 200
            yield api, archive, rid
    finally:
        await archive.stop()


async def _export(api: Api, role: str, rid: str, decrypt: bool) -> tuple[int, dict[str, object]]:
    request = {
        "filter": {"room": "room-d"},
        "include": ["originals", "manifests", "audit"],
        "decrypt": decrypt,
    }
    return await api.call("POST", "/v1/exports", role=role, json=request)


async def test_decrypted_export_verifies_and_names_a_changed_byte(
    served: tuple[Api, Archive, str], tmp_path: Path
) -> None:
    api, _, rid = served
    status, detail = await api.call("GET", f"/v1/recordings/{rid}", role="supervisor")
    sealed = {o["name"]: o for o in detail["manifest"]["objects"] if o["encryption"] == "age"}
    tracks = [n for n in sealed if n.endswith(".webm") and "/" not in n]
    assert tracks, sealed

    status, refused = await _export(api, "supervisor", rid, decrypt=True)
    assert status == 403 and "decrypted" in refused["detail"], refused
    status, job = await _export(api, "auditor", rid, decrypt=True)
    assert status == 202 and job["total"] == 1, job
    lifecycle = api.api.lifecycle
    assert lifecycle is not None
    await lifecycle.exports.wait(job["job_id"])
    status, job = await api.call("GET", f"/v1/exports/{job['job_id']}", role="auditor")
    assert job["state"] == "finished", job
    (bundle,) = job["bundles"]
    async with api.http.get(api.base + bundle["location"], headers=api.auth("auditor")) as r:
        assert r.status == 200
        data = await r.read()
    path = tmp_path / "bundle.zip"
    path.write_bytes(data)

    key = lifecycle._key().public_key()
    report = verify_bundle(path, key)
    assert report.ok, report.problems
    access = api.api.ctx.storage()
    assert access is not None
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        index = json.loads(zf.read("bundle.json"))
        readme = zf.read("README.txt").decode()
        plain = {n: zf.read(f"recording/{n}") for n in sealed}
    assert not any(n.endswith(".age") for n in names), names  # plaintext only
    assert index["decrypted"] is True and "DECRYPTED copies" in readme
    listed = {d["name"]: d for d in index["decrypted_files"]}
    assert set(listed) == {f"recording/{n}" for n in sealed}
    for name, obj in sealed.items():
        d = listed[f"recording/{name}"]
        assert (d["ciphertext_name"], d["ciphertext_sha256"], d["ciphertext_size"]) == (
            name + ".age", obj["sha256"], obj["size"],
        )  # fmt: skip
        assert hashlib.sha256(plain[name]).hexdigest() == d["plaintext_sha256"] == obj["plaintext_sha256"]
        cipher = await asyncio.to_thread(access.store.get_bytes, obj["key"])
        assert hashlib.sha256(cipher).hexdigest() == obj["sha256"]
        assert await asyncio.to_thread(age_decrypt, tmp_path / "key.txt", cipher) == plain[name]

    # the recipient's own check, in a process of its own with the sender's key
    pem = tmp_path / "sender.pem"
    pem.write_bytes(public_key_pem(key))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "recorder.cli", "verify", str(path), "--public-key", str(pem)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    # one byte of a decrypted track changed: named
    track = tracks[0]
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"recording/{track}")
    flipped = bytearray(data)
    flipped[info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 500] ^= 0x01
    bad = tmp_path / "changed.zip"
    bad.write_bytes(bytes(flipped))
    report = verify_bundle(bad, key)
    assert any(p.startswith(f"changed: recording/{track}") for p in report.problems), report.problems

    # audited: the request (who asked for plaintext) and each recording handed over decrypted
    status, page = await api.call("GET", "/v1/audit?action=export.create&limit=100", role="auditor")
    asked = [(e["actor"], e["outcome"], e["detail"].get("decrypt")) for e in page["entries"]]
    assert asked == [("supervisor-1", "denied", True), ("auditor-1", "ok", True)]
    status, page = await api.call("GET", "/v1/audit?action=export.decrypted&limit=100", role="auditor")
    (entry,) = page["entries"]
    assert entry["target"] == rid and entry["detail"]["files"] == len(sealed)


async def test_plain_export_keeps_ciphertext_and_no_identity_refuses_decrypt(
    served: tuple[Api, Archive, str], tmp_path: Path
) -> None:
    api, archive, rid = served
    status, job = await _export(api, "supervisor", rid, decrypt=False)  # as before: what is stored
    assert status == 202
    lifecycle = api.api.lifecycle
    assert lifecycle is not None
    await lifecycle.exports.wait(job["job_id"])
    path = lifecycle.exports.bundle_path(job["job_id"], rid)
    assert path is not None
    with zipfile.ZipFile(path) as zf:
        index = json.loads(zf.read("bundle.json"))
        assert any(n.endswith(".webm.age") for n in zf.namelist())
    assert index["decrypted"] is False and index["decrypted_files"] == []
    assert verify_bundle(path, lifecycle._key().public_key()).ok

    archive._playback = (None,)  # the same service without a playback identity
    status, refused = await _export(api, "admin", rid, decrypt=True)
    assert status == 409 and "playback identity" in refused["detail"], refused
