"""Which CallVault recording and track each .mjr file becomes. Pure: file names and times in, a plan out.

Janus's VideoRoom names its recordings `videoroom-<room>-user-<publisher>-<time>-<audio|video>[-<mindex>]`
(1.x adds the m-line index); files of one room whose times overlap (or nearly: `SLACK` seconds) are one
call, so they become one recording, `janus-<room>-<UTC start>`, each file a track named as the service
names live tracks: `<publisher>-<audio|video>-<mindex>`, the publisher its participant. Any other name is a
recording of its own, grouped with the files that share its name up to `-audio`/`-video`. Names are
never trusted: a room or publisher that is not a safe id (recorder/names.py) is replaced by a hash of it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from recorder.names import SAFE_ID

SLACK = 5.0
"""Seconds between two files of one room that still count as one call."""

_VIDEOROOM = re.compile(
    r"videoroom-(?P<room>.+?)-user-(?P<user>.+)-(?P<time>\d+)-(?P<kind>audio|video|data)(?:-(?P<index>\d+))?"
)
_OTHER = re.compile(r"(?P<base>.+?)-(?P<kind>audio|video|data)(?:-(?P<index>\d+))?")


class TrackSource(BaseModel):
    """One .mjr file as a track: where it belongs and when it ran."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file_index: int = Field(description="Index of the file in the list given to `plan`.")
    group: str = Field(description="The room (VideoRoom) or the shared name the file is grouped by.")
    room_id: str | None
    participant_id: str | None
    track: str
    start: float = Field(description="Unix seconds of the file's first packet.")
    end: float = Field(description="Unix seconds of its last packet.")


class PlannedRecording(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    room_id: str | None
    start: float
    end: float
    tracks: list[TrackSource]


def safe(value: str, prefix: str) -> str:
    """`value` when it is a safe id, else `prefix` + a hash of it (never a path from untrusted text)."""
    if SAFE_ID.fullmatch(value):
        return value
    return f"{prefix}{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()[:16]}"


def identify(file_index: int, stem: str, kind: str, start: float, end: float) -> TrackSource:
    """The track a file named `stem` (no `.mjr`) of media `kind` ('audio'/'video') becomes."""
    m = _VIDEOROOM.fullmatch(stem)
    if m is not None:
        room = safe(m["room"], "room-")
        user = safe(m["user"], "user-")
        return TrackSource(
            file_index=file_index,
            group=f"videoroom/{room}",
            room_id=room,
            participant_id=user,
            track=f"{user}-{kind}-{m['index'] or ('0' if kind == 'audio' else '1')}",
            start=start,
            end=end,
        )
    m = _OTHER.fullmatch(stem)
    base = safe(m["base"] if m is not None else stem, "mjr-")
    index = m["index"] if m is not None and m["index"] else None
    return TrackSource(
        file_index=file_index,
        group=f"name/{base}",
        room_id=None,
        participant_id=None,
        track=f"{base}-{kind}" + (f"-{index}" if index else ""),
        start=start,
        end=end,
    )


def plan(sources: Sequence[TrackSource]) -> list[PlannedRecording]:
    """Recordings for `sources`: per group, files whose spans overlap (within SLACK) are one recording.
    Track names are made unique within a recording (`-2`, `-3` ... for repeats)."""
    by_group: dict[str, list[TrackSource]] = {}
    for source in sources:
        by_group.setdefault(source.group, []).append(source)
    out: list[PlannedRecording] = []
    for group, members in sorted(by_group.items()):
        members.sort(key=lambda s: (s.start, s.file_index))
        calls: list[list[TrackSource]] = []
        end = float("-inf")
        for source in members:
            if not calls or source.start > end + SLACK:
                calls.append([])
                end = source.end
            calls[-1].append(source)
            end = max(end, source.end)
        for call in calls:
            out.append(_recording(group, call))
    taken: dict[str, int] = {}
    for recording in out:
        count = taken.get(recording.recording_id, 0) + 1
        taken[recording.recording_id] = count
        if count > 1:
            recording.recording_id = f"{recording.recording_id}-{count}"
    return sorted(out, key=lambda r: (r.start, r.recording_id))


def _recording(group: str, call: list[TrackSource]) -> PlannedRecording:
    start = min(s.start for s in call)
    end = max(s.end for s in call)
    first = call[0]
    stamp = datetime.fromtimestamp(start, UTC).strftime("%Y%m%dT%H%M%SZ")
    base = first.room_id if first.room_id is not None else group.split("/", 1)[1]
    seen: dict[str, int] = {}
    tracks = []
    for source in call:
        n = seen.get(source.track, 0) + 1
        seen[source.track] = n
        tracks.append(source if n == 1 else source.model_copy(update={"track": f"{source.track}-{n}"}))
    recording_id = safe(f"janus-{base}-{stamp}", "janus-")[:128]
    return PlannedRecording(
        recording_id=recording_id, room_id=first.room_id, start=start, end=end, tracks=tracks
    )
