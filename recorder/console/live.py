"""Per-track figures of the rooms being recorded, for the console's live view: packets, loss and rates
between two looks (the pipeline's own counters, read on the event loop that owns them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from recorder.service.manager import RecordingManager


class TrackLive(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room_id: str
    recording_id: str
    participant: str
    track: str
    kind: str
    codec: str
    packets_received: int
    packets_lost: int
    frames: int
    stored_bytes: int
    """Bytes of the segments closed so far."""
    packets_per_second: float | None = None
    loss_percent: float | None = None
    """Packets lost of those expected since the previous look (None on the first look)."""
    kbit_per_second: float | None = None
    """Average media bit rate of the segments closed so far over the time they span."""


class LiveTracks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracks: list[TrackLive]


class LiveSampler:
    """Remembers the previous look at each track, so a look gives rates since the last one."""

    def __init__(self) -> None:
        self._previous: dict[tuple[str, str], tuple[float, int, int]] = {}

    def look(self, manager: RecordingManager, now: float) -> LiveTracks:
        out: list[TrackLive] = []
        seen: set[tuple[str, str]] = set()
        for room, recording in manager.rooms.items():
            rid = recording.info.recording_id
            for participant, streams in recording.participants.items():
                for stream in streams:
                    track = recording.session.tracks.get(stream.track)
                    if track is None:
                        continue
                    s = track.pipeline.counters()
                    stored = sum(seg.size for seg in s.segments)
                    item = TrackLive(
                        room_id=room,
                        recording_id=rid,
                        participant=participant,
                        track=stream.track,
                        kind=s.kind.value,
                        codec=s.codec.value,
                        packets_received=s.packets_received,
                        packets_lost=s.packets_lost,
                        frames=s.frames,
                        stored_bytes=stored,
                    )
                    spanned = s.arrival_seconds
                    if stored and spanned:
                        item.kbit_per_second = round(stored * 8 / spanned / 1000, 1)
                    key = (rid, stream.track)
                    seen.add(key)
                    previous = self._previous.get(key)
                    if previous is not None and now > previous[0]:
                        received = s.packets_received - previous[1]
                        lost = s.packets_lost - previous[2]
                        item.packets_per_second = round(received / (now - previous[0]), 1)
                        expected = received + max(lost, 0)
                        item.loss_percent = round(100 * max(lost, 0) / expected, 2) if expected else 0.0
                    self._previous[key] = (now, s.packets_received, s.packets_lost)
                    out.append(item)
        for key in set(self._previous) - seen:
            del self._previous[key]
        return LiveTracks(tracks=out)
