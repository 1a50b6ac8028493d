"""Composites built by themselves when a recording finishes (postprocess/compositor.py), with and without
the archive: which recordings get one, the result stored and added to a new signed manifest revision,
composite.finished after recording.finished, verification that catches a changed composite, a restart
in the middle, and a recording that cannot be composited."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from archive_kit import Receiver
from composite_kit import Call
from media import ffprobe_errors
from s3_fixture import ACCESS_KEY, LOCKED_BUCKET, SECRET_KEY, MotoServer
from service_kit import absent, until

from postprocess.compositor import Compositor
from postprocess.options import Profile
from postprocess.settings import CompositeSettings
from recorder.archive import Archive, ArchiveSettings
from recorder.manifest import MANIFEST_NAME, Manifest, StoreSource, verify_recording
from recorder.manifest.signing import load_public_key
from recorder.models import TrackSummary
from recorder.recording import ParticipantInfo, RecordingInfo
from recorder.storage import recording_prefix
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE
from recorder.webhooks import CompositeFailed, CompositeFinished, RecordingFinished

SD = CompositeSettings(profiles=[Profile.SD], audio_mix=True)


def info_of(folder: Path, recording_id: str, outputs: str | None = None) -> RecordingInfo:
    return RecordingInfo(
        recording_id=recording_id,
        folder=folder,
        room_id="1234",
        started_at=time.time(),
        finished_at=time.time() + 6,
        participants=[
            ParticipantInfo(id="alice", display_name="Alice (agent)"),
            ParticipantInfo(id="bob", display_name="Bob"),
        ],
        track_participants={name: name.split("-")[0] for name in ("alice-video-0", "alice-audio-1",
                                                                    "bob-video-0", "bob-audio-1")},
        metadata={} if outputs is None else {"outputs": outputs},
    )  # fmt: skip


class Handed:
    """A `publish` that keeps what it was handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], list[str]]] = []

    async def __call__(self, info: RecordingInfo, files: Sequence[str], errors: Sequence[str]) -> None:
        self.calls.append((info.recording_id, list(files), list(errors)))


def test_which_recordings_get_a_composite_and_what_is_built(tmp_path: Path) -> None:
    on, off = CompositeSettings(), CompositeSettings(enabled=False)
    assert on.wanted(None) and not off.wanted(None)
    assert off.wanted("tracks,composite") and not on.wanted("tracks")
    jobs = CompositeSettings(profiles=["sd", "hd", "sd"], audio_mix=True, video_bitrates={"hd": 1_500_000})
    built = jobs.jobs(tmp_path)
    names = [o.out.name for o in built if o.out]
    assert names == ["composite-sd.mp4", "composite-hd.mp4", "composite-audio.m4a"]
    assert [o.bitrate for o in built[:2]] == [800_000, 1_500_000] and built[2].audio_only
    with pytest.raises(ValueError, match=r"video_bitrates\.hd must be > 0"):
        CompositeSettings(video_bitrates={"hd": 0})
    with pytest.raises(ValueError):
        CompositeSettings(profiles=[])


async def test_no_composite_when_the_room_says_tracks_only(
    call_copy: Callable[[], Path], tmp_path: Path
) -> None:
    folder = call_copy()
    handed = Handed()
    compositor = Compositor(SD, tmp_path / "data", handed)
    await compositor.recording_finished(info_of(folder, "rec-tracks", "tracks"), [])
    assert not compositor.holding("rec-tracks") and handed.calls == []
    assert not list(folder.glob("composite*"))


async def test_a_restart_mid_build_builds_it_again(
    call: Call, call_copy: Callable[[], Path], tmp_path: Path
) -> None:
    folder = call_copy()
    info = info_of(folder, "rec-restart")
    handed = Handed()
    first = Compositor(SD, tmp_path / "data", handed)
    await first.recording_finished(info, list(call.summaries.values()))
    assert first.holding("rec-restart")
    await asyncio.sleep(0.2)
    await first.stop()  # SIGTERM while building: the job file stays
    assert handed.calls == [] and list((tmp_path / "data" / "composites" / "jobs").glob("*.json"))

    second = Compositor(SD, tmp_path / "data", handed)
    await second.start()
    assert second.holding("rec-restart")
    async with asyncio.timeout(120):
        await second.wait_idle()
    await second.stop()
    assert handed.calls == [("rec-restart", ["composite-sd.mp4", "composite-audio.m4a"], [])]
    assert not second.holding("rec-restart")
    assert not list((tmp_path / "data" / "composites").rglob("*.json"))
    for name in ("composite-sd.mp4", "composite-audio.m4a"):
        assert ffprobe_errors(folder / name) == ""
    assert not list(folder.glob("*.part"))


async def test_a_recording_that_cannot_be_composited_is_reported(
    call: Call, call_copy: Callable[[], Path], tmp_path: Path
) -> None:
    folder = call_copy()
    for track in [*folder.glob("*.webm"), *folder.glob("*.segments/*.webm")]:  # files and segments
        track.write_bytes(b"\x1a\x45\xdf\xa3 not a matroska file")
    handed = Handed()
    compositor = Compositor(CompositeSettings(profiles=[Profile.SD]), tmp_path / "data", handed)
    await compositor.recording_finished(info_of(folder, "rec-bad"), list(call.summaries.values()))
    async with asyncio.timeout(60):
        await compositor.wait_idle()
    await compositor.stop()
    ((rid, files, errors),) = handed.calls
    assert rid == "rec-bad" and files == [] and len(errors) == 1
    assert errors[0].startswith("composite-sd.mp4: ")
    assert compositor.stats() == {"pending": 0, "built": 0, "failed": 1}


def storage_for(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if backend == "local":
        return {}
    moto: MotoServer = request.getfixturevalue("moto_server")
    return {
        "backend": "s3",
        "s3": {
            "endpoint": moto.endpoint,
            "bucket": LOCKED_BUCKET,
            "secure": False,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "worm": {"enabled": True, "mode": "GOVERNANCE", "days": 1},
        },
    }


def archive_settings(receiver: Receiver, storage: dict[str, Any] | None = None) -> ArchiveSettings:
    """An archive announcing to `receiver`, checking its tickets every 0.1 s (local store by default)."""
    return ArchiveSettings.model_validate(
        {
            "storage": storage or {},
            "signing": {"key_env": "CALLVAULT_TEST_NO_SUCH_VAR"},
            "spool": {"poll_interval": 0.1, "retry_initial": 0.1},
            "webhooks": {
                "endpoints": [{"id": "crm", "url": receiver.url, "secret": receiver.secret}],
                "poll_interval": 0.1,
            },
            "completion_poll": 0.1,
        }
    )


def record_into(archive: Archive, info: RecordingInfo, tracks: list[TrackSummary]) -> None:
    """The sink calls the recorded call's tracks made while recording: segments, then each track's end."""
    archive.recording_started(info)
    for track in tracks:
        for segment in track.segments:
            archive.segment_closed(info.folder, track.name, segment)
        archive.track_finished(info.folder, track)


@pytest.mark.parametrize("backend", ["local", "s3-object-lock"])
async def test_stored_in_a_new_manifest_revision_and_announced(
    call: Call,
    call_copy: Callable[[], Path],
    tmp_path: Path,
    receiver: Receiver,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    folder = call_copy()
    archive = Archive(archive_settings(receiver, storage_for(backend, request)), tmp_path)
    compositor = Compositor(CompositeSettings(profiles=[Profile.SD]), tmp_path, archive.add_composites)
    archive.holds.append(compositor.holding)
    await archive.start()
    await compositor.start()
    info = info_of(folder, f"rec-composite-{backend}")
    rid = info.recording_id
    tracks = list(call.summaries.values())
    try:
        record_into(archive, info, tracks)
        # The manager's order at the end: the compositor before the archive.
        await compositor.recording_finished(info, tracks)
        await archive.recording_finished(info, tracks)
        finished = await receiver.wait_for(rid, "recording.finished", 30)
        assert folder.is_dir(), "the local folder went while the composite still needed it"
        announced = await receiver.wait_for(rid, "composite.finished", 120)
        await until(lambda: absent(folder), 10, 0.05)  # removed right after the event is in the outbox
        pem = archive.public_key_pem()
    finally:
        await compositor.stop()
        await archive.stop()

    kinds = [r.event.type.value for r in receiver.of(rid)]
    assert kinds == ["recording.started", "recording.finished", "composite.finished"]
    assert receiver.signature_ok(announced)
    first, event = finished.event.data, announced.event.data
    assert isinstance(first, RecordingFinished) and isinstance(event, CompositeFinished)
    assert event.object.name == "composite-sd.mp4" and event.object.content_type == "video/mp4"
    assert event.manifest is not None and event.manifest.revision == 2
    assert event.manifest.object("composite-sd.mp4") == event.object
    assert event.link is not None
    assert event.link.url.startswith("file://" if backend == "local" else "http://")

    store = archive.store
    created = first.manifest.created_at
    prefix = recording_prefix(DEFAULT_KEY_TEMPLATE, recording_id=rid, date=created)
    stored = Manifest.model_validate_json(store.get_bytes(prefix + MANIFEST_NAME))
    assert stored == event.manifest and stored.previous is not None
    archived = json.loads(store.get_bytes(prefix + stored.previous.name))
    assert archived == first.manifest.model_dump(mode="json")  # revision 1 as recording.finished had it
    composite = tmp_path / "composite-sd.mp4"
    composite.write_bytes(store.get_bytes(prefix + "composite-sd.mp4"))
    assert ffprobe_errors(composite) == ""

    (tmp_path / "pub.pem").write_bytes(pem)
    key = load_public_key(tmp_path / "pub.pem")
    report = verify_recording(StoreSource(store, prefix), key)
    assert report.ok, report.problems
    data = bytearray(composite.read_bytes())
    data[len(data) // 2] ^= 0x01
    store.put_bytes(prefix + "composite-sd.mp4", bytes(data))
    report = verify_recording(StoreSource(store, prefix), key)
    assert [(p.kind.value, p.name) for p in report.problems] == [("changed", "composite-sd.mp4")]


async def test_a_failed_composite_is_announced_and_the_originals_stay_valid(
    call: Call, call_copy: Callable[[], Path], tmp_path: Path, receiver: Receiver
) -> None:
    folder = call_copy()
    archive = Archive(archive_settings(receiver), tmp_path)
    await archive.start()
    info = info_of(folder, "rec-nocomposite")
    tracks = list(call.summaries.values())
    try:
        record_into(archive, info, tracks)
        await archive.recording_finished(info, tracks)
        await archive.add_composites(info, [], ["composite-sd.mp4: no usable media"])
        failed = await receiver.wait_for("rec-nocomposite", "composite.failed", 30)
    finally:
        await archive.stop()
    assert isinstance(failed.event.data, CompositeFailed)
    assert "no usable media" in failed.event.data.error
