"""A transcript or redaction job that fails is announced: transcript.failed and redaction.failed (the
automatic one that could not be made) when the model folder holds no model, redaction.failed when an
admin's redaction meets an audio track that cannot be decoded; the recording itself stays as it was."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from speech import AGENT_SAYS, speak
from store_kit import with_archive
from transcript_service_kit import ROOM, running, settings_for, webhook_receiver

from recorder.webhooks import RedactionFailed, TranscriptFailed

pytest.importorskip("faster_whisper")


async def test_failed_jobs_are_announced(tmp_path: Path) -> None:
    voice = speak(tmp_path, "alice", AGENT_SAYS)
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    async with webhook_receiver() as receiver:
        settings = with_archive(
            settings_for(tmp_path, receiver, model=str(no_model)), delete_local_after_upload=False
        )
        async with running(settings) as service:
            status, _ = await service.call(
                "PUT", f"/v1/rooms/{ROOM}/policy", {"transcribe": True, "redact": True}
            )
            assert status == 200
            rid = await service.speak_into([("alice", voice)])
            failed = (await receiver.wait_for(rid, "transcript.failed", 120)).event.data
            auto = (await receiver.wait_for(rid, "redaction.failed", 30)).event.data
            assert isinstance(failed, TranscriptFailed) and isinstance(auto, RedactionFailed)
            assert "no-model" in failed.error and "model.bin" in failed.error and failed.redaction_asked
            assert auto.rule == "auto" and auto.redactions == [] and auto.job_id == failed.job_id
            status, _ = await service.call("GET", f"/v1/recordings/{rid}/transcript")
            assert status == 404

            # an admin's redaction of a track that cannot be decoded
            track = settings.data_dir / "recordings" / rid / "alice-audio-1.webm"
            original = track.read_bytes()
            track.write_bytes(b"\x1aE\xdf\xa3 not a webm file" * 64)
            interval = {"start": 0.5, "end": 1.5, "reason": "agent's name"}
            status, accepted = await service.call("POST", f"/v1/recordings/{rid}/redactions", interval)
            assert status == 202, accepted

            async def manual_failed() -> list[RedactionFailed]:
                return [
                    r.event.data
                    for r in receiver.of(rid)
                    if isinstance(r.event.data, RedactionFailed) and r.event.data.rule == "manual"
                ]

            async with asyncio.timeout(120):
                while not await manual_failed():
                    receiver.changed.clear()
                    await receiver.changed.wait()
            (manual,) = await manual_failed()
            assert manual.job_id == accepted["job_id"] and "alice-audio-1" in manual.error
            assert [(r.start, r.end, r.reason) for r in manual.redactions] == [(0.5, 1.5, "agent's name")]
            status, audit = await service.call("GET", f"/v1/audit?target={rid}&limit=1000")
            assert status == 200
            track.write_bytes(original)
        kinds = [r.event.type.value for r in receiver.of(rid)]
    outcomes = {(e["action"], e["outcome"]) for e in audit["entries"]}
    assert {("transcript.made", "failed"), ("recording.redaction", "failed")} <= outcomes
    assert kinds.count("redaction.failed") == 2 and "transcript.ready" not in kinds
    assert "redaction.finished" not in kinds and "recording.deleted" not in kinds
