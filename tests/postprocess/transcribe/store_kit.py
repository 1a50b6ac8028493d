"""The transcript service's settings on the session's S3 server (moto_server) reached through a TcpRelay
that a test can cut (the store "goes away") and restore, and the checks of what the store then holds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from archive_kit import TcpRelay
from janus_fixture import free_port
from s3_fixture import ACCESS_KEY, PLAIN_BUCKET, SECRET_KEY, MotoServer

from recorder.cli import main
from recorder.manifest.signing import load_signing_key, public_key_pem
from recorder.service.settings import ServiceSettings


async def relay_to(server: MotoServer) -> TcpRelay:
    relay = TcpRelay(free_port(), int(server.endpoint.rsplit(":", 1)[1]))
    await relay.restore()
    return relay


def on_s3(settings: ServiceSettings, endpoint: str, **archive: Any) -> ServiceSettings:
    """`settings` with the archive storing into the plain bucket at `endpoint` (no client retries, short
    timeouts: a cut store fails at once), and `archive` fields overridden."""
    raw = settings.model_dump(mode="python", exclude_unset=True)
    raw["archive"]["storage"] = {
        "backend": "s3",
        "s3": {
            "endpoint": endpoint,
            "bucket": PLAIN_BUCKET,
            "secure": False,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "http_retries": 0,
            "connect_timeout": 1,
            "read_timeout": 5,
        },
    }
    raw["archive"]["spool"] = {"poll_interval": 0.1, "retry_initial": 0.1, "retry_max": 0.5}
    raw["archive"].update(archive)
    return ServiceSettings.model_validate(raw)


def stored(server: MotoServer, prefix: str) -> set[str]:
    """Names (relative to the prefix) of the objects the bucket holds under it."""
    client = server.client()
    return {
        str(o.object_name)[len(prefix) :]
        for o in client.list_objects(PLAIN_BUCKET, prefix=prefix, recursive=True)
    }


async def verify_cli(settings: ServiceSettings, endpoint: str, prefix: str, work: Path) -> int:
    """`callvault verify s3://plain/PREFIX --public-key` with the service's key: its exit status."""
    pem = work / "signing.pub.pem"
    assert settings.archive is not None
    pem.write_bytes(public_key_pem(load_signing_key(settings.archive.signing)))
    args = ["verify", f"s3://{PLAIN_BUCKET}/{prefix}", "--public-key", str(pem), "--s3-endpoint", endpoint,
            "--s3-access-key", ACCESS_KEY, "--s3-secret-key", SECRET_KEY, "--no-s3-secure"]  # fmt: skip
    return await asyncio.to_thread(main, args)


def with_archive(settings: ServiceSettings, **archive: Any) -> ServiceSettings:
    """`settings` with `archive` fields overridden."""
    raw = settings.model_dump(mode="python", exclude_unset=True)
    raw["archive"].update(archive)
    return ServiceSettings.model_validate(raw)
