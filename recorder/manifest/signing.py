"""Ed25519 manifest signatures.

The signing key comes from, in order: the environment variable named by `key_env` (base64 of the raw
32-byte seed), the PEM file `key_file` (PKCS#8, unencrypted), or, when `generate_if_missing`, a new key
written to `key_file` (mode 0600) with a warning in the log naming the file and the key id.

`manifest.json.sig` holds the base64 (standard alphabet, padded) of the 64-byte Ed25519 signature over the
exact bytes of `manifest.json`, followed by one newline. `public_key_pem()` gives the public key
(SubjectPublicKeyInfo PEM) for integrators; the key id is the hex SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from recorder.errors import CallVaultError
from recorder.manifest.model import Signer

log = logging.getLogger(__name__)


class SigningKeyError(CallVaultError):
    """The signing or verification key cannot be loaded; the message says which and why."""


class SigningSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_file: Path = Field(
        default=Path("callvault-signing-key.pem"), description="PEM (PKCS#8) Ed25519 private key file."
    )
    key_env: str = Field(
        default="CALLVAULT_SIGNING_KEY", description="Env var holding the base64 raw 32-byte seed (wins)."
    )
    generate_if_missing: bool = Field(
        default=True, description="Create a key in key_file when neither the env var nor the file exist."
    )


def load_signing_key(settings: SigningSettings) -> Ed25519PrivateKey:
    seed = os.environ.get(settings.key_env)
    if seed:
        try:
            raw = base64.b64decode(seed, validate=True)
            return Ed25519PrivateKey.from_private_bytes(raw)
        except (binascii.Error, ValueError) as exc:
            raise SigningKeyError(f"{settings.key_env}: not the base64 of a 32-byte Ed25519 seed") from exc
    if settings.key_file.exists():
        return load_private_key_file(settings.key_file)
    if not settings.generate_if_missing:
        raise SigningKeyError(
            f"no signing key: {settings.key_env} is unset and {settings.key_file} is missing"
        )
    key = Ed25519PrivateKey.generate()
    write_private_key(key, settings.key_file)
    log.warning(
        "generated a new Ed25519 signing key in %s (key id %s)", settings.key_file, key_id(key.public_key())
    )
    return key


def load_private_key_file(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: cannot read an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return key


def write_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    tmp.replace(path)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key from a PEM file; a PEM private key file gives its public half."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: {exc.strerror or exc}") from exc
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError:
        return load_private_key_file(path).public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: not an Ed25519 public key")
    return public


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM (what the service will serve to integrators)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signer_of(key: Ed25519PrivateKey) -> Signer:
    public = key.public_key()
    return Signer(key_id=key_id(public), public_key=base64.b64encode(raw_public(public)).decode())


def public_key_of(signer: Signer) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(signer.public_key, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise SigningKeyError("the manifest's signer.public_key is not a raw Ed25519 key") from exc


def sign(data: bytes, key: Ed25519PrivateKey) -> bytes:
    """The signature file's bytes for `data`."""
    return base64.b64encode(key.sign(data)) + b"\n"


def signature_valid(data: bytes, signature_file: bytes, key: Ed25519PublicKey) -> bool:
    try:
        signature = base64.b64decode(signature_file.strip(), validate=True)
        key.verify(signature, data)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True
