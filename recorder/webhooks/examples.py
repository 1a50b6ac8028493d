"""Examples of the webhook bodies (and of the manifest they carry), built from the payload models
themselves: each one is valid by construction. The OpenAPI document shows them (its `webhooks` section and
the recording answers of the control API)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder import __version__
from recorder.manifest.chain import build_chain
from recorder.manifest.model import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Manifest,
    ManifestTrack,
    Participant,
    PreviousRevision,
    Signer,
    Software,
    StoredObject,
)
from recorder.manifest.signing import signer_of
from recorder.models import Codec, MediaKind, SegmentInfo
from recorder.webhooks.events import (
    CompositeFailed,
    CompositeFinished,
    EventType,
    PresignedLink,
    RecordingFailed,
    RecordingFinished,
    RecordingPaused,
    RecordingResumed,
    RecordingStarted,
    WebhookEvent,
)

STARTED = datetime(2026, 5, 4, 9, 30, 0, tzinfo=UTC)
FINISHED = STARTED + timedelta(minutes=12, seconds=5)
RECORDING_ID = "20260504T093000Z-support-7-1f2e3d4c"
ROOM_ID = "support-7"
CALL_ID = "call-4711"
PREFIX = f"2026/05/04/{RECORDING_ID}/"
_EXAMPLE_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"callvault example key").digest())
"""Derives the example signer's public key only; it signs nothing."""


class _Ids(TypedDict):
    recording_id: str
    room_id: str
    call_id: str


def signer() -> Signer:
    return signer_of(_EXAMPLE_KEY)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def participants() -> list[Participant]:
    return [
        Participant(id="1001", display_name="Agent Smith", metadata={"role": "agent"}),
        Participant(id="1002", display_name="Customer", metadata={"role": "customer"}),
    ]


def _track(participant: str, kind: MediaKind, index: int) -> ManifestTrack:
    name = f"{participant}-{kind.value}-{index}"
    video = kind is MediaKind.VIDEO
    segments = [
        SegmentInfo(
            index=i,
            path=f"{name}.segments/{i:06d}.webm",
            first_rtp_timestamp=90000 * 2 * i if video else 48000 * 2 * i,
            last_rtp_timestamp=90000 * 2 * (i + 1) - 3000 if video else 48000 * 2 * (i + 1) - 960,
            frames=60 if video else 100,
            size=412_345 if video else 32_100,
            sha256=_sha(f"{name}/{i}"),
        )
        for i in range(2)
    ]
    return ManifestTrack(
        name=name,
        participant_id=participant,
        state="complete",
        kind=kind,
        codec=Codec.VP8 if video else Codec.OPUS,
        clock_rate=90000 if video else 48000,
        payload_type=96 if video else 111,
        ssrc=0x1A2B3C4D + index,
        file=f"{name}.webm",
        container="webm",
        first_rtp_timestamp=0,
        last_rtp_timestamp=segments[-1].last_rtp_timestamp,
        first_wallclock=STARTED.timestamp(),
        last_wallclock=STARTED.timestamp() + 4.0,
        frames=sum(s.frames for s in segments),
        keyframes=2 if video else 200,
        packets_received=1240 if video else 200,
        duration=4.0,
        width=1280 if video else None,
        height=720 if video else None,
        segments=segments,
    )


def manifest() -> Manifest:
    tracks = [_track("1001", MediaKind.VIDEO, 0), _track("1002", MediaKind.AUDIO, 1)]
    objects: list[StoredObject] = []
    for track in tracks:
        kind = track.kind.value
        for segment in track.segments:
            objects.append(_object(segment.path, f"{kind}/webm", segment.size, segment.sha256))
        objects.append(_object(f"{track.name}.webm", f"{kind}/webm", 823_500, _sha(track.name)))
        objects.append(_object(f"{track.name}.json", "application/json", 2_310, _sha(track.name + ".json")))
    return Manifest(
        recording_id=RECORDING_ID,
        room_id=ROOM_ID,
        call_id=CALL_ID,
        software=Software(version=__version__),
        created_at=STARTED,
        finished_at=FINISHED,
        participants=participants(),
        tracks=tracks,
        objects=objects,
        chains=[build_chain(RECORDING_ID, t.name, t.segments) for t in tracks],
        signer=signer(),
    )


def _object(name: str, content_type: str, size: int, sha256: str) -> StoredObject:
    return StoredObject(name=name, key=PREFIX + name, size=size, content_type=content_type, sha256=sha256)


def link(name: str) -> PresignedLink:
    return PresignedLink(
        name=name,
        key=PREFIX + name,
        url=f"https://s3.example.com/recordings/{PREFIX}{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=86400",
        expires_at=FINISHED + timedelta(days=1),
    )


def payloads() -> dict[EventType, WebhookEvent]:
    """One example body per event type."""
    ids = _Ids(recording_id=RECORDING_ID, room_id=ROOM_ID, call_id=CALL_ID)
    shown = manifest()
    composite = _object("composite/grid.mp4", "video/mp4", 9_876_543, _sha("composite"))
    archived = [
        _object("manifest.1.json", "application/json", 6_120, _sha("manifest.1.json")),
        _object("manifest.1.json.sig", "text/plain", 89, _sha("manifest.1.json.sig")),
    ]
    previous = PreviousRevision(
        revision=1, name="manifest.1.json", signature="manifest.1.json.sig", sha256=archived[0].sha256
    )
    revised = shown.model_copy(
        update={"revision": 2, "previous": previous, "objects": [*shown.objects, *archived, composite]}
    )
    events = [
        (RecordingStarted(**ids, started_at=STARTED, participants=participants()), STARTED),
        (
            RecordingPaused(
                **ids, paused_at=STARTED + timedelta(minutes=3), by="operator-1", reason="card number"
            ),
            STARTED + timedelta(minutes=3),
        ),
        (
            RecordingResumed(**ids, resumed_at=STARTED + timedelta(minutes=4), by="operator-1"),
            STARTED + timedelta(minutes=4),
        ),
        (
            RecordingFinished(
                **ids,
                finished_at=FINISHED,
                manifest=shown,
                links=[link(MANIFEST_NAME), link(SIGNATURE_NAME), *(link(o.name) for o in shown.objects[:2])],
            ),
            FINISHED + timedelta(seconds=3),
        ),
        (
            RecordingFailed(
                **ids,
                failed_at=FINISHED + timedelta(seconds=3),
                stage="upload",
                error="1001-video-0.webm: changed after it was enqueued",
            ),
            FINISHED + timedelta(seconds=3),
        ),
        (
            CompositeFinished(
                **ids,
                finished_at=FINISHED + timedelta(seconds=40),
                object=composite,
                link=link(composite.name),
                manifest=revised,
            ),
            FINISHED + timedelta(seconds=41),
        ),
        (
            CompositeFailed(
                **ids, failed_at=FINISHED + timedelta(seconds=40), error="ffmpeg exited with status 1"
            ),
            FINISHED + timedelta(seconds=40),
        ),
    ]
    return {data.event_type: WebhookEvent.of(data, timestamp) for data, timestamp in events}
