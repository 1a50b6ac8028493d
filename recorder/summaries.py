"""Reading and writing a track's summary JSON (<folder>/<track>.json), atomically.

A summary is written beside its file (`.<track>.json.tmp`) and renamed over it. While the track records
(state 'recording') the summary is a checkpoint:

- a checkpoint that cannot be written (a full disk) is logged and skipped, never raised: the previous one
  stays in place, the recording goes on, and the final summary follows;
- each checkpoint keeps space set aside for the final summary (`.<track>.json.reserve.tmp`: RESERVE_BYTES,
  or twice the checkpoint), so the final one can be written when the disk has filled meanwhile: it goes
  into blocks that file already holds, then is renamed into place;
- a checkpoint never replaces a final summary (one that arrives late, after the track finished). The
  file on disk is read for that only when it is not the checkpoint this process wrote last (its inode,
  mtime and size are remembered): a live track's checkpoints cost one stat each, not a read and a parse.

A checkpoint takes the place of the previous one by exchanging the two files (Linux `renameat2` with
RENAME_EXCHANGE): the temporary file then holds the previous checkpoint and is written over next time, so
a live track's checkpoints create and delete no file (on ext4, creating a file among many recently
deleted ones cost a recorder of 200 tracks a fifth of its CPU). Where the exchange is not available, the
temporary file is renamed over the summary.

A final summary ('complete', 'recovered', 'failed') uses up the reserved file and leaves no temporary
file; when it cannot be written, OSError is raised and nothing half-written is left. The temporary files
are hidden: manifests and file listings skip them.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from recorder.models import TrackSummary
from recorder.mux.write_errors import describe

log = logging.getLogger(__name__)

LIVE_STATE = "recording"
RESERVE_BYTES = 64 * 1024

Stamp = tuple[int, int, int]
"""A file's (inode, mtime in ns, size): a file replaced by someone else has another."""


@dataclass
class _Track:
    """A summary file this process writes: one writer at a time, and the stamp of its last checkpoint."""

    lock: threading.Lock
    checkpoint: Stamp | None = None


_tracks: dict[Path, _Track] = {}
_tracks_guard = threading.Lock()


def summary_path(folder: Path, track: str) -> Path:
    return folder / f"{track}.json"


def temporary_path(folder: Path, track: str) -> Path:
    """Where a summary is written before it is renamed into place."""
    return folder / f".{track}.json.tmp"


def reserve_path(folder: Path, track: str) -> Path:
    """The space set aside for the track's final summary."""
    return folder / f".{track}.json.reserve.tmp"


def summary_json(summary: TrackSummary) -> bytes:
    """The summary as its file holds it."""
    return summary.model_dump_json(indent=2).encode()


def write_summary(folder: Path, summary: TrackSummary, data: bytes | None = None) -> bool:
    """Replace the track's summary JSON atomically (write beside it, then rename). Returns whether it was
    written: a checkpoint (state 'recording') that cannot be, or that comes after the final summary, is
    skipped; a final summary that cannot be written raises OSError. `data`: the summary already
    serialized (`summary_json`), e.g. on the event loop while the model could still change."""
    path = summary_path(folder, summary.name)
    reserve = reserve_path(folder, summary.name)
    if data is None:
        data = summary_json(summary)
    live = summary.state == LIVE_STATE
    track = _track(path)
    with track.lock:
        if live and _final_on_disk(path, track.checkpoint):
            log.warning("track %s: a late live summary is not written over its final one", summary.name)
            return False
        temporary = temporary_path(folder, summary.name)
        tmp = reserve if not live and reserve.exists() else temporary
        try:
            _write_into(tmp, data)
            if not (live and _exchange(tmp, path)):
                os.replace(tmp, path)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError as undo:
                log.error("cannot remove %s: %s", tmp, undo)
            if not live:
                raise
            log.error("cannot write the live summary %s, the previous one stays: %s", path, describe(exc))
            return False
        if live:
            track.checkpoint = _stamp(path)
            _reserve(reserve, max(RESERVE_BYTES, 2 * len(data)))
        else:
            temporary.unlink(missing_ok=True)  # the previous checkpoint, left by the last exchange
            _forget(path, track)  # a finished track's entry goes (a service records tracks for months)
    return True


def read_summary(folder: Path, track: str) -> TrackSummary | None:
    """The track's summary, or None when it is missing or unreadable."""
    try:
        return TrackSummary.model_validate_json(summary_path(folder, track).read_bytes())
    except (OSError, ValidationError):
        return None


def _track(path: Path) -> _Track:
    with _tracks_guard:
        track = _tracks.get(path)
        if track is None:
            track = _tracks[path] = _Track(threading.Lock())
        return track


def _forget(path: Path, track: _Track) -> None:
    with _tracks_guard:
        if _tracks.get(path) is track:
            del _tracks[path]


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _final_on_disk(path: Path, checkpoint: Stamp | None) -> bool:
    if checkpoint is not None and _stamp(path) == checkpoint:
        return False  # still the checkpoint this process wrote last
    try:
        state = json.loads(path.read_bytes()).get("state", LIVE_STATE)
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(state, str) and state != LIVE_STATE


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_renameat2 = getattr(_libc, "renameat2", None)
_cannot_exchange: set[int] = set()
"""The devices whose file system refused an exchange (renames there from then on)."""


def _exchange(a: Path, b: Path) -> bool:
    """Swap the files `a` and `b` atomically; False (nothing done) where that is not possible: no such
    system call or file system support, or `b` does not exist yet."""
    if _renameat2 is None:
        return False
    device = os.stat(a).st_dev
    if device in _cannot_exchange:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        _cannot_exchange.add(device)
    elif code != errno.ENOENT:
        raise OSError(code, os.strerror(code), str(b))
    return False


def _write_into(tmp: Path, data: bytes) -> None:
    """Write `data` as the whole of `tmp`, over the blocks it already holds (no O_TRUNC)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        view = memoryview(data)
        done = 0
        while done < len(data):
            written = os.pwrite(fd, view[done:], done)
            if not written:
                raise OSError(f"{tmp}: the file accepted no bytes")
            done += written
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _reserve(reserve: Path, size: int) -> None:
    """Make sure `size` bytes are allocated to the reserved file (a smaller reserve is kept if not)."""
    try:
        fd = os.open(reserve, os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            if os.fstat(fd).st_size < size:
                os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("cannot set space aside for the final summary in %s: %s", reserve, describe(exc))
