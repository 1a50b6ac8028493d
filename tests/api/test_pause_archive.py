"""End to end with real media and a real archive (local store): an operator pauses a call through the API
while the customer reads out a card number (the publisher shows solid red only then); nothing of it is
stored, the pause is recorded with who and why; then a supervisor finds the recording with its manifest
and presigned links, an auditor verifies it, and an admin deletes it only once the legal hold is lifted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlparse

import pytest
from api_kit import Api, ApiFactory
from media import SECRET_NORMAL as NORMAL
from media import SECRET_SECONDS as SECRET
from media import encode_with_secret, first_packet, red_frames, rtp_sender

from recorder.archive import Archive, ArchiveSettings

pytestmark = pytest.mark.slow


async def test_pause_through_the_api_then_find_verify_and_delete(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    reference = await asyncio.to_thread(encode_with_secret, tmp_path)
    data_dir = tmp_path / "data"
    archive = Archive(ArchiveSettings.model_validate({"finish_timeout": 20}), data_dir)
    await archive.start()
    api: Api = await make_api(sinks=[archive])
    try:
        sfu = api.sfu
        assert sfu is not None
        await sfu.publish("pci", "1001", "Customer")
        (rid,) = [r.info.recording_id for r in api.manager.rooms.values()]
        sender = rtp_sender(reference, sfu.port_of("pci", "1001"))
        # the red stretch is timed from the media's first packet, not from ffmpeg's spawn
        first = await first_packet(api.manager.rooms["pci"].session)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(first + NORMAL - 0.25 - loop.time())
        status, state = await api.call(
            "POST", f"/v1/recordings/{rid}/pause", role="operator", json={"reason": "card number"}
        )
        assert status == 200 and state["paused"]
        status, room = await api.call("GET", "/v1/rooms/pci", role="operator")
        assert room["paused"] and room["participants"][0]["paused"]
        await asyncio.sleep(first + NORMAL + SECRET + 0.25 - loop.time())
        status, _ = await api.call("POST", f"/v1/recordings/{rid}/resume", role="operator")
        assert status == 200
        await asyncio.to_thread(sender.wait, 30)
        status, metrics = await api.call("GET", "/metrics", role="operator")
        assert "callvault_active_recordings 1.0" in metrics
        status, _ = await api.call("POST", "/v1/rooms/pci/stop", role="operator")
        assert status == 200

        status, detail = await api.call("GET", f"/v1/recordings/{rid}", role="supervisor")
        assert status == 200 and detail["status"] == "finished"
        (pause,) = detail["pauses"]
        assert (pause["by"], pause["reason"], pause["participant"]) == ("operator-1", "card number", None)
        assert pause["end_time"] > pause["start_time"]
        assert detail["track_list"][0]["packets_paused"] > 0 and detail["bytes"] > 0
        manifest = detail["manifest"]
        assert manifest is not None and manifest["recording_id"] == rid
        assert not (data_dir / "recordings" / rid).exists()  # uploaded, local copy gone: from the store

        status, links = await api.call("GET", f"/v1/recordings/{rid}/links", role="supervisor")
        assert status == 200 and all(f["presigned"] for f in links["files"])
        media = [Path(urlparse(f["url"]).path) for f in links["files"] if f["name"].endswith(".webm")]
        assert len(media) >= 2 and all(red_frames(p) == 0 for p in media)  # the joined file, every segment
        name = next(f["name"] for f in links["files"] if f["name"].endswith(".webm"))
        status, _ = await api.call(
            "GET", f"/v1/recordings/{rid}/file?name={name}", role="supervisor", allow_redirects=False
        )
        assert status == 307

        status, report = await api.call("POST", f"/v1/recordings/{rid}/verify", role="auditor")
        assert status == 200 and report["ok"] and report["objects_checked"] > 2, report

        status, _ = await api.call(
            "PUT", f"/v1/recordings/{rid}/legal-hold", json={"hold": True, "reason": "case 7"}
        )
        assert status == 200
        status, problem = await api.call("DELETE", f"/v1/recordings/{rid}")
        assert status == 409 and "legal hold" in problem["detail"]
        await api.call("PUT", f"/v1/recordings/{rid}/legal-hold", json={"hold": False})
        status, deleted = await api.call("DELETE", f"/v1/recordings/{rid}")
        assert status == 200 and deleted["objects_deleted"] > 2
        assert list(archive.store.list("")) == []
        status, detail = await api.call("GET", f"/v1/recordings/{rid}", role="supervisor")
        assert detail["status"] == "deleted" and detail["deleted_at"] and detail["manifest"] is None
        status, _ = await api.call("GET", f"/v1/recordings/{rid}/links", role="supervisor")
        assert status == 409

        status, metrics = await api.call("GET", "/metrics", role="operator")
        values = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in metrics.splitlines()
            if line and not line.startswith("#")
        }
        assert values["callvault_active_recordings"] == 0 and values["callvault_packets_paused_total"] > 0
        assert values["callvault_bytes_written_total"] > 0 and values["callvault_uploads_total"] > 0
        assert values["callvault_bytes_uploaded_total"] > 0 and values["callvault_webhook_backlog"] == 0
        assert values["callvault_packets_received_total"] > values["callvault_packets_paused_total"]
    finally:
        for room in list(api.manager.rooms):
            await api.manager.finish_room(room)
        await archive.stop()


async def test_retention_refuses_deletion(make_api: ApiFactory) -> None:
    api: Api = await make_api(retention_days=1)
    sfu = api.sfu
    assert sfu is not None
    await sfu.publish("r", "1", "A")
    (info,) = [r.info for r in api.manager.rooms.values()]
    status, problem = await api.call("DELETE", f"/v1/recordings/{info.recording_id}")
    assert status == 409 and "in progress" in problem["detail"]
    await api.call("POST", "/v1/rooms/r/stop", role="operator")
    status, problem = await api.call("DELETE", f"/v1/recordings/{info.recording_id}")
    assert status == 409 and "retention" in problem["detail"]
    assert info.folder.is_dir()
    status, links = await api.call("GET", f"/v1/recordings/{info.recording_id}/links", role="supervisor")
    assert status == 200 and links["files"] and not any(f["presigned"] for f in links["files"])
    summary = next(f for f in links["files"] if f["name"].endswith(".json"))
    status, body = await api.call("GET", summary["url"], role="supervisor")
    assert status == 200 and body["name"] == "1-video-0"
    status, _ = await api.call(
        "GET", f"/v1/recordings/{info.recording_id}/file?name=../../catalog.sqlite3", role="supervisor"
    )
    assert status == 422
