"""Frames of a Janus recording (.mjr) as `janus-pp-rec` (Debian's janus-tools) extracts them, and as
`callvault import-mjr` stored them, in a form to compare bit for bit: VP8/VP9/Opus frames as they are,
H.264 access units as their coded-slice NAL units (janus-pp-rec writes Annex B, CallVault
length-prefixed NAL units; the slices are what must match)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from media import read_packets, slice_nals

EXTENSIONS = {"vp8": "webm", "vp9": "webm", "h264": "mkv", "opus": "opus"}


def header_of(mjr: Path) -> dict[str, object]:
    out = subprocess.run(["janus-pp-rec", "--json", str(mjr)], capture_output=True, timeout=60, check=True)
    header: dict[str, object] = json.loads(out.stdout)
    return header


def _digests(frames: list[bytes], codec: str) -> list[str]:
    if codec == "h264":
        return [hashlib.sha256(b"".join(slice_nals(f))).hexdigest() for f in frames]
    return [hashlib.sha256(f).hexdigest() for f in frames]


def janus_pp_rec_frames(mjr: Path, out_dir: Path) -> list[str]:
    """SHA-256 of each frame janus-pp-rec writes for `mjr`."""
    codec = str(header_of(mjr)["c"])
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{mjr.stem}.{EXTENSIONS[codec]}"
    subprocess.run(["janus-pp-rec", str(mjr), str(out)], capture_output=True, timeout=120, check=True)
    return _digests(read_packets(out).data, codec)


def our_frames(folder: Path, mjr: Path) -> list[str]:
    """SHA-256 of each frame of the track `import-mjr` made of `mjr` in recording `folder`."""
    record = json.loads((folder / "janus-import.json").read_text())
    (source,) = [s for s in record["sources"] if s["file"] == mjr.name]
    summary = json.loads((folder / f"{source['track']}.json").read_text())
    codec = str(header_of(mjr)["c"])
    return _digests(read_packets(folder / summary["file"]).data, codec)
