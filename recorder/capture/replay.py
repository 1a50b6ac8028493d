"""Rebuild tracks from their captures: each capture names its track and stream (the Section Header's
stream description) and the recorder settings that shape frames (reorder buffer, segment length); its
RTP packets, with the times they arrived, go through the live pipeline offline
(`recorder.mjr.replay.replay_track`: the same reorder buffer, frame assembly, segments, joined file and
summary). The segments of one track may come in any order: they are put in order of their first packet.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from recorder.capture import pcapng
from recorder.capture.reader import Capture, CaptureError, parse
from recorder.config import RecorderSettings
from recorder.models import StreamSpec
from recorder.names import SAFE_ID

SETTINGS_PREFIX = "callvault-settings "
"""The Section Header comment with the recorder settings the track was recorded with (JSON)."""
REPLAYED_SETTINGS = (
    "segment_seconds",
    "reorder_packets",
    "reorder_delay",
    "h264_container",
    "audio_container",
)
MAX_CAPTURE_BYTES = 4 << 30


def settings_comment(settings: RecorderSettings) -> str:
    return SETTINGS_PREFIX + settings.model_dump_json(include=set(REPLAYED_SETTINGS))


@dataclass
class CapturedTrack:
    spec: StreamSpec
    settings: RecorderSettings
    files: list[Path] = field(default_factory=list)
    packets: list[tuple[int, bytes]] = field(default_factory=list)
    """(arrival Unix nanoseconds, RTP packet) in arrival order."""
    rtcp: list[tuple[int, bytes]] = field(default_factory=list)


def spec_of(capture: Capture) -> StreamSpec:
    data = capture.stream
    if data is None:
        raise CaptureError("no CallVault stream description (a capture CallVault did not write)")
    try:
        data = dict(data)
        raw = data.get("sprop_parameter_sets", [])
        if not isinstance(raw, list):
            raise ValueError("sprop_parameter_sets is not a list")
        data["sprop_parameter_sets"] = [base64.b64decode(str(p), validate=True) for p in raw]
        spec = StreamSpec.model_validate(data)
    except (ValidationError, ValueError, TypeError) as exc:
        raise CaptureError(f"the stream description is invalid: {_first_error(exc)}") from None
    if not SAFE_ID.fullmatch(spec.name):
        raise CaptureError(f"the track name {spec.name!r} is not a safe name")
    return spec


def settings_of(capture: Capture) -> RecorderSettings:
    for comment in capture.comments:
        if comment.startswith(SETTINGS_PREFIX):
            try:
                values = json.loads(comment[len(SETTINGS_PREFIX) :])
                if not isinstance(values, dict):
                    raise ValueError("not a JSON object")
                return RecorderSettings.model_validate(
                    {k: v for k, v in values.items() if k in REPLAYED_SETTINGS}
                )
            except (ValidationError, ValueError) as exc:
                raise CaptureError(f"the recorder settings are invalid: {_first_error(exc)}") from None
    return RecorderSettings()


def read_capture_file(path: Path) -> Capture:
    """Read and parse one capture file; CaptureError names the file."""
    try:
        size = path.stat().st_size
        if size > MAX_CAPTURE_BYTES:
            raise CaptureError(f"{path}: {size} bytes, more than a capture segment can be")
        data = path.read_bytes()
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return parse(data)
    except CaptureError as exc:
        raise CaptureError(f"{path}: {exc}") from None


def load_tracks(paths: Sequence[Path]) -> list[CapturedTrack]:
    """The tracks the captures hold, each with its packets in arrival order."""
    tracks: dict[str, CapturedTrack] = {}
    pieces: dict[str, list[tuple[int, Capture, Path]]] = {}
    for path in paths:
        capture = read_capture_file(path)
        try:
            spec, settings = spec_of(capture), settings_of(capture)
        except CaptureError as exc:
            raise CaptureError(f"{path}: {exc}") from None
        track = tracks.setdefault(spec.name, CapturedTrack(spec, settings))
        if track.spec.model_copy(update={"port": 0, "rtcp_port": None}) != spec.model_copy(
            update={"port": 0, "rtcp_port": None}
        ):
            raise CaptureError(f"{path}: track {spec.name} is described differently in {track.files[0]}")
        track.files.append(path)
        first = min((d.time_ns for d in capture.datagrams), default=0)
        pieces.setdefault(spec.name, []).append((first, capture, path))
    for name, parts in pieces.items():
        track = tracks[name]
        for _, capture, _ in sorted(parts, key=lambda p: p[0]):
            for d in capture.datagrams:
                payload = d.payload
                rtcp = d.interface == pcapng.IF_RTCP or (len(payload) > 1 and 192 <= payload[1] <= 223)
                (track.rtcp if rtcp else track.packets).append((d.time_ns, payload))
    return list(tracks.values())


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return str(exc)
