"""Encryption of stored objects in the `age` format (https://age-encryption.org/v1), through pyrage.

Everything CallVault encrypts can be decrypted with the standard tool: `age -d -i key.txt file.age`.
Recipients are age X25519 public keys (`age1...`) or SSH public keys (`ssh-ed25519 ...`, `ssh-rsa ...`),
as `age -r` takes them; identities are age identity files (`AGE-SECRET-KEY-1...` lines, comments allowed,
as `age-keygen` writes them) or unencrypted SSH private keys, as `age -i` takes them.

Files are streamed (age's payload is chunked, 64 KiB per chunk, so memory stays flat for any size);
`encrypt_file` returns the SHA-256 of the plaintext it read and of the ciphertext it wrote. Errors are
`CryptoError` with a message that names the file or the recipient's position, never key material.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import threading
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from pyrage import ssh, x25519

from recorder.errors import CallVaultError
from recorder.storage.base import sha256_file

AGE_SUFFIX = ".age"
AGE_CONTENT_TYPE = "application/octet-stream"
"""Content type of stored ciphertext (age has no registered media type)."""
_SSH_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ")


class CryptoError(CallVaultError):
    """A recipient, identity or ciphertext that cannot be used; the message says which and why."""


def check_recipient(text: str) -> str:
    """The recipient string stripped, or ValueError saying what is wrong (for settings validators)."""
    parse_recipient(text)
    return text.strip()


def parse_recipient(text: str) -> Any:
    """A pyrage recipient from `age1...` or an SSH public key line; CryptoError otherwise."""
    value = text.strip()
    try:
        if value.startswith("age1"):
            return x25519.Recipient.from_str(value)
        if value.startswith(_SSH_PREFIXES):
            return ssh.Recipient.from_str(value)
    except pyrage.RecipientError as exc:
        raise CryptoError(f"recipient {_shown(value)} is not a valid age recipient: {exc}") from None
    raise CryptoError(
        f"recipient {_shown(value)} is not an age recipient: expected 'age1...' (age-keygen -y) or an"
        " 'ssh-ed25519'/'ssh-rsa' public key"
    )


def parse_recipients(texts: Iterable[str]) -> list[Any]:
    recipients = [parse_recipient(t) for t in texts]
    if not recipients:
        raise CryptoError("no recipients: encryption needs at least one public key")
    return recipients


def _shown(value: str) -> str:
    """A recipient as an error message shows it: public keys are not secret, but keep lines short."""
    return repr(value if len(value) <= 80 else value[:77] + "...")


def read_identities(path: Path) -> list[Any]:
    """The identities in an age identity file or an SSH private key file; CryptoError (naming the file,
    never its content) when it is unreadable or holds none."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CryptoError(f"identity file {path}: cannot read it: {exc.strerror or exc}") from None
    return parse_identities(data, str(path))


def parse_identities(data: bytes, where: str = "identity") -> list[Any]:
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            return [ssh.Identity.from_buffer(data)]
        except pyrage.IdentityError:
            raise CryptoError(
                f"{where}: not a usable SSH private key (passphrase-protected keys are not supported)"
            ) from None
    identities = []
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CryptoError(f"{where}: not an age identity file (not ASCII text)") from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("AGE-SECRET-KEY-1"):
            raise CryptoError(f"{where}: line {number} is not an age identity (AGE-SECRET-KEY-1...)")
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise CryptoError(f"{where}: line {number} is not a valid age identity") from None
    if not identities:
        raise CryptoError(f"{where}: holds no identity")
    return identities


@dataclass(frozen=True)
class Sealed:
    """What `encrypt_file` read and wrote."""

    plain_sha256: str
    plain_size: int
    sha256: str | None
    """The ciphertext's hash; None when the caller asked not to take it (`hash_ciphertext`)."""
    size: int


class _HashingWriter(io.RawIOBase):
    def __init__(self, raw: io.BufferedWriter) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.raw.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def encrypt_file(
    source: Path,
    target: Path,
    recipients: Sequence[Any],
    *,
    durable: bool = True,
    plain_sha256: str | None = None,
    hash_ciphertext: bool = True,
) -> Sealed:
    """Encrypt `source` to `target` for every recipient (written to a temporary file beside it, fsynced
    unless `durable` is False, renamed into place) and hash both. pyrage encrypts file to file in native
    code (twice the throughput of feeding it Python file objects); each SHA-256 pass reads from the page
    cache at about 1.4 GB/s (OpenSSL with SHA-NI), a third of pyrage's ChaCha20-Poly1305 cost per byte.
    `plain_sha256`: the plaintext's hash when the caller took it already (a segment, hashed from the
    bytes the muxer wrote when it closed): it is trusted, not taken again. `hash_ciphertext` False: the
    caller takes the ciphertext's hash elsewhere (the uploader hashes what it sends anyway). Callers that
    encrypt many small files pass durable=False and fsync them together before they rely on them
    (`fsync_tree`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        if not source.is_file():
            raise FileNotFoundError(f"{source}: no such file")
        pyrage.encrypt_file(str(source), str(tmp), list(recipients))
        plain_sha, plain_size = plain_sha256 or sha256_file(source), source.stat().st_size
        sha, size = sha256_file(tmp) if hash_ciphertext else None, tmp.stat().st_size
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Sealed(plain_sha, plain_size, sha, size)


def fsync_tree(folder: Path) -> int:
    """fsync every file and folder under `folder` (files the kernel already wrote back cost little);
    returns how many were synced."""
    count = 0
    for path in [folder, *folder.rglob("*")]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # removed meanwhile (uploaded, then deleted): nothing to keep
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        count += 1
    return count


def decrypt_file(source: Path, target: Path, identities: Sequence[Any]) -> tuple[str, int]:
    """Decrypt `source` into `target` (temporary file, renamed once authenticated); returns the
    plaintext's (SHA-256, size). CryptoError when no identity fits or the file is damaged."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with source.open("rb") as src, tmp.open("wb") as dst:
            writer = _HashingWriter(dst)
            try:
                pyrage.decrypt_io(src, writer, list(identities))
            except (pyrage.DecryptError, OSError) as exc:
                if isinstance(exc, OSError) and not _is_decryption_error(exc):
                    raise
                raise CryptoError(f"{source}: cannot decrypt it: {_why(exc)}") from None
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return writer.hash.hexdigest(), writer.size


def encrypt_bytes(data: bytes, recipients: Sequence[Any]) -> bytes:
    return bytes(pyrage.encrypt(data, list(recipients)))


def decrypt_bytes(data: bytes, identities: Sequence[Any], what: str = "data") -> bytes:
    try:
        return bytes(pyrage.decrypt(data, list(identities)))
    except pyrage.DecryptError as exc:
        raise CryptoError(f"{what}: cannot decrypt it: {_why(exc)}") from None


def _is_decryption_error(exc: OSError) -> bool:
    """pyrage reports a payload chunk failing authentication as OSError('decryption error')."""
    return exc.errno is None and "decryption" in str(exc)


def _why(exc: Exception) -> str:
    text = str(exc)
    if "No matching keys" in text:
        return "none of the given identities is a recipient of it (wrong key?)"
    return f"damaged or not age ciphertext ({text})"


def decrypt_chunks(
    chunks: Iterator[bytes], identities: Sequence[Any], what: str
) -> Generator[bytes, None, None]:
    """Plaintext of ciphertext arriving in `chunks`, yielded as pyrage decrypts it. age authenticates
    every 64 KiB chunk before it is released, so nothing unauthenticated is yielded; a damaged or
    truncated stream raises CryptoError where it breaks."""
    reader = _ChunkReader(chunks)
    # pyrage's decrypt_io runs to the end; to stream without holding the whole plaintext, it runs in a
    # thread that hands chunks over a bounded queue.
    out: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=16)

    class _Handoff(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            out.put(bytes(data))
            return len(data)

    def run() -> None:
        try:
            pyrage.decrypt_io(reader, _Handoff(), list(identities))
            out.put(None)
        except (pyrage.DecryptError, OSError) as exc:
            if isinstance(exc, OSError) and not _is_decryption_error(exc):
                out.put(exc)
            else:
                out.put(CryptoError(f"{what}: cannot decrypt it: {_why(exc)}"))
        except BaseException as exc:
            out.put(exc)

    thread = threading.Thread(target=run, name="age-decrypt", daemon=True)
    thread.start()
    try:
        while (item := out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        reader.closed_by_consumer = True
        while thread.is_alive():  # let it finish or fail on the closed reader; drain what it still puts
            with contextlib.suppress(queue.Empty):
                out.get(timeout=0.1)
        thread.join()


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""
        self.closed_by_consumer = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed_by_consumer:
            raise OSError("the reader went away")
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n
