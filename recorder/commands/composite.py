"""`callvault composite RECORDING`: one synchronized video (or audio mix) of a whole recorded call.

RECORDING is a recording folder, or a recording id found under `<data dir>/recordings/` (--data-dir, env
CALLVAULT_DATA_DIR, default ./callvault-data: the service's data folder, while it keeps the local copy).

An encrypted recording as stored (its manifest and `.age` objects, e.g. copied from the bucket) is built
with `--identity KEYFILE`: its files are decrypted into a private temporary folder (checked against the
manifest's plaintext hashes), the composite is built from there and written to --out (default
`<recording id>-composite.<ext>` in the current folder), and the temporary plaintext is deleted."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from postprocess.composite import build_composite
from postprocess.layout import LayoutKind
from postprocess.options import CompositeError, CompositeOptions, OutputFormat, Profile
from recorder.config_errors import describe
from recorder.crypto.age import CryptoError, read_identities
from recorder.manifest import MANIFEST_NAME, FolderSource, Manifest
from recorder.manifest.restore import RestoreError, restore_recording


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("composite", help="build one synchronized video of a recorded call")
    p.add_argument("folder", type=Path, metavar="RECORDING", help="a recording folder or a recording id")
    p.add_argument("--data-dir", type=Path, help="the service's data folder, to find a recording id in")
    p.add_argument("--layout", choices=[k.value for k in LayoutKind], default=LayoutKind.GRID.value)
    p.add_argument("--profile", choices=[k.value for k in Profile], default=Profile.HD.value)
    p.add_argument("--format", choices=[k.value for k in OutputFormat], default=OutputFormat.MP4.value)
    p.add_argument("--audio-only", action="store_true", help="only the audio mix")
    p.add_argument("--out", type=Path, help="output file (default: composite.<ext> in the folder)")
    p.add_argument("--fps", type=int, default=25, help="output frame rate (default 25)")
    p.add_argument("--video-bitrate", type=int, help="bit/s (default: 800k sd, 2M hd, 4M fhd)")
    p.add_argument("--audio-bitrate", type=int, default=128_000, help="bit/s (default 128k)")
    p.add_argument("--webm-codec", choices=["vp8", "vp9"], default="vp8")
    p.add_argument("--preset", default=CompositeOptions().preset, help="x264 preset (MP4)")
    p.add_argument("--no-names", action="store_true", help="no names, roles or join/leave notices")
    p.add_argument("--no-timestamp", action="store_true", help="no UTC date and time on the frames")
    p.add_argument(
        "--parallel", type=int, default=1, help="video parts encoded at once, 0: one per core (default 1)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--identity", type=Path, metavar="KEYFILE", help="age identity: build from an encrypted recording"
    )
    p.set_defaults(func=run)


class ProgressBar:
    """A one-line progress bar on a terminal (stderr); nothing when stderr is not a terminal."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.active = stream.isatty()

    def __call__(self, done: float, total: float) -> None:
        if not self.active:
            return
        frac = min(1.0, done / total) if total > 0 else 1.0
        filled = round(frac * self.width)
        elapsed = time.monotonic() - self.started
        speed = done / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rcomposite [{bar}] {frac:4.0%} {done:7.1f}/{total:.1f} s  {speed:5.1f}x")
        self.stream.flush()

    def close(self) -> None:
        if self.active:
            self.stream.write("\n")
            self.stream.flush()


def as_flags(problems: str) -> str:
    """`video_bitrate: must be...` as the command line spells the setting: `--video-bitrate: ...`."""
    return re.sub(r"(^|; )([a-z_]+):", lambda m: f"{m[1]}--{m[2].replace('_', '-')}:", problems)


def recordings_dir(data_dir: Path | None) -> Path:
    """Where the service keeps recordings: `--data-dir`, else $CALLVAULT_DATA_DIR, else ./callvault-data."""
    return (data_dir or Path(os.environ.get("CALLVAULT_DATA_DIR") or "callvault-data")) / "recordings"


def recording_folder(target: Path, data_dir: Path | None) -> Path | None:
    """The folder `target` names: itself, or a recording id under the data folder's recordings/."""
    if target.is_dir():
        return target
    if len(target.parts) != 1:
        return None
    folder = recordings_dir(data_dir) / target.name
    return folder if folder.is_dir() else None


def _encrypted(folder: Path) -> bool:
    """Whether the folder holds a recording as stored encrypted (manifest with `.age` objects)."""
    try:
        manifest = Manifest.model_validate_json((folder / MANIFEST_NAME).read_bytes())
    except (OSError, ValidationError):
        return False
    return any(o.encryption is not None and (folder / o.stored_name).is_file() for o in manifest.objects)


def _decrypted(
    folder: Path, identity: Path, tmp: Path, options: CompositeOptions
) -> tuple[Path, CompositeOptions]:
    """Restore the recording into `tmp/recording` (private); the output goes outside it."""
    identities = read_identities(identity)
    tmp.chmod(0o700)
    restored = restore_recording(FolderSource(folder), identities, tmp / "recording")
    if restored.failed:
        name, why = next(iter(sorted(restored.failed.items())))
        raise RestoreError(f"{name}: {why}")
    if options.out is None:
        out = Path.cwd() / f"{restored.recording_id}-composite.{options.format.value}"
        options = options.model_copy(update={"out": out})
    return tmp / "recording", options


def run(args: argparse.Namespace) -> int:
    folder = recording_folder(args.folder, args.data_dir)
    if folder is None:
        print(
            f"callvault: error: {args.folder} is not a recording folder, nor a recording id under"
            f" {recordings_dir(args.data_dir)}",
            file=sys.stderr,
        )
        return 2
    args.folder = folder
    try:
        options = CompositeOptions(
            layout=LayoutKind(args.layout),
            profile=Profile(args.profile),
            format=OutputFormat(args.format),
            audio_only=args.audio_only,
            out=args.out,
            fps=args.fps,
            video_bitrate=args.video_bitrate,
            audio_bitrate=args.audio_bitrate,
            webm_codec=args.webm_codec,
            preset=args.preset,
            names=not args.no_names,
            timestamp=not args.no_timestamp,
            parallel=args.parallel,
        )
    except ValidationError as exc:
        print(f"callvault: error: invalid option: {as_flags(describe(exc))}", file=sys.stderr)
        return 2
    encrypted = _encrypted(folder)
    if encrypted and args.identity is None:
        print(f"callvault: error: {folder} is encrypted; pass --identity KEYFILE", file=sys.stderr)
        return 2
    bar = ProgressBar(sys.stderr)
    try:
        with tempfile.TemporaryDirectory(prefix="callvault-composite-") as tmp:
            if encrypted:
                folder, options = _decrypted(folder, args.identity, Path(tmp), options)
            result = build_composite(folder, options, progress=None if args.no_progress else bar)
    except (CompositeError, CryptoError, RestoreError) as exc:
        bar.close()
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 2
    bar.close()
    for warning in result.warnings:
        print(f"callvault: warning: {warning}", file=sys.stderr)
    names = ", ".join(p.name for p in result.participants)
    print(
        f"{result.path}: {result.duration:.1f} s, {names}; built in {result.elapsed:.1f} s "
        f"({result.speed:.1f}x real time)"
    )
    return 0
