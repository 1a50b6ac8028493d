"""Archive settings: where recordings are stored, how they are spooled, signed and announced.

Relative paths (the local store root, the spool folder, the outbox file, the signing key file) are taken
relative to the service's data folder (`Archive(settings, data_dir)`), see `ArchiveSettings.resolved`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from recorder.manifest.signing import SigningSettings
from recorder.storage.settings import SpoolSettings, StorageSettings
from recorder.webhooks.settings import WebhookSettings


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
                "webhooks": self.webhooks.model_copy(
                    update={"outbox_path": under(self.webhooks.outbox_path)}
                ),
            }
        )
