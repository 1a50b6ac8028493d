"""The archive with the embedded default (a local store), driven directly through the RecordingSink calls:
settings, content types, the happy path, failures (mux, a segment changed after it closed), and
idempotent announcements."""

from __future__ import annotations

from pathlib import Path

import pytest
from archive_kit import Receiver, local_settings, new_info, run_recording
from pydantic import ValidationError

from recorder.archive import Archive, ArchiveSettings, media_content_type
from recorder.manifest import StoreSource, verify_recording
from recorder.manifest.signing import load_public_key
from recorder.models import MediaKind
from recorder.storage import LocalStore, recording_prefix
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE
from recorder.webhooks import RecordingFailed, RecordingFinished, WebhookEvent


def test_settings_defaults_paths_and_strictness(tmp_path: Path) -> None:
    settings = ArchiveSettings()
    assert settings.storage.backend == "local" and settings.delete_local_after_upload
    resolved = settings.resolved(tmp_path)
    assert resolved.spool.dir == tmp_path / "spool"
    assert resolved.storage.local.root == tmp_path / "recordings-store"
    assert resolved.webhooks.outbox_path == tmp_path / "webhooks.sqlite3"
    assert resolved.signing.key_file == tmp_path / "callvault-signing-key.pem"
    absolute = ArchiveSettings.model_validate({"spool": {"dir": "/var/spool/cv"}}).resolved(tmp_path)
    assert absolute.spool.dir == Path("/var/spool/cv")
    with pytest.raises(ValidationError):
        ArchiveSettings.model_validate({"finish_timeout": 0})
    with pytest.raises(ValidationError):
        ArchiveSettings.model_validate({"uploads": {}})
    with pytest.raises(ValidationError):
        ArchiveSettings.model_validate({"storage": {"key_template": "{recording_id}/x"}})


def test_content_types() -> None:
    assert media_content_type("v.segments/000001.webm", MediaKind.VIDEO) == "video/webm"
    assert media_content_type("a.segments/000001.webm", MediaKind.AUDIO) == "audio/webm"
    assert media_content_type("v.mkv", MediaKind.VIDEO) == "video/x-matroska"
    assert media_content_type("v.mp4", MediaKind.VIDEO) == "video/mp4"
    assert media_content_type("a.mp4", MediaKind.AUDIO) == "audio/mp4"
    assert media_content_type("v.json", MediaKind.VIDEO) == "application/json"
    assert media_content_type("manifest.json.sig", None) == "text/plain"


async def test_local_store_happy_path(tmp_path: Path, receiver: Receiver) -> None:
    archive = Archive(local_settings(receiver), tmp_path)
    await archive.start()
    info = new_info(tmp_path / "recordings" / "rec-local-1", "rec-local-1")
    try:
        await run_recording(archive, info)
        assert await archive.dispatcher.wait_idle(5)
        finished = archive.spool.jobs(recording_id="rec-local-1")
        again = WebhookEvent.model_validate_json(receiver.received[-1].body)
        await archive.dispatcher.publish(again, msg_id="msg_rec-local-1.end")  # published twice: kept once
        assert len(archive.running.outbox.deliveries(recording_id="rec-local-1")) == 2
        pem = archive.public_key_pem()
    finally:
        await archive.stop()
    assert len(finished) == 2 * (3 + 2) + 2  # segments, track files, summaries; manifest and signature
    assert [r.event.type.value for r in receiver.of("rec-local-1")] == [
        "recording.started",
        "recording.finished",
    ]
    event = receiver.of("rec-local-1")[1].event.data
    assert isinstance(event, RecordingFinished)
    assert event.links[0].url.startswith("file://")
    assert not info.folder.exists()
    prefix = recording_prefix(
        DEFAULT_KEY_TEMPLATE, recording_id="rec-local-1", date=event.manifest.created_at
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    report = verify_recording(
        StoreSource(LocalStore(tmp_path / "recordings-store"), prefix), load_public_key(tmp_path / "pub.pem")
    )
    assert report.ok and report.objects_checked == 10, report.problems


# A segment changed after it was closed and hashed is caught by the uploader's check of what it sends
# against that hash (the manifest takes the hashes taken when files were written; it reads none again).
@pytest.mark.parametrize(
    ("kind", "stage", "names"), [("mux", "mux", "video-0"), ("tamper", "upload", "video-0.segments/000001")]
)
async def test_failures_are_announced_with_their_stage(
    tmp_path: Path, receiver: Receiver, kind: str, stage: str, names: str
) -> None:
    archive = Archive(local_settings(receiver), tmp_path)
    await archive.start()
    info = new_info(tmp_path / "recordings" / "rec-bad", "rec-bad")
    try:
        await run_recording(archive, info, mux_failure=kind == "mux", tamper=kind == "tamper")
        assert await archive.dispatcher.wait_idle(5)
    finally:
        await archive.stop()
    events = receiver.of("rec-bad")
    assert [e.event.type.value for e in events] == ["recording.started", "recording.failed"]
    failed = events[1].event.data
    assert isinstance(failed, RecordingFailed) and failed.stage == stage and names in failed.error
    assert info.folder.exists()  # a failed recording's local files are kept for the operator
