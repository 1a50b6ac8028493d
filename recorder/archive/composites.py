"""Composites of archived recordings: into a new signed manifest revision, stored, and announced.

`Archive.add_composites(info, files, errors)` (called by the service when a recording's composites are
built) writes a composite ticket (recorder/archive/tickets.py) and returns. The archive's completion loop
then drives each ticket with `CompositeStage.advance`:

1. wait until the recording itself is announced (its finish ticket gone), so its first manifest is stored
   before a revision replaces `manifest.json` and recording.finished always comes before
   composite.finished;
2. revise: `manifest.json` becomes the next revision (recorder/manifest/revise.py) listing the composites
   and the archived previous revision (`manifest.N.json` + `.sig`), signed with the archive's key; the
   composites, the archived revision and the new manifest are queued in the spool, then the ticket is
   rewritten with the revision (a restart before that revises again, finding the composites already
   listed);
3. once the spool holds nothing pending for the recording: composite.finished per composite (with a
   presigned link), composite.failed when composites could not be built or stored; the ticket is removed
   and, when configured, the local folder (kept after a failure, so the composite can be retried).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from recorder.archive.naming import key_function, stored_object
from recorder.archive.tickets import (
    COMPOSITE_TICKETS_DIR,
    CompositeTicket,
    Failure,
    remove_ticket,
    write_ticket,
)
from recorder.crypto.age import CryptoError
from recorder.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Manifest,
    ManifestError,
    revise_manifest,
    write_atomically,
    write_signed_manifest,
)
from recorder.models import MediaKind
from recorder.storage import JobState
from recorder.webhooks import CompositeFailed, CompositeFinished, WebhookEvent, presigned_link

if TYPE_CHECKING:
    from recorder.archive.archive import Archive

log = logging.getLogger(__name__)


def composite_kind(name: str) -> MediaKind:
    return MediaKind.AUDIO if Path(name).name.startswith("composite-audio") else MediaKind.VIDEO


class CompositeStage:
    """The composite tickets of one archive (see the module documentation)."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.dir = archive.settings.spool.dir / COMPOSITE_TICKETS_DIR
        self.tickets: dict[str, CompositeTicket] = {}

    def pending(self, recording_id: str) -> bool:
        return recording_id in self.tickets

    async def add(self, ticket: CompositeTicket) -> None:
        await asyncio.to_thread(write_ticket, self.dir, ticket)
        self.tickets[ticket.recording_id] = ticket

    async def advance(self, ticket: CompositeTicket) -> None:
        """Take the ticket as far as it can go now (see the module documentation)."""
        archive = self.archive
        rid = ticket.recording_id
        if archive.announcing(rid):
            return
        run = archive.running
        if ticket.files and ticket.manifest is None and ticket.failure is None:
            await asyncio.to_thread(self._revise, ticket)
        if await asyncio.to_thread(run.spool.pending_count, rid):
            return
        failure = ticket.failure
        if failure is None:
            failed = await asyncio.to_thread(run.spool.jobs, JobState.FAILED, rid)
            if failed:
                failure = Failure(stage="upload", error="; ".join(f"{j.key}: {j.last_error}" for j in failed))
        info = ticket.info
        ids: dict[str, Any] = {"recording_id": rid, "room_id": info.room_id, "call_id": info.call_id}
        if failure is None:
            expires = timedelta(seconds=archive.settings.webhooks.presign_expiry_seconds)
            for obj in ticket.objects:
                link = await asyncio.to_thread(presigned_link, archive.store, obj.name, obj.key, expires)
                event = CompositeFinished(
                    **ids, finished_at=ticket.built_at, object=obj, link=link, manifest=ticket.manifest
                )
                await run.dispatcher.publish(WebhookEvent.of(event), msg_id=f"msg_{rid}.composite.{obj.name}")
        errors = list(ticket.errors)
        if failure is not None:
            errors.append(f"{failure.stage}: {failure.error}")
        if errors:
            failed_event = CompositeFailed(**ids, failed_at=datetime.now(UTC), error="; ".join(errors))
            await run.dispatcher.publish(WebhookEvent.of(failed_event), msg_id=f"msg_{rid}.composite.failed")
        await asyncio.to_thread(remove_ticket, self.dir, rid)
        self.tickets.pop(rid, None)
        if ticket.manifest is not None and ticket.manifest.encryption is not None:
            await archive.drop_plaintext(rid, info.folder, finished=True)
        elif not errors and archive.settings.delete_local_after_upload and not archive.held(rid):
            await asyncio.to_thread(shutil.rmtree, info.folder, True)
        stored = len(ticket.objects)
        log.info("recording %s: composites announced (%d stored, %d failed)", rid, stored, len(errors))

    def _revise(self, ticket: CompositeTicket) -> None:
        """(worker thread) The next manifest revision listing the composites; queue; rewrite the ticket."""
        archive = self.archive
        folder = ticket.info.folder
        key_for = key_function(archive.settings.storage.key_template, ticket.info)
        rid = ticket.recording_id
        try:
            data = (folder / MANIFEST_NAME).read_bytes()
            signature = (folder / SIGNATURE_NAME).read_bytes()
            current = Manifest.model_validate_json(data)
            recipients = current.encryption.recipients if current.encryption is not None else None
            if recipients is not None:  # encrypted to the recording's own recipients, once
                listed_names = {o.name for o in current.objects}
                added = [
                    archive.sealing.seal(folder, rid, n, key_for(n), composite_kind(n), recipients)
                    for n in ticket.files
                    if n not in listed_names
                ]
            else:
                added = [stored_object(folder, n, key_for(n), composite_kind(n)) for n in ticket.files]
            listed = {(o.name, o.sha256, o.size) for o in current.objects}
            if all((o.name, o.sha256, o.size) in listed for o in added):
                manifest = current  # revised before a restart: only the queueing may be missing
            else:
                revised, archived = revise_manifest(current, data, signature, added, key_for)
                for name, content in archived.items():
                    write_atomically(folder / name, content)
                manifest = write_signed_manifest(folder, revised, archive.running.key)
        except (OSError, ValidationError, ManifestError, ValueError, CryptoError) as exc:
            log.error("recording %s: cannot add its composites to the manifest: %s", ticket.recording_id, exc)
            ticket.failure = Failure(stage="manifest", error=f"composites not added to the manifest: {exc}")
            write_ticket(self.dir, ticket)
            return
        names = set(ticket.files)
        if manifest.previous is not None:
            names |= {manifest.previous.name, manifest.previous.signature}
        encrypted = manifest.encryption is not None
        for obj in manifest.objects:
            if obj.name in names:
                archive.queue_object(folder, rid, obj, encrypted)
        archive.queue_manifest(folder, rid, key_for, encrypted)
        ticket.manifest = manifest
        write_ticket(self.dir, ticket)
