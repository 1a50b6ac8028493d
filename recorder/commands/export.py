"""`callvault export --config FILE --out DIR [filters] [--include KINDS]`: export recordings as evidence
bundles without the API (operators on the host).

It opens the catalog and the store `callvault serve` uses with the same configuration, selects the
finished recordings the filters match (the search API's filters), and writes one evidence bundle per
recording into DIR/<job id>/ with the export's signed index (export.json, export.json.sig), as an export
job through the API does; the job and its result are in the catalog and the audit log (created by
`cli:<user>`). Check a bundle with `python -m recorder.lifecycle.bundle_verify BUNDLE --public-key KEY`.

Exit 0 when every bundle was written, 1 when the job failed, 2 on bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from pydantic import ValidationError

from recorder.api.audit import AuditLog
from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.files import StorageAccess
from recorder.config_errors import describe
from recorder.lifecycle.exports import ExportError, ExportRunner
from recorder.lifecycle.models import ExportFilter, ExportRequest, Include, JobState
from recorder.lifecycle.service import KEY_FILE
from recorder.manifest.signing import SigningKeyError, SigningSettings, load_signing_key
from recorder.service.settings import ServiceSettings, load_settings
from recorder.storage.factory import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="export recordings as signed evidence bundles (without the API)",
        description="Write one evidence bundle per recording the filters select (the search API's filters)"
        " into OUT/<job id>/, with the export's signed index. Uses the catalog, store and signing key of"
        " `callvault serve` with the same configuration.",
    )
    p.add_argument("--config", type=Path, default=None, help="TOML configuration file (as for serve)")
    p.add_argument("--out", type=Path, required=True, help="folder to write the bundles into")
    p.add_argument("--room", help="recordings of this room")
    p.add_argument("--participant", help="with this participant (id or display name)")
    p.add_argument("--call-id", help="of this call")
    p.add_argument("--tag", action="append", default=[], help="'key' or 'key:value'; repeat for AND")
    p.add_argument("--status", choices=("finished", "failed"), help="only finished or only failed ones")
    p.add_argument("--started-after", help="RFC 3339 date-time, e.g. 2026-11-29T00:00:00Z")
    p.add_argument("--started-before", help="RFC 3339 date-time")
    p.add_argument(
        "--include",
        default="originals,composite,manifests,audit",
        help="comma-separated: " + ", ".join(i.value for i in Include),
    )
    p.set_defaults(func=run)


def request_of(args: argparse.Namespace) -> ExportRequest:
    """The export request the options describe (ValidationError names the bad one)."""
    fields = {
        "room": args.room,
        "participant": args.participant,
        "call_id": args.call_id,
        "tag": args.tag,
        "status": args.status,
        "started_after": args.started_after,
        "started_before": args.started_before,
    }
    return ExportRequest.model_validate(
        {
            "filter": ExportFilter.model_validate({k: v for k, v in fields.items() if v not in (None, [])}),
            "include": [i.strip() for i in args.include.split(",") if i.strip()],
        }
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        request = request_of(args)
    except (ValidationError, OSError, ValueError) as exc:
        print(f"callvault export: error: {describe(exc, args.config)}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(export(settings, request, args.out.absolute()))
    except (ExportError, SigningKeyError, OSError) as exc:
        print(f"callvault export: error: {exc}", file=sys.stderr)
        return 2


async def export(settings: ServiceSettings, request: ExportRequest, out: Path) -> int:
    catalog_path = settings.api.catalog_location(settings.data_dir)  # a SQLite file, or api.catalog_url
    if catalog_path.path is not None and not catalog_path.path.is_file():
        raise ExportError(
            f"no catalog at {catalog_path.path} (api.catalog_path): nothing was recorded with the API"
        )
    access: StorageAccess | None = None
    signing = SigningSettings(key_file=settings.data_dir / KEY_FILE)
    if settings.archive is not None:
        archive = settings.archive.resolved(settings.data_dir)
        access = StorageAccess(open_store(archive.storage), archive.storage.key_template)
        signing = archive.signing
    key = load_signing_key(signing)
    db = await asyncio.to_thread(Database, catalog_path)
    try:
        lifecycle = settings.lifecycle.model_copy(update={"export_dir": out})
        runner = ExportRunner(
            lifecycle,
            settings.data_dir,
            db,
            Catalog(db),
            AuditLog(db),
            lambda: access,
            lambda: key,
            lambda: None,
        )
        job = await runner.create(request, f"cli:{getpass.getuser()}")
        await runner.wait(job.job_id)
        done = await runner.get(job.job_id)
    finally:
        await asyncio.to_thread(db.close)
    assert done is not None
    for bundle in done.bundles:
        print(f"{out / done.job_id / bundle.name}  {bundle.sha256}")
    if done.state is not JobState.FINISHED:
        print(f"callvault export: job {done.job_id} failed: {done.error}", file=sys.stderr)
        return 1
    print(f"export {done.job_id}: {done.done} recordings, index {out / done.job_id / 'export.json'}")
    return 0
