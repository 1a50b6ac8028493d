"""A real small filesystem for disk-full tests: a tmpfs of a few MiB mounted under the test's temporary
folder, and a filler file that leaves an exact amount of it free. Writes past that fail in the kernel with
ENOSPC, as on a full disk; nothing is simulated.

    with small_disk(tmp_path) as disk:   # pytest.skip unless mount(8) works here (root, CAP_SYS_ADMIN)
        fill(disk, leave=300_000)        # now about 300 kB are free
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = "filler"


@contextlib.contextmanager
def small_disk(parent: Path, size: str = "2M") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `parent/disk`, unmounted on exit."""
    mount_point = parent / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=10, check=False)


def free_bytes(disk: Path) -> int:
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave: int) -> int:
    """Grow the filler file until only about `leave` bytes are free; returns the bytes free."""
    filler = disk / FILLER
    size = filler.stat().st_size if filler.exists() else 0
    with filler.open("ab") as f:
        f.write(b"\0" * max(0, free_bytes(disk) - leave))
    assert filler.stat().st_size >= size
    return free_bytes(disk)


def make_room(disk: Path) -> None:
    """Free the space the filler took."""
    (disk / FILLER).unlink(missing_ok=True)
