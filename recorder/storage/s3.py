"""`S3Store`: objects in an S3/MinIO bucket through the `minio` client (blocking calls).

Uploads: objects up to `single_put_max_bytes` go in one PUT; larger ones in parts of `part_size`. Every PUT
and every part carries an integrity header: the whole object's `x-amz-checksum-sha256` (with
`x-amz-sdk-checksum-algorithm: SHA256`) on single PUTs and `Content-MD5` on parts, so the server rejects
corrupted transfers and object-lock buckets accept the upload (S3 requires one of them there). The
multipart path uses minio's internal multipart calls because its public `put_object` cannot attach
per-part headers.

WORM: when WORM is enabled in the settings and the bucket has object lock (detected once, then cached),
every put without an explicit retention carries the configured mode and a retain-until date of now +
`days`.

Errors: unreachable endpoints and 5xx answers raise StorageUnavailableError (retry later); refusals
(credentials, missing bucket, locked objects) raise StorageRefusedError; NoSuchKey raises
ObjectNotFoundError.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from xml.etree import ElementTree

import certifi
import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.retention import Retention as MinioRetention
from urllib3.util import Retry, Timeout

from recorder.storage.base import (
    CHUNK,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStore,
    PutResult,
    Retention,
    StorageError,
    StorageRefusedError,
    StorageUnavailableError,
)
from recorder.storage.settings import RetentionMode, S3Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
Headers = dict[str, str | list[str] | tuple[str]]
MIN_PART = 5 * 1024 * 1024

_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchVersion"}
_META_PREFIX = "x-amz-meta-"


def make_client(settings: S3Settings) -> Minio:
    access, secret = settings.resolved_credentials()
    http = urllib3.PoolManager(
        timeout=Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
        maxsize=16,
        cert_reqs="CERT_REQUIRED",
        ca_certs=str(settings.ca_file) if settings.ca_file else certifi.where(),
        retries=Retry(
            total=settings.http_retries,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
        ),
    )
    return Minio(
        settings.endpoint,
        access_key=access or None,
        secret_key=secret or None,
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )


class S3Store(ObjectStore):
    def __init__(self, settings: S3Settings, client: Minio | None = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.client = client or make_client(settings)
        self._lock_enabled: bool | None = None

    def _call(self, what: str, key: str | None, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                raise ObjectNotFoundError(f"no object {key} in bucket {self.bucket}", key) from exc
            raise StorageRefusedError(f"{what} {key or self.bucket}: {exc.code}: {exc.message}", key) from exc
        except (ServerError, InvalidResponseError) as exc:
            raise StorageUnavailableError(f"{what} {key or self.bucket}: {exc}", key) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailableError(
                f"{what} {key or self.bucket}: {self.settings.endpoint} unreachable: {exc}", key
            ) from exc
        except MinioException as exc:
            raise StorageError(f"{what} {key or self.bucket}: {exc}", key) from exc

    # -- object lock ----------------------------------------------------------------------------------

    def object_lock_enabled(self) -> bool:
        if self._lock_enabled is None:
            try:
                self.client.get_object_lock_config(self.bucket)
                enabled = True
            except S3Error as exc:
                if exc.code != "ObjectLockConfigurationNotFoundError":
                    raise StorageRefusedError(
                        f"object lock of {self.bucket}: {exc.code}: {exc.message}"
                    ) from exc
                enabled = False
            except (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError) as exc:
                raise StorageUnavailableError(f"object lock of {self.bucket}: {exc}") from exc
            self._lock_enabled = enabled
            log.info("bucket %s: object lock %s", self.bucket, "enabled" if enabled else "not enabled")
        return self._lock_enabled

    def _policy_retention(self, explicit: Retention | None) -> Retention | None:
        if explicit is not None:
            return explicit
        worm = self.settings.worm
        if worm.enabled and self.object_lock_enabled():
            return Retention(mode=worm.mode, until=datetime.now(UTC) + timedelta(days=worm.days))
        return None

    def get_retention(self, key: str) -> Retention | None:
        def fetch() -> Retention | None:
            try:
                r = self.client.get_object_retention(self.bucket, key)
            except S3Error as exc:
                if exc.code in {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"}:
                    return None
                raise
            except (ElementTree.ParseError, UnicodeDecodeError):
                # Servers without GetObjectRetention (moto 5) answer with the object: use HEAD's headers.
                return self._retention_from_head(key)
            if r is None or r.mode is None or r.retain_until_date is None:
                return None
            return Retention(mode=RetentionMode(r.mode), until=r.retain_until_date)

        return self._call("get retention of", key, fetch)

    def _retention_from_head(self, key: str) -> Retention | None:
        obj = self.client.stat_object(self.bucket, key)
        headers = obj.metadata or {}
        mode = headers.get("x-amz-object-lock-mode")
        until = headers.get("x-amz-object-lock-retain-until-date")
        if not mode or not until:
            return None
        return Retention(
            mode=RetentionMode(str(mode)), until=datetime.fromisoformat(str(until).replace("Z", "+00:00"))
        )

    # -- writes ---------------------------------------------------------------------------------------

    def _headers(self, metadata: dict[str, str] | None, sha256: str, retention: Retention | None) -> Headers:
        headers: Headers = {f"{_META_PREFIX}{k.lower()}": v for k, v in (metadata or {}).items()}
        headers[f"{_META_PREFIX}sha256"] = sha256
        if retention is not None:
            headers["x-amz-object-lock-mode"] = retention.mode.value
            headers["x-amz-object-lock-retain-until-date"] = (
                retention.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            )
        return headers

    def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retention: Retention | None = None,
    ) -> PutResult:
        digest = hashlib.sha256(data)
        ret = self._policy_retention(retention)
        headers = self._headers(metadata, digest.hexdigest(), ret)
        headers["x-amz-sdk-checksum-algorithm"] = "SHA256"
        headers["x-amz-checksum-sha256"] = base64.b64encode(digest.digest()).decode()
        # part_size >= length: one PUT. Header names all start with x-amz-, so minio sends them unchanged.
        result = self._call(
            "put",
            key,
            lambda: self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata=headers,
                part_size=max(len(data), MIN_PART),
            ),
        )
        return PutResult(
            key=key,
            size=len(data),
            sha256=digest.hexdigest(),
            etag=result.etag,
            version_id=result.version_id,
            retention=ret,
        )

    def put_file(
        self,
        key: str,
        path: Path,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retention: Retention | None = None,
    ) -> PutResult:
        size = path.stat().st_size
        if size <= self.settings.single_put_max_bytes:
            return self.put_bytes(key, path.read_bytes(), content_type, metadata, retention)
        return self._put_multipart(key, path, size, content_type, metadata, retention)

    def _put_multipart(
        self,
        key: str,
        path: Path,
        size: int,
        content_type: str,
        metadata: dict[str, str] | None,
        retention: Retention | None,
    ) -> PutResult:
        sha = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                sha.update(chunk)
        digest = sha.hexdigest()
        ret = self._policy_retention(retention)
        headers = self._headers(metadata, digest, ret)
        headers["Content-Type"] = content_type
        upload_id: str = self._call(
            "start upload of", key, lambda: self.client._create_multipart_upload(self.bucket, key, headers)
        )
        parts: list[Part] = []
        check = hashlib.sha256()
        try:
            with path.open("rb") as f:
                number = 0
                while data := f.read(self.settings.part_size):
                    number += 1
                    check.update(data)
                    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
                    n = number
                    etag: str = self._call(
                        "upload part of",
                        key,
                        lambda d=data, m=md5, n=n: self.client._upload_part(  # type: ignore[misc]
                            self.bucket, key, d, {"Content-MD5": m}, upload_id, n
                        ),
                    )
                    parts.append(Part(number, etag))
            if check.hexdigest() != digest:
                raise StorageError(f"{path} changed while it was uploaded", key)
            result = self._call(
                "complete upload of",
                key,
                lambda: self.client._complete_multipart_upload(self.bucket, key, upload_id, parts),
            )
        except BaseException:
            try:
                self.client._abort_multipart_upload(self.bucket, key, upload_id)
            except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("cannot abort multipart upload of %s: %s", key, exc)
            raise
        if ret is not None and self.get_retention(key) is None:
            # Some servers (moto 5) drop lock headers of CreateMultipartUpload: set it explicitly.
            log.info("%s: retention not applied by multipart upload, setting it", key)
            self._call(
                "set retention of",
                key,
                lambda: self.client.set_object_retention(self.bucket, key, minio_retention(ret)),
            )
        return PutResult(
            key=key, size=size, sha256=digest, etag=result.etag, version_id=result.version_id, retention=ret
        )

    # -- reads ----------------------------------------------------------------------------------------

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        response = self._call("get", key, lambda: self.client.get_object(self.bucket, key))
        return self._stream(key, response, chunk_size)

    def _stream(self, key: str, response: urllib3.BaseHTTPResponse, chunk_size: int) -> Iterator[bytes]:
        try:
            while True:
                chunk = self._call("read", key, lambda: response.read(chunk_size))
                if not chunk:
                    break
                yield chunk
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> ObjectInfo:
        obj = self._call("stat", key, lambda: self.client.stat_object(self.bucket, key))
        meta: dict[str, str] = {}
        if obj.metadata is not None:
            for name, value in obj.metadata.items():
                if name.lower().startswith(_META_PREFIX):
                    meta[name.lower()[len(_META_PREFIX) :]] = str(value)
        return ObjectInfo(
            key=key,
            size=obj.size or 0,
            content_type=obj.content_type,
            etag=obj.etag,
            last_modified=obj.last_modified,
            metadata=meta,
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        objects = self._call(
            "list", prefix, lambda: list(self.client.list_objects(self.bucket, prefix=prefix, recursive=True))
        )
        for obj in sorted(objects, key=lambda o: o.object_name or ""):
            if obj.object_name is None or obj.is_dir:
                continue
            yield ObjectInfo(
                key=obj.object_name, size=obj.size or 0, etag=obj.etag, last_modified=obj.last_modified
            )

    def delete(self, key: str) -> None:
        self._call("delete", key, lambda: self.client.remove_object(self.bucket, key))

    def presign_get(self, key: str, expires: timedelta) -> str:
        return self._call(
            "presign", key, lambda: self.client.presigned_get_object(self.bucket, key, expires=expires)
        )

    # -- legal hold and purging -----------------------------------------------------------------------

    def set_legal_hold(self, key: str, on: bool) -> None:
        """S3 object legal hold ON/OFF on the object's current version (the bucket needs object lock)."""
        if on:
            self._call("legal hold on", key, lambda: self.client.enable_object_legal_hold(self.bucket, key))
        else:
            self._call("legal hold off", key, lambda: self.client.disable_object_legal_hold(self.bucket, key))

    def legal_hold(self, key: str) -> bool:
        def fetch() -> bool:
            try:
                return bool(self.client.is_object_legal_hold_enabled(self.bucket, key))
            except S3Error as exc:
                if exc.code in {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"}:
                    self.client.stat_object(self.bucket, key)  # missing objects still raise
                    return False
                raise

        return self._call("legal hold of", key, fetch)

    def purge(self, key: str) -> None:
        """Every version and delete marker of exactly `key` (a plain DELETE on a versioned bucket only
        hides the object behind a delete marker)."""
        versions = self._call(
            "list versions of",
            key,
            lambda: [
                o
                for o in self.client.list_objects(self.bucket, prefix=key, include_version=True)
                if o.object_name == key
            ],
        )
        if not versions:
            return
        for obj in versions:
            self._remove_version(key, obj.version_id)

    def _remove_version(self, key: str, version_id: str | None) -> None:
        vid = None if version_id in (None, "null") else version_id
        self._call("delete", key, lambda: self.client.remove_object(self.bucket, key, version_id=vid))


def minio_retention(retention: Retention) -> MinioRetention:
    """The minio client's form of a retention (for callers that use the client directly)."""
    return MinioRetention(retention.mode.value, retention.until)


__all__ = ["S3Store", "make_client", "minio_retention"]
