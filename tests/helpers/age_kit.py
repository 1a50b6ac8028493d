"""The real `age` tools in tests: new identity files, decryption by the standard tool."""

from __future__ import annotations

import subprocess
from pathlib import Path


def keygen(path: Path) -> str:
    """A new age identity file at `path` (age-keygen); returns its public recipient ('age1...')."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    out = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def age_decrypt(identity: Path, data: bytes) -> bytes:
    """`age -d -i identity` of `data`."""
    return subprocess.run(
        ["age", "-d", "-i", str(identity)], input=data, check=True, capture_output=True
    ).stdout
