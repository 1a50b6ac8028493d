"""A recording folder as the recorder leaves it (segments, joined track files, summaries), signed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder.manifest import Manifest, Participant, build_manifest, write_signed_manifest
from recorder.manifest.signing import public_key_pem
from recorder.models import Codec, MediaKind, SegmentInfo, TrackSummary
from recorder.summaries import write_summary

STARTED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Recording:
    folder: Path
    recording_id: str
    manifest: Manifest
    key: Ed25519PrivateKey
    public_key_file: Path


def make_tracks(folder: Path) -> list[TrackSummary]:
    tracks = []
    for name, codec, ext in (("video-1", Codec.VP8, "webm"), ("audio-1", Codec.OPUS, "webm")):
        segments = []
        for i in range(3):
            rel = f"{name}.segments/{i:06d}.{ext}"
            data = os.urandom(2000 + i)
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
            segments.append(
                SegmentInfo(
                    index=i,
                    path=rel,
                    first_rtp_timestamp=i * 1000,
                    last_rtp_timestamp=i * 1000 + 900,
                    frames=10,
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
        (folder / f"{name}.{ext}").write_bytes(b"".join((folder / s.path).read_bytes() for s in segments))
        summary = TrackSummary(
            name=name,
            state="complete",
            kind=codec.kind,
            codec=codec,
            clock_rate=90000 if codec.kind is MediaKind.VIDEO else 48000,
            payload_type=96 if codec.kind is MediaKind.VIDEO else 111,
            file=f"{name}.{ext}",
            container="webm",
            frames=30,
            segments=segments,
        )
        write_summary(folder, summary)
        tracks.append(summary)
    return tracks


def make_recording(root: Path, recording_id: str, key: Ed25519PrivateKey) -> Recording:
    folder = root / recording_id
    folder.mkdir(parents=True)
    tracks = make_tracks(folder)
    manifest = build_manifest(
        folder,
        recording_id,
        tracks=tracks,
        created_at=STARTED,
        finished_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        room_id="room-7",
        call_id="call-42",
        participants=[Participant(id="agent-1", display_name="Zoë Agent", metadata={"queue": "billing"})],
        track_participants={"video-1": "agent-1", "audio-1": "agent-1"},
        key_for=lambda name: f"2024/05/01/{recording_id}/{name}",
    )
    write_signed_manifest(folder, manifest, key)
    public = root / f"{recording_id}.pub.pem"
    public.write_bytes(public_key_pem(key))
    return Recording(folder, recording_id, manifest, key, public)


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def recording_factory(signing_key: Ed25519PrivateKey) -> Callable[[Path, str], Recording]:
    return lambda root, recording_id: make_recording(root, recording_id, signing_key)


@pytest.fixture
def recording(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Recording:
    return make_recording(tmp_path, "rec-1", signing_key)
