"""The archive with the embedded default (a local store), driven directly through the RecordingSink calls:
settings, content types, the happy path, failures (mux, a segment changed after it closed), and
idempotent announcements."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from archive_kit import Receiver
from pydantic import ValidationError

from recorder.archive import Archive, ArchiveSettings, media_content_type
from recorder.manifest import StoreSource, verify_recording
from recorder.manifest.signing import load_public_key
from recorder.models import Codec, MediaKind, SegmentInfo, TrackSummary
from recorder.recording import ParticipantInfo, RecordingInfo
from recorder.storage import LocalStore, recording_prefix
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE
from recorder.summaries import write_summary
from recorder.webhooks import RecordingFailed, RecordingFinished, WebhookEvent


def local_settings(receiver: Receiver, **overrides: object) -> ArchiveSettings:
    return ArchiveSettings.model_validate(
        {
            "signing": {"key_env": "CALLVAULT_TEST_NO_SUCH_VAR"},
            "spool": {"poll_interval": 0.1},
            "webhooks": {
                "endpoints": [{"id": "crm", "url": receiver.url, "secret": receiver.secret}],
                "poll_interval": 0.1,
            },
            **overrides,
        }
    )


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


class FakeTrack:
    """Writes a track's files the way RecordingSession leaves them (contents are random bytes)."""

    def __init__(self, folder: Path, name: str, codec: Codec) -> None:
        self.folder = folder
        self.summary = TrackSummary(
            name=name,
            kind=codec.kind,
            codec=codec,
            clock_rate=90000 if codec.kind is MediaKind.VIDEO else 48000,
            payload_type=96,
            container="webm",
        )
        write_summary(folder, self.summary)

    def segment(self, index: int) -> SegmentInfo:
        rel = f"{self.summary.name}.segments/{index:06d}.webm"
        data = os.urandom(5000 + index)
        (self.folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.folder / rel).write_bytes(data)
        info = SegmentInfo(
            index=index,
            path=rel,
            first_rtp_timestamp=index * 90000,
            last_rtp_timestamp=index * 90000 + 87000,
            frames=30,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        self.summary.segments.append(info)
        return info

    def finish(self, state: str = "complete") -> TrackSummary:
        self.summary.state = state
        self.summary.file = f"{self.summary.name}.webm"
        (self.folder / self.summary.file).write_bytes(
            b"".join((self.folder / s.path).read_bytes() for s in self.summary.segments)
        )
        write_summary(self.folder, self.summary)
        return self.summary


def new_info(folder: Path, recording_id: str) -> RecordingInfo:
    folder.mkdir(parents=True)
    return RecordingInfo(
        recording_id=recording_id,
        folder=folder,
        room_id="1234",
        started_at=time.time(),
        participants=[ParticipantInfo(id="agent-7", display_name="Agent")],
        track_participants={"video-0": "agent-7", "audio-1": "agent-7"},
    )


async def run_recording(
    archive: Archive, info: RecordingInfo, *, mux_failure: bool = False, tamper: bool = False
) -> list[TrackSummary]:
    archive.recording_started(info)
    tracks = [FakeTrack(info.folder, "video-0", Codec.VP8), FakeTrack(info.folder, "audio-1", Codec.OPUS)]
    for index in range(3):
        for track in tracks:
            archive.segment_closed(info.folder, track.summary.name, track.segment(index))
    if tamper:  # a segment changes on disk after it was closed and hashed
        (info.folder / tracks[0].summary.segments[1].path).write_bytes(b"changed")
    summaries = []
    for i, track in enumerate(tracks):
        summary = track.finish("failed" if mux_failure and i == 0 else "complete")
        archive.track_finished(info.folder, summary)
        summaries.append(summary)
    info.finished_at = time.time()
    await archive.recording_finished(info, summaries)
    return summaries


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


@pytest.mark.parametrize(
    ("kind", "stage", "names"), [("mux", "mux", "video-0"), ("tamper", "manifest", "video-0.segments/000001")]
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
