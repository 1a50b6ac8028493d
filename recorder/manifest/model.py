"""The recording manifest, format `callvault.manifest/1`.

One manifest per recording, stored as `manifest.json` beside the recording's objects, signed in
`manifest.json.sig`. It says what was recorded (participants, tracks with every counter, gap and pause from
`TrackSummary`), every object stored for the recording (name relative to the recording folder, storage key,
size, content type, SHA-256), and one hash chain per track over its segments, in the order they were
written.

Canonical bytes (recorder/manifest/canonical.py): the JSON of `model_dump(mode="json")` with keys sorted,
no insignificant whitespace, UTF-8, non-ASCII characters unescaped, NaN/Infinity forbidden. It follows RFC
8785 (JCS) except that numbers are written the way Python writes them (the manifest's floats are
wall-clock seconds, whose shortest round-trip form Python and JCS agree on for ordinary values).
`manifest.json` holds exactly these bytes, and the signature covers exactly the file's bytes.

Hash chain (recorder/manifest/chain.py), per track, SHA-256 throughout:
    genesis  = SHA256("callvault.chain/1\\n" + recording_id + "\\n" + track_name)   (UTF-8)
    link[i]  = SHA256(link[i-1] || segment_sha256[i])   with link[-1] = genesis
where `||` concatenates the 32-byte binary digests and `segment_sha256[i]` is the hash of segment i's file
as recorded when the segment closed. `head` is the last link (genesis for a track without segments). A
chain lets a verifier, or a live anchor of the head taken during the call, prove no segment was dropped,
reordered or replaced.

Revisions: a manifest is sealed (signed) when the recording finishes; objects added later (a composite
video) go into a new revision instead of an edited manifest, so the evidence of every earlier seal is kept:
- `revision` counts from 1 (a manifest without the key is revision 1, as written before revisions);
- revision N+1 is written as `manifest.json` + `manifest.json.sig`, after revision N's exact bytes and
  signature were archived beside it as `manifest.N.json` and `manifest.N.json.sig` (unchanged, still
  verifiable on their own); `previous` names those two files, N, and the SHA-256 of `manifest.N.json`;
- revision N+1 lists both archived files among its `objects`, keeps every object of revision N (same name,
  SHA-256 and size), its recording id, tracks and chains, and adds the new objects;
- a verifier follows `previous` down to revision 1, checking each archived revision's hash, signature
  (by the key that signed the current revision) and that nothing it listed was dropped or changed;
- the one exception: a revision may remove objects on purpose (the unredacted originals once a redacted
  copy is stored, recorder/transcripts/originals.py): each is then listed under `removed` (name, SHA-256,
  size, the revision that removed it, when, why) and every later revision keeps that list. `removed` is
  left out of the canonical bytes while it is empty, so manifests without removals are unchanged.
`recorder/manifest/revise.py` makes revisions; `recorder/manifest/verify.py` checks them.

Encryption (archive.encryption; recorder/archive/sealing.py): an encrypted object is listed under its
plaintext `name` with `encryption: "age"`, the key it is stored under (ending in `.age`) and the `size`
and `sha256` of the ciphertext, which is what the store holds: `callvault verify` checks stored objects
without any key. `plaintext_sha256`/`plaintext_size` and the chains' segment hashes (taken when each
segment closed, before encryption) bind each ciphertext to the plaintext it must decrypt to: an auditor
with a recipient's key decrypts and checks them (`callvault verify --identity`). Hashes of compressed
media reveal nothing of it. Participants' display names and metadata are personal data: when encrypted,
`participants` keeps only ids and `encryption.participants` holds the full list, age-encrypted.

Versioning: `format` changes its number only for changes an old verifier would misread; added optional
fields keep `callvault.manifest/1`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
)

from recorder.models import TrackSummary
from recorder.storage.keys import check_name

MANIFEST_FORMAT: Final = "callvault.manifest/1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
CHAIN_ALGORITHM: Final = "callvault.chain/1"


def first_error(exc: ValidationError) -> str:
    """`where: what` of a validation error's first problem (`document` when it is the whole file)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "document"
    return f"{where}: {first['msg']}"


class Participant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The participant's id in the SFU or the contact center.")
    display_name: str | None = None
    metadata: dict[str, JsonValue] = Field(
        default_factory=dict, description="Anything the integrator passed about the participant."
    )


class ManifestTrack(TrackSummary):
    """A track's summary (every TrackSummary field) and whose media it is."""

    participant_id: str | None = Field(default=None, description="Participant who published the track.")


ObjectName = Annotated[str, AfterValidator(check_name)]
"""A relative '/'-separated path without '.', '..' or empty parts: a manifest never names a file outside
its recording."""


class StoredObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ObjectName = Field(description="Path relative to the recording folder, '/'-separated.")
    key: str = Field(description="Object key it was stored under (prefix + name).")
    size: int = Field(ge=0)
    content_type: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the object's bytes.")
    encryption: Literal["age"] | None = Field(
        default=None,
        description="'age' when the stored object is the age encryption of the file `name` (its key ends"
        " in '.age'; `size` and `sha256` are the ciphertext's, what the store holds).",
    )
    plaintext_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Encrypted objects: hex SHA-256 of the file before encryption (what decrypting gives).",
    )
    plaintext_size: int | None = Field(default=None, ge=0, description="Encrypted objects: plaintext size.")

    @property
    def stored_name(self) -> str:
        """Its name among the recording's stored objects: `name`, plus '.age' when encrypted."""
        return self.name + ".age" if self.encryption is not None else self.name

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the file's own bytes (decrypted when it is stored encrypted)."""
        return self.plaintext_sha256 if self.plaintext_sha256 is not None else self.sha256


class Encryption(BaseModel):
    """How a recording's objects are encrypted, and what of the manifest is sealed with them."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["age"] = "age"
    recipients: list[str] = Field(description="Public keys every encrypted object was encrypted to.")
    participants: str = Field(
        description="Base64 of the age encryption (to the same recipients) of the JSON list of participants"
        " with their display names and metadata; the manifest's `participants` then carry ids only."
    )


class ChainLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, description="Segment index within the track, from 0, no holes.")
    path: ObjectName = Field(description="Segment file, relative to the recording folder.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Segment hash when it was closed.")
    link: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA256(previous link || sha256), hex.")


class TrackChain(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["callvault.chain/1"] = CHAIN_ALGORITHM
    track: str
    genesis: str = Field(pattern=r"^[0-9a-f]{64}$")
    links: list[ChainLink] = Field(default_factory=list)
    head: str = Field(pattern=r"^[0-9a-f]{64}$", description="The last link, or genesis without segments.")


class Software(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "callvault"
    version: str


class Signer(BaseModel):
    """The key that signed `manifest.json.sig`. Verifiers should pin the key (--public-key) rather than
    trust this one: it only shows which key the recorder used."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["Ed25519"] = "Ed25519"
    key_id: str = Field(description="Hex SHA-256 of the raw 32-byte public key.")
    public_key: str = Field(description="Base64 of the raw 32-byte public key.")


class PreviousRevision(BaseModel):
    """The revision a manifest replaced, archived beside it (see the module documentation)."""

    model_config = ConfigDict(extra="forbid")

    revision: int = Field(ge=1, description="The previous revision's number (this revision's minus one).")
    name: str = Field(
        pattern=r"^manifest\.[1-9][0-9]*\.json$",
        description="The archived previous manifest, 'manifest.N.json' (its exact bytes).",
    )
    signature: str = Field(
        pattern=r"^manifest\.[1-9][0-9]*\.json\.sig$",
        description="The archived previous signature, 'manifest.N.json.sig'.",
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the archived manifest's bytes."
    )


class RemovedObject(BaseModel):
    """An object a revision removed on purpose (see the module documentation)."""

    model_config = ConfigDict(extra="forbid")

    name: ObjectName = Field(description="The removed object's name, as earlier revisions list it.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Its SHA-256, as earlier revisions list it.")
    size: int = Field(ge=0, description="Its size, as earlier revisions list it.")
    revision: int = Field(ge=2, description="The revision that removed it.")
    removed_at: datetime = Field(description="When it was removed (UTC).")
    reason: str = Field(min_length=1, max_length=300, description="Why it was removed.")


class Manifest(BaseModel):
    """Everything stored for one recording, with hashes. See the module documentation."""

    model_config = ConfigDict(extra="forbid", title="CallVault recording manifest")

    format: Literal["callvault.manifest/1"] = MANIFEST_FORMAT
    revision: int = Field(
        default=1, ge=1, description="1 when sealed; one more for each revision that added objects."
    )
    previous: PreviousRevision | None = Field(
        default=None, description="The revision this one replaced, archived beside it (None for revision 1)."
    )
    recording_id: str
    room_id: str | None = None
    call_id: str | None = None
    software: Software
    created_at: datetime = Field(description="When the recording started (UTC).")
    finished_at: datetime | None = Field(default=None, description="When it finished (UTC).")
    participants: list[Participant] = Field(default_factory=list)
    tracks: list[ManifestTrack] = Field(default_factory=list)
    objects: list[StoredObject] = Field(
        default_factory=list,
        description="Every stored object but manifest.json and its signature (archived revisions included).",
    )
    chains: list[TrackChain] = Field(default_factory=list, description="One segment hash chain per track.")
    encryption: Encryption | None = Field(
        default=None, description="Set when the recording's objects are stored encrypted (age)."
    )
    signer: Signer | None = None
    removed: list[RemovedObject] = Field(
        default_factory=list,
        description="Objects earlier revisions listed that a revision removed on purpose, and why (left out"
        " of the canonical bytes while empty).",
        exclude_if=lambda removed: not removed,
    )

    def object(self, name: str) -> StoredObject | None:
        return next((o for o in self.objects if o.name == name), None)
