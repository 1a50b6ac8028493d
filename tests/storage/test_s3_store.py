"""S3Store against a real S3 server (moto_server): objects, presigned URLs, WORM retention."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from s3_fixture import ACCESS_KEY, LOCKED_BUCKET, PLAIN_BUCKET, SECRET_KEY, MotoServer

from recorder.storage import ObjectNotFoundError, RetentionMode, S3Settings, S3Store, StorageUnavailableError


def s3_settings(server: MotoServer, bucket: str, **extra: object) -> S3Settings:
    return S3Settings.model_validate(
        {
            "endpoint": server.endpoint,
            "bucket": bucket,
            "secure": False,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "http_retries": 0,
            "connect_timeout": 2,
            **extra,
        }
    )


def test_put_stat_list_get_presign(moto_server: MotoServer, tmp_path: Path) -> None:
    store = S3Store(s3_settings(moto_server, PLAIN_BUCKET))
    src = tmp_path / "seg.webm"
    src.write_bytes(os.urandom(100_000))
    result = store.put_file("t1/rec/seg.webm", src, "video/webm", {"Track": "video-1"})
    assert result.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert result.retention is None
    assert not store.object_lock_enabled()
    info = store.stat("t1/rec/seg.webm")
    assert (info.size, info.content_type) == (100_000, "video/webm")
    assert info.metadata["sha256"] == result.sha256 and info.metadata["track"] == "video-1"
    assert [o.key for o in store.list("t1/")] == ["t1/rec/seg.webm"]
    assert store.sha256("t1/rec/seg.webm") == result.sha256
    url = store.presign_get("t1/rec/seg.webm", timedelta(minutes=10))
    assert "X-Amz-Expires=600" in url
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == src.read_bytes()
    with pytest.raises(ObjectNotFoundError):
        store.stat("t1/rec/none")
    store.delete("t1/rec/seg.webm")
    assert list(store.list("t1/")) == []


def test_worm_put_carries_retention(moto_server: MotoServer, tmp_path: Path) -> None:
    store = S3Store(s3_settings(moto_server, LOCKED_BUCKET, worm={"mode": "GOVERNANCE", "days": 30}))
    assert store.object_lock_enabled()
    before = datetime.now(UTC)
    result = store.put_bytes("t2/rec/manifest.json", b'{"a":1}', "application/json")
    assert result.retention is not None and result.retention.mode is RetentionMode.GOVERNANCE
    # Read back from the server (GetObjectRetention; moto 5 lacks it, so the store falls back to HEAD).
    retention = store.get_retention("t2/rec/manifest.json")
    assert retention is not None and retention.mode is RetentionMode.GOVERNANCE
    assert before + timedelta(days=30) - timedelta(seconds=5) <= retention.until
    assert retention.until <= datetime.now(UTC) + timedelta(days=30, seconds=5)
    head = moto_server.client().stat_object(LOCKED_BUCKET, "t2/rec/manifest.json").metadata
    assert head is not None and head["x-amz-object-lock-mode"] == "GOVERNANCE"


def test_worm_multipart_put_carries_retention(moto_server: MotoServer, tmp_path: Path) -> None:
    mib = 1024 * 1024
    store = S3Store(s3_settings(moto_server, LOCKED_BUCKET, single_put_max_bytes=5 * mib, part_size=5 * mib))
    src = tmp_path / "big.mkv"
    src.write_bytes(os.urandom(11 * mib))
    result = store.put_file("t3/rec/big.mkv", src, "video/x-matroska")
    assert store.sha256("t3/rec/big.mkv") == result.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    retention = store.get_retention("t3/rec/big.mkv")
    assert retention is not None and retention.mode is RetentionMode.COMPLIANCE


def test_unreachable_store_fails_fast_as_unavailable() -> None:
    server = MotoServer()  # never started: nothing listens on its port
    store = S3Store(s3_settings(server, PLAIN_BUCKET))
    with pytest.raises(StorageUnavailableError):
        store.put_bytes("k", b"x")
