"""The pieces of transcripts in the service, without the model: which recordings a room's policy and the
settings ask a transcript or a redaction of, the numbering of redacted copies, and a manual redaction of a
recording that has no transcript (worker code run in this process)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from speech import SpokenCall

from recorder.api.db import Database
from recorder.api.models import RoomPolicy
from recorder.api.policy import PolicyStore
from recorder.recording import RecordingInfo
from recorder.service.settings import JanusSettings
from recorder.transcripts.settings import REDACT_TAG, TRANSCRIBE_TAG, TranscriptSettings
from recorder.transcripts.work import Interval, WorkRequest, do_work, next_copy_number


def test_the_room_policy_decides_else_the_settings() -> None:
    off, on = TranscriptSettings(), TranscriptSettings(enabled=True, redact=True)
    assert not off.wants_transcript({}) and on.wants_transcript({}) and on.wants_redaction({})
    assert off.wants_transcript({TRANSCRIBE_TAG: "on"}) and not on.wants_transcript({TRANSCRIBE_TAG: "off"})
    assert off.wants_redaction({REDACT_TAG: "on"}) and not on.wants_redaction({REDACT_TAG: "off"})
    assert not off.wants_transcript({TRANSCRIBE_TAG: "maybe"})  # anything else: the settings


async def test_a_rooms_policy_tags_its_new_recordings(tmp_path: Path) -> None:
    db = Database(tmp_path / "catalog.db")
    try:
        policy = PolicyStore(db, "all", JanusSettings(enabled=False))
        await policy.set_room("support-1", RoomPolicy(transcribe=True, redact=False))
        info = RecordingInfo(recording_id="r1", folder=tmp_path, room_id="support-1", started_at=time.time())
        policy.start_hook(info)
        assert info.metadata[TRANSCRIBE_TAG] == "on" and info.metadata[REDACT_TAG] == "off"
        other = RecordingInfo(recording_id="r2", folder=tmp_path, room_id="sales", started_at=time.time())
        policy.start_hook(other)
        assert TRANSCRIBE_TAG not in other.metadata and REDACT_TAG not in other.metadata
    finally:
        db.close()


def test_redacted_copies_are_numbered_after_the_folder_and_the_manifest(tmp_path: Path) -> None:
    assert next_copy_number(tmp_path) == 1
    (tmp_path / "redacted-1").mkdir()
    assert next_copy_number(tmp_path) == 2
    objects = [{"name": "redacted-2/bob-audio-1.webm"}, {"name": "bob-audio-1.webm"}]
    (tmp_path / "manifest.json").write_text(json.dumps({"objects": objects}))
    assert next_copy_number(tmp_path) == 3  # a folder restored from the store has no redacted-2/ of its own


def test_a_manual_redaction_without_a_transcript(spoken_call: SpokenCall, tmp_path: Path) -> None:
    folder = spoken_call.copy(tmp_path / "rec")
    interval = Interval(start=1.0, end=2.0, reason="agent's name", rule="manual")
    request = WorkRequest(folder=folder, transcribe=False, manual=[interval])
    result = do_work(request, TranscriptSettings())
    assert result.transcript == [] and result.redactions == [interval] and result.errors == []
    assert set(result.redacted) == {
        "redacted-1/alice-audio-1.webm",
        "redacted-1/bob-audio-1.webm",
        "redacted-1/redactions.json",
    }
    assert sorted(result.originals) == ["alice-audio-1.webm", "bob-audio-1.webm"]
    assert not (folder / "redacted").exists() and not (folder / "transcript.json").exists()
