"""An export to a customer's bucket on a second, independent S3 server: s3rver (an S3 implementation in
Node, npm package pinned in tests/lifecycle/s3rver, installed by `make s3rver`), run as its own process on
127.0.0.1. The other S3 tests use moto_server; this one checks CallVault's client against another
server's reading of the protocol (SigV4, PUT, listing, GET). s3rver has no object lock: a destination
asking for WORM retention there fails with one clear error naming the bucket, and with `worm` off the
bundles and the signed index land and verify after a download."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from vault import Vault, close, open_vault

from recorder.api.files import StorageAccess
from recorder.lifecycle.bundle_verify import verify_bundle
from recorder.lifecycle.exports import ExportRunner
from recorder.lifecycle.models import Destination, ExportFilter, ExportRequest, JobState
from recorder.lifecycle.settings import LifecycleSettings
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE
from recorder.storage.local import LocalStore
from recorder.storage.s3 import S3Store
from recorder.storage.settings import S3Settings

S3RVER = Path(__file__).parent / "s3rver" / "node_modules" / ".bin" / "s3rver"
BUCKET = "customer-exports"

pytestmark = pytest.mark.skipif(not S3RVER.exists(), reason="s3rver is installed by `make s3rver`")


@pytest.fixture
def s3rver(tmp_path: Path) -> Iterator[str]:
    """A running s3rver with the customer's bucket; its endpoint (host:port, the port from the OS)."""
    data = tmp_path / "s3rver-data"
    data.mkdir()
    proc = subprocess.Popen(
        [str(S3RVER), "-d", str(data), "-a", "127.0.0.1", "-p", "0", "--configure-bucket", BUCKET],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # it says where it listens once the bucket exists; ends if it dies
            seen.append(line)
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if found:
                yield f"127.0.0.1:{found.group(1)}"
                break
        else:
            pytest.fail(f"s3rver did not start: {''.join(seen)}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def customer(endpoint: str, worm: bool) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "bucket": BUCKET,
        "secure": False,
        "access_key": "S3RVER",  # s3rver's own credentials; it checks the SigV4 signature with them
        "secret_key": "S3RVER",
        "http_retries": 0,
        "worm": {"enabled": worm},
    }


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    made = open_vault(tmp_path, LocalStore(tmp_path / "store"))
    await asyncio.to_thread(made.add, "cust-1", "quality")
    await asyncio.to_thread(made.add, "cust-2", "quality")
    yield made
    await close(made)


def runner(vault: Vault, tmp_path: Path, endpoint: str, worm: bool, key: Ed25519PrivateKey) -> ExportRunner:
    access = StorageAccess(vault.store, DEFAULT_KEY_TEMPLATE)
    settings = LifecycleSettings.model_validate(
        {"export_destinations": {"quality-team": customer(endpoint, worm)}}
    )
    return ExportRunner(
        settings, tmp_path, vault.db, vault.catalog, vault.audit, lambda: access, lambda: key, lambda: None
    )


REQUEST = ExportRequest(
    filter=ExportFilter(room="quality"),
    destination=Destination(type="s3", name="quality-team", prefix="callvault/nightly"),
)


async def test_an_export_lands_in_a_bucket_of_another_s3_server(
    vault: Vault, tmp_path: Path, s3rver: str
) -> None:
    key = Ed25519PrivateKey.generate()
    exports = runner(vault, tmp_path, s3rver, False, key)
    job = await exports.create(REQUEST, "auditor-1")
    await exports.wait(job.job_id)
    done = await exports.get(job.job_id)
    assert done is not None and done.state is JobState.FINISHED, done
    store = S3Store(S3Settings.model_validate(customer(s3rver, False)))
    prefix = f"callvault/nightly/{job.job_id}/"
    listed = await asyncio.to_thread(lambda: sorted(o.key for o in store.list(prefix)))
    assert listed == [prefix + n for n in ("cust-1.zip", "cust-2.zip", "export.json", "export.json.sig")]
    for bundle in done.bundles:
        fetched = tmp_path / f"fetched-{bundle.recording_id}.zip"
        fetched.write_bytes(await asyncio.to_thread(store.get_bytes, bundle.location))
        assert fetched.stat().st_size == bundle.size
        report = verify_bundle(fetched, key.public_key())
        assert all("manifest" in p for p in report.problems), report.problems  # synthetic manifest only
        assert report.files_checked > 3
    index = await asyncio.to_thread(store.get_bytes, prefix + "export.json")
    assert job.job_id.encode() in index


async def test_worm_on_a_server_without_object_lock_is_one_clear_error(
    vault: Vault, tmp_path: Path, s3rver: str
) -> None:
    exports = runner(vault, tmp_path, s3rver, True, Ed25519PrivateKey.generate())
    job = await exports.create(REQUEST, "auditor-1")
    await exports.wait(job.job_id)
    done = await exports.get(job.job_id)
    assert done is not None and done.state is JobState.FAILED
    assert done.error is not None and f"object lock of {BUCKET}" in done.error, done.error
