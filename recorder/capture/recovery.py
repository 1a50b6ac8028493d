"""After a crash: cut each capture segment back to its last whole block (what a SIGKILL can leave
half-written is at most the tail of the last write), so every segment is valid pcapng again. Segments
are not renamed or joined: each is a standalone capture, hashed into the manifest as it is."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from recorder.capture.reader import complete_length
from recorder.capture.writer import CAPTURE_SUFFIX, EXTENSION

log = logging.getLogger(__name__)


def recover_captures(folder: Path) -> list[Path]:
    """Repair every capture segment under `folder` (recursively); returns those that were cut back or
    removed (a file without even a whole header holds nothing)."""
    repaired = []
    for path in sorted(folder.rglob(f"*{CAPTURE_SUFFIX}/*.{EXTENSION}")):
        try:
            if repair_segment(path):
                repaired.append(path)
        except OSError as exc:
            log.error("cannot repair capture segment %s: %s", path, exc)
    return repaired


def repair_segment(path: Path) -> bool:
    """Cut `path` back to its whole blocks; True when it changed."""
    data = path.read_bytes()
    keep = complete_length(data)
    if keep == len(data):
        return False
    if keep == 0:
        path.unlink()
        log.warning("capture segment %s held no whole block: removed", path)
        return True
    with path.open("r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    log.warning(
        "capture segment %s cut back from %d to %d bytes (its last block was partial)", path, len(data), keep
    )
    return True
