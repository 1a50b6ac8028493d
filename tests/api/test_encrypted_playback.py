"""Encrypted recordings through the API: with a playback identity, a supervisor's download is the plaintext
decrypted on the fly (ranges for seeking, audited as decrypted); without one, the API hands out the stored
ciphertext and says so. Real media, a real archive with the local store, the real `age` tool."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from age_kit import keygen
from api_kit import Api, ApiFactory
from media import encode_reference, rtp_sender

from recorder.archive import Archive, ArchiveSettings

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is installed by make")


async def test_supervisor_plays_decrypted_ranges_and_without_identity_gets_ciphertext(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    recipient = await asyncio.to_thread(keygen, tmp_path / "key.txt")
    reference = await asyncio.to_thread(encode_reference, "vp8", tmp_path, 3.0)
    data_dir = tmp_path / "data"
    settings = ArchiveSettings.model_validate(
        {
            "finish_timeout": 20,
            "encryption": {"recipients": [recipient], "playback_identity_file": str(tmp_path / "key.txt")},
        }
    )
    archive = Archive(settings, data_dir)
    await archive.start()
    api: Api = await make_api(sinks=[archive])
    try:
        assert api.sfu is not None
        await api.sfu.publish("room-e", "2001", "Customer")
        (rid,) = [r.info.recording_id for r in api.manager.rooms.values()]
        sender = rtp_sender(reference, api.sfu.port_of("room-e", "2001"))
        await asyncio.to_thread(sender.wait, 30)
        status, _ = await api.call("POST", "/v1/rooms/room-e/stop", role="operator")
        assert status == 200
        assert not await asyncio.to_thread((data_dir / "recordings" / rid).exists)  # no plaintext left

        status, detail = await api.call("GET", f"/v1/recordings/{rid}", role="supervisor")
        assert status == 200 and detail["manifest"]["encryption"]["recipients"] == [recipient]
        track = next(
            o for o in detail["manifest"]["objects"] if o["name"].endswith(".webm") and "/" not in o["name"]
        )
        assert track["encryption"] == "age"

        status, links = await api.call("GET", f"/v1/recordings/{rid}/links", role="supervisor")
        assert status == 200
        (link,) = [f for f in links["files"] if f["name"] == track["name"]]
        assert (
            not link["presigned"] and link["encryption"] is None and link["size"] == track["plaintext_size"]
        )

        url = f"{api.base}/v1/recordings/{rid}/file?name={track['name']}"
        async with api.http.get(url, headers=api.auth("supervisor")) as r:
            assert r.status == 200 and r.headers["X-CallVault-Decrypted"] == "age"
            assert r.content_type == "video/webm"
            whole = await r.read()
        assert hashlib.sha256(whole).hexdigest() == track["plaintext_sha256"]
        for header, part in (("bytes=100-70099", whole[100:70100]), ("bytes=-500", whole[-500:])):
            async with api.http.get(url, headers={**api.auth("supervisor"), "Range": header}) as r:
                assert r.status == 206, header
                assert r.headers["Content-Range"].endswith(f"/{len(whole)}")
                assert await r.read() == part
        async with api.http.get(
            url, headers={**api.auth("supervisor"), "Range": f"bytes={len(whole)}-"}
        ) as r:
            assert r.status == 416
        status, _ = await api.call("GET", f"/v1/recordings/{rid}/file?name={track['name']}", role="operator")
        assert status == 403

        status, page = await api.call("GET", "/v1/audit?action=recording.download&limit=1000", role="auditor")
        decrypted = [e for e in page["entries"] if e["detail"].get("decrypted")]
        assert len(decrypted) == 4 and all(e["actor"] == "supervisor-1" for e in decrypted)  # 416 too

        archive._playback = (None,)  # the same service without a playback identity
        status, links = await api.call("GET", f"/v1/recordings/{rid}/links", role="supervisor")
        (link,) = [f for f in links["files"] if f["name"] == track["name"] + ".age"]
        assert link["presigned"] and link["encryption"] == "age"
        async with api.http.get(url, headers=api.auth("supervisor"), allow_redirects=False) as r:
            assert r.status == 307 and r.headers["X-CallVault-Encryption"] == "age"
            location = r.headers["Location"]
        cipher = await asyncio.to_thread(Path(location.removeprefix("file://")).read_bytes)
        clear = await asyncio.to_thread(
            subprocess.run,
            ["age", "-d", "-i", str(tmp_path / "key.txt")],
            input=cipher,
            capture_output=True,
            check=True,
        )
        assert clear.stdout == whole
    finally:
        await archive.stop()


async def test_room_policy_names_its_own_recipients_and_refuses_bad_ones(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    room_key = await asyncio.to_thread(keygen, tmp_path / "room.txt")
    escrow = await asyncio.to_thread(keygen, tmp_path / "escrow.txt")
    reference = await asyncio.to_thread(encode_reference, "vp8", tmp_path, 1.0)
    settings = ArchiveSettings.model_validate({"finish_timeout": 20, "encryption": {"escrow": [escrow]}})
    archive = Archive(settings, tmp_path / "data")
    await archive.start()
    api: Api = await make_api(sinks=[archive])
    try:
        status, problem = await api.call(
            "PUT", "/v1/rooms/tenant-a/policy", json={"record": True, "encryption_recipients": ["age1nope"]}
        )
        assert status == 422 and "encryption_recipients" in problem["detail"], problem
        assert "not a valid age recipient" in problem["detail"]
        status, _ = await api.call(
            "PUT", "/v1/rooms/tenant-a/policy", json={"record": True, "encryption_recipients": [room_key]}
        )
        assert status == 200
        for room in ("tenant-a", "tenant-b"):  # tenant-b follows the service: no recipients, unencrypted
            assert api.sfu is not None
            await api.sfu.publish(room, "3001", "Agent")
            sender = rtp_sender(reference, api.sfu.port_of(room, "3001"))
            await asyncio.to_thread(sender.wait, 30)
            status, _ = await api.call("POST", f"/v1/rooms/{room}/stop", role="operator")
            assert status == 200
        status, page = await api.call("GET", "/v1/recordings", role="supervisor")
        by_room = {r["room_id"]: r["recording_id"] for r in page["items"]}
        status, a = await api.call("GET", f"/v1/recordings/{by_room['tenant-a']}", role="supervisor")
        assert a["manifest"]["encryption"]["recipients"] == [room_key, escrow]
        assert all(o["encryption"] == "age" for o in a["manifest"]["objects"])
        status, b = await api.call("GET", f"/v1/recordings/{by_room['tenant-b']}", role="supervisor")
        assert b["manifest"]["encryption"] is None
        assert all(o["encryption"] is None for o in b["manifest"]["objects"])
    finally:
        await archive.stop()
