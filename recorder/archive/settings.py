"""Archive settings: where recordings are stored, how they are spooled, signed and announced.

Relative paths (the local store root, the spool folder, the outbox file, the signing key file) are taken
relative to the service's data folder (`Archive(settings, data_dir)`), see `ArchiveSettings.resolved`.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from recorder.crypto.age import CryptoError, check_recipient, parse_identities, read_identities
from recorder.manifest.signing import SigningSettings
from recorder.storage.settings import SpoolSettings, StorageSettings
from recorder.webhooks.settings import WebhookSettings


def _check_recipients(values: list[str]) -> list[str]:
    try:
        return list(dict.fromkeys(check_recipient(v) for v in values))
    except CryptoError as exc:
        raise ValueError(str(exc)) from None


class EncryptionSettings(BaseModel):
    """Encryption at rest under the customer's public keys (age; recorder/crypto/age.py)."""

    model_config = ConfigDict(extra="forbid")

    recipients: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="age recipients ('age1...' from age-keygen -y, or 'ssh-ed25519 ...' public keys) every"
        " recording is encrypted to, unless its room's policy names its own. Empty (and no"
        " recipients_file): recordings are stored unencrypted.",
    )
    recipients_file: Path | None = Field(
        default=None,
        description="A file of recipients, one per line ('#' comments), as `age -R` reads it; added to"
        " `recipients` at start-up.",
    )
    escrow: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Recipients added to every encrypted recording, the rooms' own ones included (an"
        " escrow or compliance key). They do not turn encryption on by themselves.",
    )
    playback_identity: SecretStr | None = Field(
        default=None,
        description="An age identity (AGE-SECRET-KEY-1...) with which the API decrypts downloads on the fly"
        " for supervisors and auditors (audited). Prefer playback_identity_env or playback_identity_file.",
    )
    playback_identity_env: str = Field(
        default="CALLVAULT_PLAYBACK_IDENTITY", description="Env var holding the playback identity."
    )
    playback_identity_file: Path | None = Field(
        default=None, description="File holding the playback identity (a Kubernetes secret mount)."
    )

    _recipients_ok = field_validator("recipients", "escrow")(_check_recipients)

    def default_recipients(self) -> list[str]:
        """`recipients` and those of `recipients_file` (CryptoError naming the file and line)."""
        found = list(self.recipients)
        if self.recipients_file is not None:
            try:
                text = self.recipients_file.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise CryptoError(f"recipients_file {self.recipients_file}: cannot read it: {exc}") from None
            for number, raw in enumerate(text.splitlines(), 1):
                line = raw.strip()
                if line and not line.startswith("#"):
                    try:
                        found.append(check_recipient(line))
                    except CryptoError as exc:
                        raise CryptoError(
                            f"recipients_file {self.recipients_file} line {number}: {exc}"
                        ) from None
        return list(dict.fromkeys(found))

    def check(self) -> None:
        """Read the recipients file and the playback identity now (CryptoError: one line, no secret)."""
        self.default_recipients()
        self.playback_identities()

    def playback_identities(self) -> list[object] | None:
        """The playback identity (from the setting, env or file), or None when none is configured."""
        if self.playback_identity is not None:
            return parse_identities(self.playback_identity.get_secret_value().encode(), "playback_identity")
        value = os.environ.get(self.playback_identity_env)
        if value:
            return parse_identities(value.encode(), f"env {self.playback_identity_env}")
        if self.playback_identity_file is not None:
            return read_identities(self.playback_identity_file)
        return None


class ArchiveSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storage: StorageSettings = Field(
        default_factory=StorageSettings,
        title="Object storage",
        description="Backend (local folder or S3/MinIO), WORM retention and the object key template.",
    )
    spool: SpoolSettings = Field(
        default_factory=SpoolSettings,
        title="Upload spool",
        description="Durable upload queue: folder, disk limits, retry backoff, uploads in flight.",
    )
    signing: SigningSettings = Field(
        default_factory=SigningSettings,
        title="Manifest signing key",
        description="Ed25519 key that signs every manifest (env var, PEM file, or generated).",
    )
    encryption: EncryptionSettings = Field(
        default_factory=EncryptionSettings,
        title="Encryption at rest",
        description="age recipients every stored object is encrypted to before it leaves the machine.",
    )
    webhooks: WebhookSettings = Field(
        default_factory=WebhookSettings,
        title="Webhooks",
        description="Endpoints, outbox, retries, and the lifetime of presigned links in recording.finished.",
    )
    delete_local_after_upload: bool = Field(
        default=True,
        title="Delete local copies",
        description="Delete a recording's local folder once every object of it is stored (hash-checked)"
        " and its recording.finished event is in the outbox. Failed recordings are kept.",
    )
    finish_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        title="Finish wait",
        description="Seconds recording_finished waits for the recording's uploads. When the store is down"
        " longer, it returns; the spool keeps the uploads and recording.finished is sent once they are done.",
    )
    completion_poll: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between checks of finished recordings still waiting for uploads (uploads"
        " completing also trigger a check at once).",
    )
    health_interval: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds between refreshes of the spool's health (what can_accept_new_recording says).",
    )

    def resolved(self, data_dir: Path) -> ArchiveSettings:
        """These settings with relative paths made relative to `data_dir`."""

        def under(path: Path) -> Path:
            return path if path.is_absolute() else data_dir / path

        storage = self.storage.model_copy(
            update={"local": self.storage.local.model_copy(update={"root": under(self.storage.local.root)})}
        )
        return self.model_copy(
            update={
                "storage": storage,
                "spool": self.spool.model_copy(update={"dir": under(self.spool.dir)}),
                "signing": self.signing.model_copy(update={"key_file": under(self.signing.key_file)}),
                "encryption": self.encryption.model_copy(
                    update={
                        "recipients_file": self.encryption.recipients_file
                        and under(self.encryption.recipients_file),
                        "playback_identity_file": self.encryption.playback_identity_file
                        and under(self.encryption.playback_identity_file),
                    }
                ),
                "webhooks": self.webhooks.model_copy(
                    update={"outbox_path": under(self.webhooks.outbox_path)}
                ),
            }
        )
