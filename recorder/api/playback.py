"""Playback of encrypted recordings through the API.

With a playback identity (archive.encryption.playback_identity*), `GET /v1/recordings/{id}/file` streams an
encrypted object's plaintext: decrypted as it comes from the store, never written to disk, with the
file's own content type and Range support (a video element seeks), and the access is audited with
`decrypted: true`. Without one, the API hands out the ciphertext (a redirect to the stored `.age` object)
with the header `X-CallVault-Encryption: age`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from aiohttp import web

from recorder.api.files import RecordingFiles
from recorder.api.problems import ApiError
from recorder.crypto.age import CryptoError
from recorder.manifest import content_type_for
from recorder.manifest.model import StoredObject
from recorder.storage.base import StorageError

log = logging.getLogger(__name__)

ENCRYPTION_HEADER = "X-CallVault-Encryption"
DECRYPTED_HEADER = "X-CallVault-Decrypted"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def encrypted_objects(files: RecordingFiles) -> dict[str, StoredObject]:
    """(worker thread) The recording's encrypted objects by stored name ('<name>.age')."""
    manifest = files.manifest()
    if manifest is None:
        return {}
    return {o.stored_name: o for o in manifest.objects if o.encryption is not None}


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `bytes=` range within `size`; None for the whole file. ApiError 416
    when it cannot be satisfied; multiple ranges are answered with the whole file (RFC 9110 allows it)."""
    if not header or "," in header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    start, end = match.groups()
    if start == "" and end == "":
        return None
    if start == "":  # the last N bytes
        first, last = max(0, size - int(end)), size - 1
    else:
        first, last = int(start), min(int(end), size - 1) if end else size - 1
    if first >= size or first > last:
        raise ApiError(416, f"range {header} is outside the file's {size} bytes", "range-not-satisfiable")
    return first, last


async def stream_plaintext(
    request: web.Request, files: RecordingFiles, obj: StoredObject
) -> web.StreamResponse:
    size = obj.plaintext_size or 0
    wanted = byte_range(request.headers.get("Range"), size)
    first, last = wanted or (0, size - 1)
    response = web.StreamResponse(status=206 if wanted else 200)
    response.headers["Content-Type"] = content_type_for(obj.name)
    response.headers["Content-Disposition"] = f'inline; filename="{obj.name.rsplit("/", 1)[-1]}"'
    response.headers["Accept-Ranges"] = "bytes"
    response.headers[DECRYPTED_HEADER] = "age"
    response.headers["Cache-Control"] = "private, no-store"
    if wanted:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    response.content_length = max(0, last - first + 1)
    await response.prepare(request)
    if size == 0:
        await response.write_eof()
        return response
    chunks = files.decrypted(obj, first, last)
    try:
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            await response.write(chunk)
    except (CryptoError, StorageError) as exc:  # headers are out: cut the connection, say why in the log
        log.error("recording %s: playback of %s broke off: %s", files.recording_id, obj.name, exc)
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(chunks.close)
    await response.write_eof()
    return response
