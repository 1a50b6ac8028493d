"""`transcripts.keep_original = false` (the PCI answer) on a real S3 server (moto_server, reached through a
relay that can be cut): a call whose customer reads a card number is recorded by `serve`, transcribed and
redacted, and then the unredacted originals are gone from the store and the local folder, the manifest's
revision lists each one removed and why (`callvault verify` of the stored recording passes), the API
serves only the redacted media and the audit log and recording.deleted say what went.

Then, with the store cut, an admin's manual redaction is tried again with a growing delay (audited as
`retry`) and finishes once the store is back, without a restart; and with the recording's local folder
gone, another manual redaction is made from what the store holds (the latest redacted copy)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from s3_fixture import MotoServer
from speech import AGENT_SAYS, CUSTOMER_SAYS, speak
from store_kit import on_s3, relay_to, stored, verify_cli
from transcript_service_kit import ADMIN_KEY, ROOM, Service, running, settings_for, webhook_receiver

from recorder.manifest import MANIFEST_NAME, Manifest
from recorder.webhooks import RedactionFinished
from recorder.webhooks.events import RecordingDeleted

pytest.importorskip("faster_whisper")


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    work = tmp_path_factory.mktemp("voices")
    return [("alice", speak(work, "alice", AGENT_SAYS)), ("bob", speak(work, "bob", CUSTOMER_SAYS))]


async def _until(check: Any, within: float = 120, step: float = 0.1) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "not within the time limit"
        await asyncio.sleep(step)


async def _audit(service: Service, rid: str) -> list[dict[str, Any]]:
    status, page = await service.call("GET", f"/v1/audit?target={rid}&limit=1000")
    assert status == 200, page
    return list(page["entries"])


async def _get(service: Service, path: str) -> int:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with service.http.get(service.base + path, headers=headers) as r:
        await r.read()
        return r.status


async def test_keep_original_false_deletes_the_originals_everywhere(
    tmp_path: Path, voices: list[tuple[str, Path]], moto_server: MotoServer
) -> None:
    relay = await relay_to(moto_server)
    async with webhook_receiver() as receiver:
        base = settings_for(tmp_path, receiver, keep_original=False, retry_initial=0.2, retry_max=1.0)
        settings = on_s3(base, relay.endpoint, delete_local_after_upload=False)
        async with running(settings) as service:
            status, _ = await service.call(
                "PUT", f"/v1/rooms/{ROOM}/policy", {"transcribe": True, "redact": True}
            )
            assert status == 200
            rid = await service.speak_into(voices)
            first = (await receiver.wait_for(rid, "redaction.finished", 240)).event.data
            assert isinstance(first, RedactionFinished) and not first.original_kept
            deleted = (await receiver.wait_for(rid, "recording.deleted", 30)).event.data
            assert isinstance(deleted, RecordingDeleted) and not deleted.whole
            assert deleted.rules == ["transcripts.keep_original"]
            copy = next(o for o in first.objects if o.name == "redacted-1/bob-audio-1.webm")
            prefix = copy.key[: -len(copy.name)]

            # the store: originals (tracks and their segments) gone, the redacted copy there, all verifies
            names = stored(moto_server, prefix)
            assert {
                "redacted-1/bob-audio-1.webm",
                "redacted-1/alice-audio-1.webm",
                "transcript.json",
            } <= names
            originals = {"bob-audio-1.webm", "alice-audio-1.webm"}
            assert not originals & names
            segments = ("bob-audio-1.segments/", "alice-audio-1.segments/")
            assert any(n.startswith(segments) for n in deleted.objects)  # the tracks' segments went too
            assert not any(n.startswith(segments) for n in names)
            assert originals <= set(deleted.objects)
            manifest = Manifest.model_validate_json(
                moto_server.client().get_object("plain", prefix + MANIFEST_NAME).read()
            )
            removed = {r.name: r for r in manifest.removed}
            assert originals <= set(removed) and "keep_original" in removed["bob-audio-1.webm"].reason
            assert await verify_cli(settings, relay.endpoint, prefix, tmp_path) == 0
            folder = settings.data_dir / "recordings" / rid
            assert (
                not (folder / "bob-audio-1.webm").exists()
                and (folder / "redacted-1" / "bob-audio-1.webm").is_file()
            )

            # the API: only the redacted media
            status, links = await service.call("GET", f"/v1/recordings/{rid}/links")
            assert status == 200
            listed = {f["name"] for f in links["files"]}
            assert "redacted-1/bob-audio-1.webm" in listed and not originals & listed
            assert await _get(service, f"/v1/recordings/{rid}/file?name=bob-audio-1.webm") == 404
            assert await _get(service, f"/v1/recordings/{rid}/file?name=redacted-1/bob-audio-1.webm") == 200
            entries = await _audit(service, rid)
            (gone,) = [e for e in entries if e["action"] == "recording.originals_delete"]
            assert gone["outcome"] == "ok" and "bob-audio-1.webm" in gone["detail"]["names"]

            # the store goes away: a manual redaction is tried again until it is back
            await relay.cut()
            status, accepted = await service.call(
                "POST",
                f"/v1/recordings/{rid}/redactions",
                {"start": 0.5, "end": 1.5, "reason": "agent's name"},
            )
            assert status == 202, accepted

            async def retried() -> bool:
                return any(
                    e["action"] == "recording.redaction" and e["outcome"] == "retry"
                    for e in await _audit(service, rid)
                )

            await _until(retried, 120)
            await relay.restore()

            async def finished(n: int) -> bool:
                return len([r for r in receiver.of(rid) if r.event.type.value == "redaction.finished"]) >= n

            await _until(lambda: finished(2), 120)
            names = stored(moto_server, prefix)
            assert "redacted-2/bob-audio-1.webm" in names and "redacted-1/bob-audio-1.webm" not in names
            assert await verify_cli(settings, relay.endpoint, prefix, tmp_path) == 0

            # the local folder gone: the next manual redaction works from the store's latest copy
            await asyncio.to_thread(shutil.rmtree, folder)
            status, accepted = await service.call(
                "POST", f"/v1/recordings/{rid}/redactions", {"start": 2.0, "end": 2.5, "reason": "name again"}
            )
            assert status == 202, accepted
            await _until(lambda: finished(3), 120)
            names = stored(moto_server, prefix)
            assert "redacted-3/bob-audio-1.webm" in names and "redacted-2/bob-audio-1.webm" not in names
            assert await verify_cli(settings, relay.endpoint, prefix, tmp_path) == 0
        kinds = [r.event.type.value for r in receiver.of(rid)]
    assert kinds.count("redaction.finished") == 3 and kinds.count("recording.deleted") == 3
    assert "redaction.failed" not in kinds
