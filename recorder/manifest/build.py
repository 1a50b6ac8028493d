"""Build, sign and write a recording's manifest.

`build_manifest` hashes every file in the recording folder (blocking: call it in a thread from the event
loop) and merges `objects` already stored and deleted locally (from the uploader's results). Segment
chains come from the tracks' `SegmentInfo` hashes, taken when each segment closed. `finalize_folder`
signs and writes `manifest.json` and `manifest.json.sig` into the folder, ready to be spooled up.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder import __version__
from recorder.errors import CallVaultError
from recorder.manifest.canonical import canonical_bytes
from recorder.manifest.chain import build_chain
from recorder.manifest.model import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Manifest,
    ManifestTrack,
    Participant,
    Software,
    StoredObject,
)
from recorder.manifest.signing import sign, signer_of
from recorder.models import TrackSummary
from recorder.storage.base import sha256_file

log = logging.getLogger(__name__)

_TYPES = {
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".mka": "audio/x-matroska",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".json": "application/json",
    ".sig": "text/plain",
    ".pcapng": "application/x-pcapng",
}


class ManifestError(CallVaultError):
    """A manifest cannot be built: the message names the object and the conflict."""


def content_type_for(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def folder_files(folder: Path) -> list[str]:
    """Names ('/'-separated, relative) of every file in the folder but the manifest and its signature and
    temporary files ('.*.tmp')."""
    names = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        name = path.relative_to(folder).as_posix()
        if name in {MANIFEST_NAME, SIGNATURE_NAME} or (
            path.name.startswith(".") and path.name.endswith(".tmp")
        ):
            continue
        names.append(name)
    return sorted(names)


def build_manifest(
    folder: Path,
    recording_id: str,
    *,
    tracks: Sequence[TrackSummary],
    created_at: datetime,
    finished_at: datetime | None = None,
    room_id: str | None = None,
    call_id: str | None = None,
    participants: Sequence[Participant] = (),
    track_participants: dict[str, str] | None = None,
    objects: Iterable[StoredObject] = (),
    key_for: Callable[[str], str] = lambda name: name,
    scan_folder: bool = True,
) -> Manifest:
    """The manifest of the recording in `folder`. `key_for(name)` gives an object's storage key;
    `objects` are objects stored (or queued for storage) earlier: their local copies may be gone, and when
    a local copy is there its hash must match and the stored record (key, content type) is kept;
    `track_participants` maps track names to participant ids. `scan_folder` False: the objects are
    exactly `objects` (an encrypted recording's, whose stored bytes are not the folder's)."""
    known = {o.name: o for o in objects}
    for name in folder_files(folder) if scan_folder else ():
        path = folder / name
        stored = StoredObject(
            name=name,
            key=key_for(name),
            size=path.stat().st_size,
            content_type=content_type_for(name),
            sha256=sha256_file(path),
        )
        earlier = known.get(name)
        if earlier is None:
            known[name] = stored
        elif earlier.sha256 != stored.sha256:
            raise ManifestError(
                f"{name}: the local file (sha256 {stored.sha256}) differs from the stored object"
                f" {earlier.key} (sha256 {earlier.sha256})"
            )
        # else: the stored object's record stands (its key and the content type it was stored with)
    by_name = {o.name: o for o in known.values()}
    for track in tracks:
        for segment in track.segments:
            obj = by_name.get(segment.path)
            if obj is not None and obj.content_sha256 != segment.sha256:
                log.warning(
                    "%s: segment %s changed after it was closed (sha256 %s, recorded %s)",
                    recording_id,
                    segment.path,
                    obj.content_sha256,
                    segment.sha256,
                )
    owners = track_participants or {}
    return Manifest(
        recording_id=recording_id,
        room_id=room_id,
        call_id=call_id,
        software=Software(version=__version__),
        created_at=created_at.astimezone(UTC),
        finished_at=finished_at.astimezone(UTC) if finished_at else None,
        participants=list(participants),
        tracks=[ManifestTrack(**t.model_dump(), participant_id=owners.get(t.name)) for t in tracks],
        objects=sorted(known.values(), key=lambda o: o.name),
        chains=[build_chain(recording_id, t.name, t.segments) for t in tracks],
    )


def signed_manifest_bytes(manifest: Manifest, key: Ed25519PrivateKey) -> tuple[Manifest, bytes, bytes]:
    """(the manifest with its signer set, manifest.json bytes, manifest.json.sig bytes)."""
    signed = manifest.model_copy(update={"signer": signer_of(key)})
    data = canonical_bytes(signed)
    return signed, data, sign(data, key)


def write_signed_manifest(folder: Path, manifest: Manifest, key: Ed25519PrivateKey) -> Manifest:
    """Sign the manifest and write manifest.json and manifest.json.sig into `folder` (each atomically);
    returns the manifest as signed (with its `signer`)."""
    signed, data, signature = signed_manifest_bytes(manifest, key)
    write_atomically(folder / MANIFEST_NAME, data)
    write_atomically(folder / SIGNATURE_NAME, signature)
    return signed


def write_atomically(path: Path, content: bytes) -> None:
    """Replace `path` with `content` at once: written to `.<name>.tmp` beside it (which folder_files
    skips), then renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
