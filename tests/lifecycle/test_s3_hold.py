"""Legal hold and retention deletion against the real S3 server process (moto_server, a bucket with object
lock): the hold is S3 object legal hold ON/OFF on every object; while it is on neither CallVault nor
anyone else can remove an object version; lifted, retention deletes every version for good."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio.error import S3Error
from s3_fixture import ACCESS_KEY, SECRET_KEY, MotoServer
from vault import DAY, OBJECTS, T0, Vault, close, open_vault

from recorder.lifecycle.rules import KeepPeriods
from recorder.lifecycle.settings import LifecycleSettings
from recorder.storage.base import Retention
from recorder.storage.s3 import S3Store
from recorder.storage.settings import RetentionMode, S3Settings

LOCKED_BUCKET = "lifecycle-locked"
"""Object lock without a default retention (the shared 'locked' bucket may have one from other tests)."""
SETTINGS = LifecycleSettings(defaults=KeepPeriods(originals=30, composite=30), retry_seconds=60)


@pytest.fixture
async def s3_vault(tmp_path: Path, moto_server: MotoServer) -> AsyncIterator[Vault]:
    client = moto_server.client()
    if not client.bucket_exists(LOCKED_BUCKET):
        client.make_bucket(LOCKED_BUCKET, object_lock=True)
    settings = S3Settings.model_validate(
        {
            "endpoint": moto_server.endpoint,
            "bucket": LOCKED_BUCKET,
            "secure": False,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "http_retries": 0,
            "worm": {"enabled": False},  # the test places its own locks
        }
    )
    made = open_vault(tmp_path, S3Store(settings))
    yield made
    await close(made)


def versions(server: MotoServer, prefix: str) -> list[tuple[str, str | None]]:
    return [
        (o.object_name or "", o.version_id)
        for o in server.client().list_objects(
            LOCKED_BUCKET, prefix=prefix, recursive=True, include_version=True
        )
    ]


async def test_legal_hold_is_s3_object_legal_hold(s3_vault: Vault, moto_server: MotoServer) -> None:
    vault = s3_vault
    vault.add("s3-held")
    vault.hold("s3-held", True)
    report = await vault.holds().apply_pending()
    assert report.applied == {"s3-held": len(OBJECTS)}, report.failed
    client = moto_server.client()
    keys = vault.keys("s3-held")
    assert all(client.is_object_legal_hold_enabled(LOCKED_BUCKET, k) for k in keys)
    name, version = versions(moto_server, vault.prefix("s3-held"))[0]
    with pytest.raises(S3Error) as refused:
        client.remove_object(LOCKED_BUCKET, name, version_id=version)  # nobody deletes a held version
    assert refused.value.code == "AccessDenied"

    scheduler = vault.scheduler(SETTINGS)
    vault.clock.now = T0 + 600 + 31 * DAY
    assert (await scheduler.run_once()).blocked == {"s3-held": "legal hold"}

    vault.hold("s3-held", False)
    await vault.holds().apply_pending()
    assert not any(client.is_object_legal_hold_enabled(LOCKED_BUCKET, k) for k in keys)
    vault.clock.now += 61
    report = await scheduler.run_once()
    assert report.deleted_whole == ["s3-held"], report.blocked
    assert versions(moto_server, vault.prefix("s3-held")) == []  # every version, not a delete marker


async def test_a_hold_placed_in_the_bucket_directly_blocks_deletion(
    s3_vault: Vault, moto_server: MotoServer
) -> None:
    vault = s3_vault
    vault.add("s3-foreign")
    moto_server.client().enable_object_legal_hold(LOCKED_BUCKET, vault.keys("s3-foreign")[0])
    vault.clock.now = T0 + 600 + 31 * DAY
    report = await vault.scheduler(SETTINGS).run_once()
    assert "under legal hold in the store" in report.blocked["s3-foreign"]
    assert len(versions(moto_server, vault.prefix("s3-foreign"))) == len(OBJECTS)


async def test_object_lock_retention_postpones_deletion(s3_vault: Vault, moto_server: MotoServer) -> None:
    vault = s3_vault
    vault.add("s3-worm", objects={"manifest.json": b"{}"})
    until = datetime.now(UTC) + timedelta(days=2)
    key = vault.prefix("s3-worm") + "1001-video-0.webm"
    vault.store.put_bytes(key, b"media", retention=Retention(mode=RetentionMode.GOVERNANCE, until=until))
    vault.clock.now = datetime.now(UTC).timestamp()
    report = await vault.scheduler(SETTINGS).run_once()
    assert "object lock until" in report.blocked["s3-worm"]
    assert vault.row("s3-worm")["next_deletion"] == pytest.approx(until.timestamp(), abs=1)
    assert len(versions(moto_server, vault.prefix("s3-worm"))) == 2


async def test_an_export_lands_in_the_customers_bucket(tmp_path: Path, moto_server: MotoServer) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from recorder.api.files import StorageAccess
    from recorder.lifecycle.bundle_verify import verify_bundle
    from recorder.lifecycle.exports import ExportRunner
    from recorder.lifecycle.models import Destination, ExportFilter, ExportRequest, JobState
    from recorder.storage.keys import DEFAULT_KEY_TEMPLATE
    from recorder.storage.local import LocalStore

    client = moto_server.client()
    if not client.bucket_exists("customer-exports"):
        client.make_bucket("customer-exports")
    vault = open_vault(tmp_path, LocalStore(tmp_path / "store"))
    try:
        vault.add("cust-1", room="quality")
        access = StorageAccess(vault.store, DEFAULT_KEY_TEMPLATE)
        customer = {
            "endpoint": moto_server.endpoint,
            "bucket": "customer-exports",
            "secure": False,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "http_retries": 0,
        }
        key = Ed25519PrivateKey.generate()
        runner = ExportRunner(
            LifecycleSettings.model_validate({"export_destinations": {"quality-team": customer}}),
            tmp_path,
            vault.db,
            vault.catalog,
            vault.audit,
            lambda: access,
            lambda: key,
            lambda: None,
        )
        request = ExportRequest(
            filter=ExportFilter(room="quality"),
            destination=Destination(type="s3", name="quality-team", prefix="callvault/nightly"),
        )
        job = await runner.create(request, "auditor-1")
        await runner.wait(job.job_id)
        done = await runner.get(job.job_id)
        assert done is not None and done.state is JobState.FINISHED, done
        (bundle,) = done.bundles
        assert bundle.location == f"callvault/nightly/{job.job_id}/cust-1.zip"
        keys = sorted(o.object_name or "" for o in client.list_objects("customer-exports", recursive=True))
        assert keys == [
            f"callvault/nightly/{job.job_id}/cust-1.zip",
            f"callvault/nightly/{job.job_id}/export.json",
            f"callvault/nightly/{job.job_id}/export.json.sig",
        ]
        assert runner.bundle_path(job.job_id, "cust-1") is None  # sent, not kept here
        fetched = tmp_path / "fetched.zip"
        client.fget_object("customer-exports", bundle.location, str(fetched))
        report = verify_bundle(fetched, key.public_key())
        assert all("manifest" in p for p in report.problems), report.problems  # synthetic manifest only
        assert report.files_checked > 3
    finally:
        await close(vault)
