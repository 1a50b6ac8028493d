"""How a recording's files are named in the store: object keys from the template, content types."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from recorder.manifest import StoredObject, content_type_for
from recorder.models import MediaKind
from recorder.recording import RecordingInfo
from recorder.storage import render_key
from recorder.storage.base import sha256_file

_MEDIA_TYPES = {
    MediaKind.VIDEO: {".webm": "video/webm", ".mkv": "video/x-matroska", ".mp4": "video/mp4"},
    MediaKind.AUDIO: {
        ".webm": "audio/webm",
        ".mkv": "audio/x-matroska",
        ".mp4": "audio/mp4",
        ".m4a": "audio/mp4",
    },
}


def media_content_type(name: str, kind: MediaKind | None) -> str:
    """Content type of a recording file: media files by extension and track kind, others by extension."""
    suffix = PurePosixPath(name).suffix.lower()
    if kind is not None and suffix in _MEDIA_TYPES[kind]:
        return _MEDIA_TYPES[kind][suffix]
    return content_type_for(name)


def stored_object(
    folder: Path, name: str, key: str, kind: MediaKind | None, sha256: str | None = None
) -> StoredObject:
    """(blocking) The recording's file `name` as the manifest lists it; hashed unless `sha256` is known."""
    path = folder / name
    return StoredObject(
        name=name,
        key=key,
        size=path.stat().st_size,
        content_type=media_content_type(name, kind),
        sha256=sha256 or sha256_file(path),
    )


def key_function(template: str, info: RecordingInfo) -> Callable[[str], str]:
    """name -> object key of the recording's file `name` (ValueError for ids that cannot form a key)."""
    room = info.room_id if "{room_id" in template else None
    date = datetime.fromtimestamp(info.started_at, UTC)

    def key(name: str) -> str:
        return render_key(template, recording_id=info.recording_id, name=name, date=date, room_id=room)

    return key
