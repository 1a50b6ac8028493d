"""GET /v1/signing-key: the public half of the key that signs every manifest (any role), so integrators
can pin it: `callvault verify --public-key` takes the `pem`. `callvault public-key` prints the same key
from the configuration, without a running service."""

from __future__ import annotations

import base64
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from recorder.api import examples
from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.files import archive_of
from recorder.api.problems import ApiError
from recorder.api.registry import TAGS, Call, Registry
from recorder.manifest.signing import key_id, public_key_pem, raw_public

ANY_ROLE = {Role.OPERATOR, Role.SUPERVISOR, Role.AUDITOR}
TAGS.setdefault("signing", "The Ed25519 public key that signs every manifest (pin it to verify recordings).")


class SigningKey(BaseModel):
    """The manifest signing public key, in the forms a verifier needs."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["Ed25519"] = "Ed25519"
    key_id: str = Field(description="Hex SHA-256 of the raw public key (a manifest's signer.key_id).")
    public_key: str = Field(
        description="Base64 of the raw 32-byte public key (a manifest's signer.public_key)."
    )
    pem: str = Field(
        description="SubjectPublicKeyInfo PEM: save it to a file for `callvault verify --public-key FILE`."
    )


def signing_key_of(key: Ed25519PrivateKey) -> SigningKey:
    public = key.public_key()
    return SigningKey(
        key_id=key_id(public),
        public_key=base64.b64encode(raw_public(public)).decode(),
        pem=public_key_pem(public).decode(),
    )


examples.BODIES[SigningKey] = signing_key_of(
    Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # a fixed key: the document is reproducible
)


def register(reg: Registry, ctx: ApiContext) -> None:
    @reg.add(
        "GET",
        "/v1/signing-key",
        ANY_ROLE,
        "The manifest signing public key",
        "signing",
        None,
        response=SigningKey,
        errors=(404,),
        description="The public half of the Ed25519 key that signs manifest.json (manifest.json.sig). 404"
        " when the service runs without an archive (nothing is signed).",
    )
    async def signing_key(call: Call) -> SigningKey:
        archive = archive_of(ctx.manager.sinks)
        if archive is None:
            raise ApiError(404, "no archive: this service signs no manifests", "not-found")
        try:
            key = archive.running.key
        except RuntimeError as exc:
            raise ApiError(404, "the archive is not started yet", "not-found") from exc
        return signing_key_of(key)
