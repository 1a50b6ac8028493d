"""`callvault import-mjr FILE...`: turn recordings made by Janus's own recorder (.mjr) into CallVault
recordings (recorder/mjr/importer.py): per-participant files holding the frames `janus-pp-rec` extracts,
track summaries, `janus-import.json` and a signed manifest; with the service's data folder, a catalog
entry too.

Where they go:
- `--out DIR`: a folder per recording in DIR, signed with `--signing-key FILE` (a PEM Ed25519 key; created
  when missing) or the key in $CALLVAULT_SIGNING_KEY; no catalog.
- otherwise the service's data folder: `--data-dir`, else $CALLVAULT_DATA_DIR, else ./callvault-data, or
  data_dir from `--config` (the TOML `callvault serve` reads; `--data-dir` overrides it). The recordings
  go to `<data_dir>/recordings/<id>`, signed with the service's key (archive.signing with --config; else
  $CALLVAULT_SIGNING_KEY or `<data_dir>/callvault-signing-key.pem`, created when missing, as serve does),
  listed in its catalog (api.catalog_url; else api.catalog_path, `<data_dir>/catalog.sqlite3`), so the API and
  `callvault verify` find them like live recordings.

One line per file that cannot be imported (`callvault: error: FILE: why`), the others are imported;
exit 0 when every file was imported, 1 when some were not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.models import RecordingStatus
from recorder.api.settings import ApiSettings
from recorder.config_errors import describe
from recorder.db.errors import CATALOG_ERRORS
from recorder.db.url import CatalogLocation
from recorder.manifest.signing import SigningKeyError, SigningSettings, load_signing_key
from recorder.mjr.importer import ImportOutcome, import_files
from recorder.models import TrackSummary
from recorder.recording import RecordingInfo
from recorder.service.settings import load_settings

log = logging.getLogger("callvault.import_mjr")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import-mjr",
        help="import Janus recordings (.mjr) as CallVault recordings",
        description="Import recordings made by Janus's recorder (.mjr files; a VideoRoom's files of one"
        " call become one recording, a track per file) with summaries, janus-import.json and a signed"
        " manifest. Unreadable files are reported one per line; the rest are imported.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help=".mjr files")
    p.add_argument("--out", type=Path, help="folder to import into (no catalog entry)")
    p.add_argument(
        "--signing-key",
        type=Path,
        help="with --out: PEM Ed25519 key to sign manifests with (created if missing)",
    )
    p.add_argument("--config", type=Path, help="the service's TOML configuration (as for serve)")
    p.add_argument("--data-dir", type=Path, help="the service's data folder (overrides the configuration)")
    p.set_defaults(func=run)


def fail(message: str, status: int = 2) -> int:
    print(f"callvault: error: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    if args.out is not None and (args.config is not None or args.data_dir is not None):
        return fail("--out imports into a folder of your own: leave out --config and --data-dir")
    if args.signing_key is not None and args.out is None:
        return fail("--signing-key goes with --out (the data folder's recordings use the service's key)")
    catalog_path: CatalogLocation | None = None
    try:
        if args.out is not None:
            out = args.out
            signing = SigningSettings(key_file=args.signing_key or out / "callvault-signing-key.pem")
        elif args.config is not None:
            overrides = {"data_dir": args.data_dir.resolve()} if args.data_dir is not None else {}
            settings = load_settings(args.config, **overrides)
            out = settings.data_dir / "recordings"
            if settings.archive is not None:
                signing = settings.archive.resolved(settings.data_dir).signing
            else:
                signing = SigningSettings(key_file=settings.data_dir / SigningSettings().key_file)
            catalog_path = settings.api.catalog_location(settings.data_dir)
        else:
            data_dir = (
                args.data_dir or Path(os.environ.get("CALLVAULT_DATA_DIR") or "callvault-data")
            ).resolve()
            out = data_dir / "recordings"
            signing = SigningSettings(key_file=data_dir / SigningSettings().key_file)
            # the service's catalog: CALLVAULT_API__CATALOG_URL as `serve` reads it, else the SQLite file
            url = os.environ.get("CALLVAULT_API__CATALOG_URL")
            api = ApiSettings.model_validate({"catalog_url": url} if url else {})
            catalog_path = api.catalog_location(data_dir)
    except (ValidationError, OSError, ValueError) as exc:
        return fail(f"invalid configuration: {describe(exc, args.config)}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        key = load_signing_key(signing)
    except SigningKeyError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot use {out}: {exc.strerror or exc}")
    return _import(args.files, out, key, catalog_path)


def _import(
    files: list[Path], out: Path, key: Ed25519PrivateKey, catalog_path: CatalogLocation | None
) -> int:
    catalog = None
    if catalog_path is not None:
        try:
            catalog = Catalog(Database(catalog_path))
        except CATALOG_ERRORS + (OSError,) as exc:  # noqa: RUF005 (mypy reads a starred tuple as one type)
            return fail(f"cannot open the catalog {catalog_path.redacted()}: {exc}")

    def register(info: RecordingInfo, tracks: list[TrackSummary]) -> None:
        if catalog is None:
            return
        failed = any(t.state != "complete" for t in tracks)
        status = RecordingStatus.FAILED if failed else RecordingStatus.FINISHED

        def write() -> None:
            catalog.upsert_recording(info, status)
            for t in tracks:
                catalog.add_track(info.recording_id, info.track_participants.get(t.name), t)
                catalog.add_bytes(info.recording_id, sum(s.size for s in t.segments))

        catalog.db.submit(write).result()

    try:
        outcome = import_files(files, out, key, on_recording=register)
    finally:
        if catalog is not None:
            catalog.db.close()
    return report(outcome)


def report(outcome: ImportOutcome) -> int:
    for path, why in outcome.failed:
        print(f"callvault: error: {path}: {why}", file=sys.stderr)
    for path, why in outcome.skipped:
        print(f"callvault: skipped {path}: {why}", file=sys.stderr)
    for recording in outcome.recordings:
        for warning in recording.warnings:
            print(f"callvault: warning: {warning}", file=sys.stderr)
        print(f"recording {recording.planned.recording_id}: {recording.folder}")
        for t in recording.tracks:
            where = recording.folder / t.file if t.file else "(no frames)"
            print(
                f"  {t.name}: {t.codec.value} {t.state}, {t.frames} frames ({t.keyframes} keyframes),"
                f" {t.packets_lost} packets lost, {t.frames_dropped} frames dropped -> {where}"
            )
    bad = outcome.failed or any(not r.ok for r in outcome.recordings)
    if not outcome.recordings and not outcome.failed:
        print("callvault: nothing imported", file=sys.stderr)
    return 1 if bad else 0
