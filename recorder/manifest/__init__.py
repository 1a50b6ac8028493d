"""Recording manifests: the versioned model (format callvault.manifest/1), canonical bytes, per-track
segment hash chains, Ed25519 signatures, the JSON Schema, building from a recording folder, revisions
(objects added after the seal) and verification."""

from recorder.manifest.build import (
    ManifestError,
    build_manifest,
    content_type_for,
    folder_files,
    signed_manifest_bytes,
    write_atomically,
    write_signed_manifest,
)
from recorder.manifest.canonical import canonical_bytes
from recorder.manifest.chain import ChainBuilder, build_chain
from recorder.manifest.model import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    ChainLink,
    Encryption,
    Manifest,
    ManifestTrack,
    Participant,
    PreviousRevision,
    RemovedObject,
    Signer,
    Software,
    StoredObject,
    TrackChain,
)
from recorder.manifest.revise import revise_manifest, revision_names
from recorder.manifest.schema import manifest_json_schema, write_schema
from recorder.manifest.signing import (
    SigningKeyError,
    SigningSettings,
    load_public_key,
    load_signing_key,
    public_key_pem,
)
from recorder.manifest.verify import (
    FolderSource,
    Problem,
    ProblemKind,
    StoreSource,
    VerifyReport,
    verify_recording,
)

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "ChainBuilder",
    "ChainLink",
    "Encryption",
    "FolderSource",
    "Manifest",
    "ManifestError",
    "ManifestTrack",
    "Participant",
    "PreviousRevision",
    "Problem",
    "ProblemKind",
    "RemovedObject",
    "Signer",
    "SigningKeyError",
    "SigningSettings",
    "Software",
    "StoreSource",
    "StoredObject",
    "TrackChain",
    "VerifyReport",
    "build_chain",
    "build_manifest",
    "canonical_bytes",
    "content_type_for",
    "folder_files",
    "load_public_key",
    "load_signing_key",
    "manifest_json_schema",
    "public_key_pem",
    "revise_manifest",
    "revision_names",
    "signed_manifest_bytes",
    "verify_recording",
    "write_atomically",
    "write_schema",
    "write_signed_manifest",
]
