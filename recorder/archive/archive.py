"""`Archive`: the RecordingSink that stores every recording, signs its manifest and announces it.

What happens, per recording (all on the event loop; every blocking call runs in a worker thread):

- `recording_started` publishes recording.started to the webhook outbox.
- `segment_closed` extends the track's live hash chain and queues the segment in the durable spool at
  once (key from the template, content type from the extension and the track's kind, the hash taken when
  the segment closed, which the uploader checks against what it uploaded).
- `track_finished` queues the joined track file and the track's summary JSON.
- `recording_finished` builds the manifest (hashing the folder), signs it, writes manifest.json and
  manifest.json.sig, writes a finish ticket (recorder/archive/tickets.py), queues whatever the manifest
  lists that is not queued yet plus the manifest and its signature, then waits up to `finish_timeout`
  for the recording's uploads.
- A completion task watches the tickets: once the spool holds nothing pending for a recording, it
  publishes the terminal event to the outbox — recording.finished with the manifest and presigned links,
  or recording.failed with the stage (mux, manifest, upload) — removes the ticket and, when configured,
  the local folder. Tickets survive restarts, so a store outage or a restart delays the event, never
  loses it; the event's webhook-id is fixed per recording, so it is never published twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder.archive.composites import CompositeStage
from recorder.archive.naming import key_function, stored_object
from recorder.archive.sealing import UNHASHED, Sealing
from recorder.archive.settings import ArchiveSettings
from recorder.archive.tickets import (
    TICKETS_DIR,
    CompositeTicket,
    Failure,
    FinishTicket,
    read_tickets,
    remove_ticket,
    write_ticket,
)
from recorder.crypto.age import AGE_CONTENT_TYPE, CryptoError
from recorder.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    ChainBuilder,
    ManifestError,
    Participant,
    StoredObject,
    build_manifest,
    content_type_for,
    folder_files,
    load_signing_key,
    public_key_pem,
    write_signed_manifest,
)
from recorder.models import MediaKind, PauseInterval, SegmentInfo, TrackSummary
from recorder.recording import ParticipantInfo, RecordingInfo
from recorder.storage import JobState, ObjectStore, Spool, SpoolHealth, Uploader, open_store
from recorder.storage.base import PutResult, sha256_file
from recorder.storage.spool import UploadJob
from recorder.summaries import read_summary
from recorder.webhooks import (
    Dispatcher,
    Outbox,
    RecordingFailed,
    RecordingFinished,
    RecordingPaused,
    RecordingResumed,
    RecordingStarted,
    WebhookEvent,
    presigned_links,
)

log = logging.getLogger(__name__)

FINISHING = 2**31 - 1
"""Upload priority of the first recording to finish (its last segments, track files, manifest): above
the segments of calls still running (0), which nobody waits for yet. Each recording finishing after it
gets one less, so that recordings ending together are stored (and announced) one after the other rather
than all at the end of the burst."""


def participants_of(info: RecordingInfo) -> list[Participant]:
    return [_participant(p) for p in info.participants]


def _participant(p: ParticipantInfo) -> Participant:
    return Participant(id=p.id, display_name=p.display_name, metadata=dict(p.metadata))


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _norm(folder: Path) -> Path:
    return Path(os.path.abspath(folder))


@dataclass
class _Recording:
    """What the archive knows of a running recording."""

    info: RecordingInfo
    key_template: str
    chains: dict[str, ChainBuilder] = field(default_factory=dict)
    kinds: dict[str, MediaKind] = field(default_factory=dict)
    objects: dict[str, StoredObject] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    failure: Failure | None = None
    recipients: list[str] | None = None
    """age recipients its objects are encrypted to (None: stored unencrypted)."""
    uploaded: dict[str, str] = field(default_factory=dict)
    """Object key -> SHA-256 of the bytes the uploader sent (sealed segments' ciphertext hashes)."""

    @property
    def id(self) -> str:
        return self.info.recording_id

    def key(self, name: str) -> str:
        return key_function(self.key_template, self.info)(name)

    def fail(self, stage: str, error: str) -> None:
        log.error("recording %s: %s failed: %s", self.id, stage, error)
        if self.failure is None:
            self.failure = Failure(stage=stage, error=error)


@dataclass
class _Running:
    spool: Spool
    uploader: Uploader
    outbox: Outbox
    dispatcher: Dispatcher
    key: Ed25519PrivateKey
    tasks: list[asyncio.Task[None]]


class Archive:
    """Storage, manifests and webhooks for recordings (see the module documentation)."""

    def __init__(self, settings: ArchiveSettings, data_dir: Path) -> None:
        self.settings = settings.resolved(data_dir)
        self.data_dir = data_dir
        self.store: ObjectStore = open_store(self.settings.storage)  # connects lazily
        self.health: SpoolHealth | None = None
        self.tickets_dir = self.settings.spool.dir / TICKETS_DIR
        self._run: _Running | None = None
        self._recordings: dict[str, _Recording] = {}
        self._folders: dict[Path, str] = {}
        self._tickets: dict[str, FinishTicket] = {}
        self._waiters: dict[str, asyncio.Future[bool]] = {}
        self._wake = asyncio.Event()
        self._touched: set[str] = set()
        """Recordings with an upload done since the completion loop last looked."""
        self._finishing: dict[str, int] = {}
        """Recordings whose end is being stored -> the upload priority of their objects (FINISHING...)."""
        self._finished_count = 0
        self._stopping = False
        self.sealing = Sealing(self.settings.spool.dir, self.settings.encryption)
        self._playback: tuple[list[object] | None] | None = None
        self.composites = CompositeStage(self)
        self.holds: list[Callable[[str], bool]] = []
        """Checks that keep a recording's local folder after it is stored (composites still to build)."""

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def running(self) -> _Running:
        if self._run is None:
            raise RuntimeError("the archive is not started")
        return self._run

    @property
    def spool(self) -> Spool:
        return self.running.spool

    @property
    def uploader(self) -> Uploader:
        return self.running.uploader

    @property
    def dispatcher(self) -> Dispatcher:
        return self.running.dispatcher

    async def start(self) -> None:
        """Open the spool and outbox, load the signing key, start uploading and delivering, and resume
        recordings that finished before a restart but were not announced yet."""
        if self._run is not None:
            return
        s = self.settings
        key = await asyncio.to_thread(load_signing_key, s.signing)
        spool = await asyncio.to_thread(Spool, s.spool)
        outbox = await asyncio.to_thread(Outbox, s.webhooks.outbox_path)
        uploader = Uploader(spool, self.store)
        uploader.on_uploaded.append(self._uploaded)
        dispatcher = Dispatcher(outbox, s.webhooks)
        self._run = run = _Running(spool, uploader, outbox, dispatcher, key, [])
        tickets, bad = await asyncio.to_thread(read_tickets, self.tickets_dir, FinishTicket)
        for path, why in bad:
            log.error("archive: unreadable finish ticket %s, left in place: %s", path, why)
        for ticket in tickets:
            priority = self._finish(ticket.recording_id)
            await asyncio.to_thread(spool.prioritize, ticket.recording_id, priority)
            failure = await asyncio.to_thread(self._ensure_queued, ticket)
            if failure is not None and ticket.failure is None:
                ticket.failure = failure
            self._tickets[ticket.recording_id] = ticket
        if tickets:
            log.info("archive: %d finished recordings wait for their uploads", len(tickets))
        composites, bad = await asyncio.to_thread(read_tickets, self.composites.dir, CompositeTicket)
        for path, why in bad:
            log.error("archive: unreadable composite ticket %s, left in place: %s", path, why)
        self.composites.tickets = {t.recording_id: t for t in composites}
        self.health = await asyncio.to_thread(spool.health)
        uploader.start()
        await dispatcher.start()
        run.tasks = [
            asyncio.create_task(self._complete_loop(), name="archive completion"),
            asyncio.create_task(self._health_loop(), name="archive spool health"),
        ]

    async def stop(self) -> None:
        """Finish queueing what was handed over, then stop uploading and delivering. Everything pending
        stays in the spool, the outbox and the tickets for the next start."""
        run = self._run
        if run is None:
            return
        for recording in list(self._recordings.values()):
            await self._drain(recording)
        self._stopping = True
        self._wake.set()
        for task in run.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await run.uploader.stop()
        await run.dispatcher.stop()
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_result(False)
        self._waiters.clear()
        self._tickets.clear()
        self.composites.tickets.clear()
        await asyncio.to_thread(run.spool.close)
        await asyncio.to_thread(run.outbox.close)
        self._run = None
        self._stopping = False

    def can_accept_new_recording(self) -> bool:
        """The spool's verdict (disk limits), refreshed every `health_interval` off the event loop."""
        return self.health is not None and self.health.accepting

    def playback_identities(self) -> list[object] | None:
        """The playback identity (archive.encryption), read once; None when none is configured."""
        if self._playback is None:
            self._playback = (self.settings.encryption.playback_identities(),)
        return self._playback[0]

    def public_key_pem(self) -> bytes:
        """The manifest signing key's public half (SubjectPublicKeyInfo PEM), for integrators."""
        return public_key_pem(self.running.key)

    def pending_announcements(self) -> list[str]:
        """Recordings finished but not yet announced (their uploads are pending)."""
        return sorted(self._tickets)

    def announcing(self, recording_id: str) -> bool:
        """Whether the recording is finished but recording.finished (or .failed) is not out yet."""
        return recording_id in self._tickets

    def held(self, recording_id: str) -> bool:
        """Whether something still needs the recording's local folder (see `holds`)."""
        return any(hold(recording_id) for hold in self.holds)

    async def add_composites(self, info: RecordingInfo, files: Sequence[str], errors: Sequence[str]) -> None:
        """Composites of a finished recording were built (`files`, relative to its folder) or not
        (`errors`): add them to its manifest, store and announce them (recorder/archive/composites.py).
        Returns once that is promised durably."""
        now = datetime.now(UTC)
        info = info.model_copy(deep=True)
        ticket = CompositeTicket(info=info, files=list(files), errors=list(errors), built_at=now)
        await self.composites.add(ticket)
        self._wake.set()

    # -- RecordingSink --------------------------------------------------------------------------------

    def recording_started(self, info: RecordingInfo) -> None:
        recording = self._register(info)
        event = RecordingStarted(
            recording_id=info.recording_id,
            room_id=info.room_id,
            call_id=info.call_id,
            started_at=_utc(info.started_at),
            participants=participants_of(info),
        )
        self._spawn(recording, self._publish(event, f"msg_{info.recording_id}.started"), "webhook")

    def recording_paused(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        recording = self._recording_at(info.folder) or self._register(info)
        event = RecordingPaused(
            recording_id=info.recording_id,
            room_id=info.room_id,
            call_id=info.call_id,
            paused_at=_utc(pause.start_time),
            by=pause.by,
            reason=pause.reason if participant is None else f"participant {participant}: {pause.reason}",
        )
        msg_id = f"msg_{info.recording_id}.paused.{pause.start_time:.6f}"
        self._spawn(recording, self._publish(event, msg_id), "webhook")

    def recording_resumed(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        recording = self._recording_at(info.folder) or self._register(info)
        event = RecordingResumed(
            recording_id=info.recording_id,
            room_id=info.room_id,
            call_id=info.call_id,
            resumed_at=_utc(pause.end_time if pause.end_time is not None else pause.start_time),
            by=pause.by,
        )
        msg_id = f"msg_{info.recording_id}.resumed.{pause.start_time:.6f}"
        self._spawn(recording, self._publish(event, msg_id), "webhook")

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None:
        recording = self._recording_at(folder)
        if recording is None:
            log.error(
                "archive: segment %s of %s closed in unknown recording folder %s", segment.path, track, folder
            )
            return
        chain = recording.chains.setdefault(track, ChainBuilder(recording.id, track))
        try:
            link = chain.add(segment)
        except ValueError as exc:
            recording.fail("manifest", str(exc))
            return
        metadata = {
            "recording-id": recording.id,
            "track": track,
            "segment": str(segment.index),
            "chain-link": link.link,
        }
        self._spawn(
            recording, self._queue(recording, segment.path, track, segment.sha256, metadata), "upload"
        )

    def track_finished(self, folder: Path, summary: TrackSummary) -> None:
        recording = self._recording_at(folder)
        if recording is None:
            log.error("archive: track %s finished in unknown recording folder %s", summary.name, folder)
            return
        recording.kinds[summary.name] = summary.kind
        if summary.state == "failed":
            recording.fail("mux", f"track {summary.name} failed while muxing")
        metadata = {"recording-id": recording.id, "track": summary.name}
        names = [summary.file] if summary.file else []
        names.append(f"{summary.name}.json")
        for name in names:
            sha256 = summary.file_sha256 if name == summary.file else None  # hashed as the join wrote it
            self._spawn(recording, self._queue(recording, name, summary.name, sha256, metadata), "upload")

    async def recording_finished(self, info: RecordingInfo, tracks: list[TrackSummary]) -> None:
        """Seal the recording (manifest, signature, finish ticket) and wait up to `finish_timeout` for
        everything of it to be stored and recording.finished to be in the outbox."""
        recording = self._recordings.get(info.recording_id)
        if recording is None:
            log.warning("archive: recording %s finished without having been started here", info.recording_id)
            recording = self._register(info)
        recording.info = info.model_copy(deep=True)
        self._finish(recording.id)
        await self._drain(recording)
        ticket = await asyncio.to_thread(self._seal, recording, tracks)
        self._forget(recording)
        if recording.recipients is not None:
            if ticket.manifest is not None:
                await self.drop_plaintext(info.recording_id, info.folder)
            else:
                log.error(
                    "recording %s: not sealed; its plaintext folder is kept for repair", info.recording_id
                )
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[info.recording_id] = waiter
        self._tickets[info.recording_id] = ticket
        self._touched.add(info.recording_id)
        self._wake.set()
        try:
            async with asyncio.timeout(self.settings.finish_timeout):
                await asyncio.shield(waiter)
        except TimeoutError:
            log.warning(
                "recording %s: uploads still pending after %.0fs (%s); it will be announced once stored",
                info.recording_id,
                self.settings.finish_timeout,
                self.running.uploader.last_error or "store slow",
            )

    # -- queueing -------------------------------------------------------------------------------------

    def _register(self, info: RecordingInfo) -> _Recording:
        recording = _Recording(info.model_copy(deep=True), self.settings.storage.key_template)
        recording.key("x")  # fail now, not on the first segment, when the ids cannot form a key
        recording.recipients = self.sealing.recipients_for(info)  # a small file, once per recording
        self._recordings[info.recording_id] = recording
        self._folders[_norm(info.folder)] = info.recording_id
        return recording

    def _forget(self, recording: _Recording) -> None:
        self._recordings.pop(recording.id, None)
        self._folders.pop(_norm(recording.info.folder), None)

    def _recording_at(self, folder: Path) -> _Recording | None:
        recording_id = self._folders.get(_norm(folder))
        return None if recording_id is None else self._recordings.get(recording_id)

    def _spawn(self, recording: _Recording, work: Coroutine[Any, Any, None], stage: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception as exc:
                log.exception("recording %s: %s step failed", recording.id, stage)
                recording.fail(stage, f"{type(exc).__name__}: {exc}")

        task = asyncio.create_task(guarded(), name=f"archive {recording.id} {stage}")
        recording.tasks.add(task)
        task.add_done_callback(recording.tasks.discard)

    async def _drain(self, recording: _Recording) -> None:
        while recording.tasks:
            batch = set(recording.tasks)
            recording.tasks -= batch
            await asyncio.gather(*batch, return_exceptions=True)

    async def _publish(
        self, data: RecordingStarted | RecordingPaused | RecordingResumed, msg_id: str
    ) -> None:
        await self.running.dispatcher.publish(WebhookEvent.of(data), msg_id=msg_id)

    async def _queue(
        self, recording: _Recording, name: str, track: str, sha256: str | None, metadata: dict[str, str]
    ) -> None:
        obj, kind = await asyncio.to_thread(
            self._queue_file, recording, name, track, recording.kinds.get(track), sha256, metadata
        )
        recording.kinds.setdefault(track, kind)
        recording.objects[name] = obj

    def _queue_file(
        self,
        recording: _Recording,
        name: str,
        track: str,
        kind: MediaKind | None,
        sha256: str | None,
        metadata: dict[str, str],
    ) -> tuple[StoredObject, MediaKind]:
        """(worker thread) Hash when needed and put the file in the spool durably."""
        folder = recording.info.folder
        if kind is None:
            summary = read_summary(folder, track)
            kind = summary.kind if summary is not None else _kind_from_name(track)
        if recording.recipients is not None:
            obj = self.sealing.seal(
                folder, recording.id, name, recording.key(name), kind, recording.recipients, sha256
            )
            metadata = {k: v for k, v in metadata.items() if k != "chain-link"} | {"encryption": "age"}
            expected = None if obj.sha256 == UNHASHED else obj.sha256
            self._enqueue(self.sealing.path(recording.id, name), recording.id, obj.key, expected, metadata)
            return obj, kind
        obj = stored_object(folder, name, recording.key(name), kind, sha256)
        self.spool_object(folder, recording.id, name, obj.key, obj.content_type, obj.sha256, metadata)
        return obj, kind

    def _enqueue(
        self,
        path: Path,
        recording_id: str,
        key: str,
        sha256: str | None,
        metadata: dict[str, str] | None = None,
        content_type: str = AGE_CONTENT_TYPE,
    ) -> None:
        """(worker thread) Queue a sealed-folder file (ciphertext, or a copy of a readable manifest file);
        it is deleted once stored unless local copies are kept (`delete_local_after_upload` false)."""
        self.running.spool.enqueue(
            path,
            key,
            content_type,
            recording_id=recording_id,
            metadata=metadata or {"recording-id": recording_id, "encryption": "age"},
            sha256=sha256,
            delete_after_upload=self.settings.delete_local_after_upload,
            priority=self._priority(recording_id),
        )

    def queue_object(self, folder: Path, recording_id: str, obj: StoredObject, encrypted: bool) -> None:
        """(worker thread) Queue an object a manifest lists, from wherever its bytes wait: the sealed
        folder (ciphertext; readable files of an encrypted recording are copied there first) or the
        recording folder."""
        if obj.encryption is not None:
            self._enqueue(self.sealing.path(recording_id, obj.name), recording_id, obj.key, obj.sha256)
        elif encrypted:
            path = self.sealing.clear_copy(folder, recording_id, obj.name)
            meta = {"recording-id": recording_id}
            self._enqueue(path, recording_id, obj.key, obj.sha256, meta, obj.content_type)
        else:
            self.spool_object(folder, recording_id, obj.name, obj.key, obj.content_type, obj.sha256)

    def queue_manifest(
        self, folder: Path, recording_id: str, key_for: Callable[[str], str], encrypted: bool
    ) -> None:
        """(worker thread) Queue manifest.json and its signature (readable, never hash-pinned: a revision
        replaces them)."""
        for name in (MANIFEST_NAME, SIGNATURE_NAME):
            if encrypted:
                path = self.sealing.clear_copy(folder, recording_id, name)
                meta = {"recording-id": recording_id}
                self._enqueue(path, recording_id, key_for(name), None, meta, content_type_for(name))
            else:
                self.spool_object(folder, recording_id, name, key_for(name), content_type_for(name), None)

    async def drop_plaintext(self, recording_id: str, folder: Path, *, finished: bool = False) -> None:
        """An encrypted recording's plaintext folder goes as soon as nothing needs it any more (composites
        still to build hold it); `finished`: nothing of the recording is left to do, forget its keys."""
        if self.held(recording_id) or self.composites.pending(recording_id):
            return
        await asyncio.to_thread(self.sealing.sync, recording_id)
        await asyncio.to_thread(shutil.rmtree, folder, True)
        log.info("recording %s: plaintext working copy deleted (its objects are encrypted)", recording_id)
        if finished:
            await asyncio.to_thread(self.sealing.forget, recording_id)

    def spool_object(
        self,
        folder: Path,
        recording_id: str,
        name: str,
        key: str,
        content_type: str,
        sha256: str | None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """(worker thread) Put the recording's file `name` in the spool durably, kept locally after its
        upload (the folder goes as a whole); `metadata` defaults to the recording id."""
        self.running.spool.enqueue(
            folder / name,
            key,
            content_type,
            recording_id=recording_id,
            metadata=metadata or {"recording-id": recording_id},
            sha256=sha256,
            delete_after_upload=False,
            priority=self._priority(recording_id),
        )

    def _finish(self, recording_id: str) -> int:
        if recording_id not in self._finishing:
            self._finishing[recording_id] = max(1, FINISHING - self._finished_count)
            self._finished_count += 1
        return self._finishing[recording_id]

    def _priority(self, recording_id: str) -> int:
        return self._finishing.get(recording_id, 0)

    # -- sealing --------------------------------------------------------------------------------------

    def _seal(self, recording: _Recording, tracks: list[TrackSummary]) -> FinishTicket:
        """(worker thread) Build and sign the manifest, write the finish ticket, queue what is missing."""
        info = recording.info
        folder = info.folder
        finished_at = _utc(info.finished_at) if info.finished_at else datetime.now(UTC)
        self.running.spool.prioritize(recording.id, self._priority(recording.id))  # last segments, tracks
        manifest = None
        failure = recording.failure
        try:
            participants = participants_of(info)
            encryption = None
            if recording.recipients is not None:
                self._seal_rest(recording)
                self._ciphertext_hashes(recording)
                participants, encryption = self.sealing.sealed_participants(
                    participants, recording.recipients
                )
            else:
                self._hash_rest(recording)
            built = build_manifest(
                folder,
                info.recording_id,
                tracks=tracks,
                created_at=_utc(info.started_at),
                finished_at=finished_at,
                room_id=info.room_id,
                call_id=info.call_id,
                participants=participants,
                track_participants=info.track_participants,
                objects=recording.objects.values(),
                key_for=recording.key,
                scan_folder=False,  # every file of the folder is in `objects` (_seal_rest, _hash_rest)
            )
            built.encryption = encryption
            self._check_chains(recording, tracks)
            manifest = write_signed_manifest(folder, built, self.running.key)
        except (ManifestError, OSError, ValueError, CryptoError) as exc:
            log.error("recording %s: cannot build its manifest: %s", info.recording_id, exc)
            failure = failure or Failure(stage="manifest", error=str(exc))
        ticket = FinishTicket(
            recording_id=info.recording_id,
            room_id=info.room_id,
            call_id=info.call_id,
            folder=folder,
            finished_at=finished_at,
            manifest=manifest,
            manifest_key=recording.key(MANIFEST_NAME),
            signature_key=recording.key(SIGNATURE_NAME),
            failure=failure,
        )
        write_ticket(self.tickets_dir, ticket)
        missing = self._ensure_queued(ticket)
        if missing is not None and ticket.failure is None:
            ticket.failure = missing
        return ticket

    def _seal_rest(self, recording: _Recording) -> None:
        """(worker thread) Encrypt and queue every file of the folder not queued yet (all of them after a
        restart: re-encrypted, they replace what an earlier run stored under the same keys)."""
        assert recording.recipients is not None
        folder = recording.info.folder
        for name in folder_files(folder):
            if name not in recording.objects:
                obj = self.sealing.seal(
                    folder, recording.id, name, recording.key(name), None, recording.recipients
                )
                self._enqueue(self.sealing.path(recording.id, name), recording.id, obj.key, obj.sha256)
                recording.objects[name] = obj

    def _ciphertext_hashes(self, recording: _Recording) -> None:
        """(worker thread) Fill in the ciphertext hashes not taken when segments were sealed: what the
        uploader sent (most segments went up during the call), else the spooled file hashed now."""
        for name, obj in list(recording.objects.items()):
            if obj.sha256 != UNHASHED:
                continue
            sha = recording.uploaded.get(obj.key) or self._sealed_sha256(recording.id, name, obj.key)
            recording.objects[name] = obj.model_copy(update={"sha256": sha})

    def _sealed_sha256(self, recording_id: str, name: str, key: str) -> str:
        try:
            return sha256_file(self.sealing.path(recording_id, name))
        except FileNotFoundError:  # uploaded and deleted since: the uploader recorded what it sent
            for job in self.running.spool.jobs(JobState.DONE, recording_id):
                if job.key == key and job.uploaded_sha256:
                    return job.uploaded_sha256
            raise

    def _hash_rest(self, recording: _Recording) -> None:
        """(worker thread) List every file of the folder not queued yet (all of them after a restart),
        hashed now; files queued earlier keep the hash taken when they were written (segments at their
        close) or queued, and are not read again (the uploader checks what it sends against it)."""
        folder = recording.info.folder
        for name in folder_files(folder):
            if name not in recording.objects:
                kind = recording.kinds.get(name.split("/", 1)[0].removesuffix(".segments"))
                recording.objects[name] = stored_object(folder, name, recording.key(name), kind)

    @staticmethod
    def _check_chains(recording: _Recording, tracks: list[TrackSummary]) -> None:
        """The chains extended live must end where the tracks' final segment lists say."""
        for track in tracks:
            live = recording.chains.get(track.name)
            announced = len(live.links) if live is not None else 0
            if announced != len(track.segments):
                raise ManifestError(
                    f"track {track.name}: {announced} segments were announced, the summary lists"
                    f" {len(track.segments)}"
                )

    def _ensure_queued(self, ticket: FinishTicket) -> Failure | None:
        """(worker thread) Queue every object of the ticket's manifest, and the manifest and signature,
        that the spool has no job for (after a crash between the ticket and the queueing)."""
        if ticket.manifest is None:
            return None
        rid = ticket.recording_id
        have = {job.key for job in self.running.spool.jobs(recording_id=rid)}
        encrypted = ticket.manifest.encryption is not None
        lost = []
        for obj in ticket.manifest.objects:
            if obj.key in have:
                continue
            source = self.sealing.path(rid, obj.name) if obj.encryption else ticket.folder / obj.name
            if not source.is_file() and not (encrypted and (self.sealing.folder(rid) / obj.name).is_file()):
                lost.append(obj.name)
                continue
            self.queue_object(ticket.folder, rid, obj, encrypted)
        if not {ticket.manifest_key, ticket.signature_key} <= have:
            keys = {MANIFEST_NAME: ticket.manifest_key, SIGNATURE_NAME: ticket.signature_key}
            self.queue_manifest(ticket.folder, rid, keys.__getitem__, encrypted)
        if lost:
            return Failure(stage="upload", error="never queued and gone locally: " + ", ".join(lost))
        return None

    # -- completion -----------------------------------------------------------------------------------

    def _uploaded(self, job: UploadJob, result: PutResult) -> None:
        if job.recording_id is not None:
            self._touched.add(job.recording_id)
            recording = self._recordings.get(job.recording_id)
            if recording is not None and recording.recipients is not None:
                recording.uploaded[job.key] = result.sha256
        self._wake.set()

    async def _complete_loop(self) -> None:
        checked_all = float("-inf")
        while not self._stopping:
            self._wake.clear()
            # After an upload only the recordings it belongs to can have become complete: with ten
            # recordings finishing at once, checking all of them after each of their 200 uploads was
            # 2,000 spool queries competing with the uploads for the worker threads. At least every
            # `completion_poll` (and at start) all are checked (a job that failed wakes nobody).
            every = time.monotonic() - checked_all >= self.settings.completion_poll
            if every:
                checked_all = time.monotonic()
            touched, self._touched = self._touched, set()
            for ticket in list(self._tickets.values()):
                if not every and ticket.recording_id not in touched:
                    continue
                try:
                    await self._try_complete(ticket)
                except Exception:
                    log.exception("recording %s: cannot announce it yet", ticket.recording_id)
            for composite in list(self.composites.tickets.values()):
                try:
                    await self.composites.advance(composite)
                except Exception:
                    log.exception("recording %s: cannot announce its composites yet", composite.recording_id)
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancel
                async with asyncio.timeout(self.settings.completion_poll):
                    await self._wake.wait()

    async def _try_complete(self, ticket: FinishTicket) -> None:
        run = self.running
        rid = ticket.recording_id
        if await asyncio.to_thread(run.spool.pending_count, rid):
            return
        failure = ticket.failure
        if failure is None:
            failed = await asyncio.to_thread(run.spool.jobs, JobState.FAILED, rid)
            if failed:
                failure = Failure(stage="upload", error="; ".join(f"{j.key}: {j.last_error}" for j in failed))
        data: RecordingFinished | RecordingFailed
        if failure is not None or ticket.manifest is None:
            failure = failure or Failure(stage="manifest", error="no manifest")
            data = RecordingFailed(
                recording_id=rid,
                room_id=ticket.room_id,
                call_id=ticket.call_id,
                failed_at=datetime.now(UTC),
                stage=failure.stage,
                error=failure.error,
            )
        else:
            keys = {MANIFEST_NAME: ticket.manifest_key, SIGNATURE_NAME: ticket.signature_key}
            expires = timedelta(seconds=self.settings.webhooks.presign_expiry_seconds)
            links = await asyncio.to_thread(presigned_links, self.store, ticket.manifest, keys, expires)
            data = RecordingFinished(
                recording_id=rid,
                room_id=ticket.room_id,
                call_id=ticket.call_id,
                finished_at=ticket.finished_at,
                manifest=ticket.manifest,
                links=links,
            )
        await run.dispatcher.publish(WebhookEvent.of(data), msg_id=f"msg_{rid}.end")
        await asyncio.to_thread(remove_ticket, self.tickets_dir, rid)
        self._tickets.pop(rid, None)
        self._finishing.pop(rid, None)
        ok = failure is None
        keep = self.held(rid) or self.composites.pending(rid)
        if ticket.manifest is not None and ticket.manifest.encryption is not None:
            await self.drop_plaintext(rid, ticket.folder, finished=True)
        elif ok and self.settings.delete_local_after_upload and not keep:
            await asyncio.to_thread(shutil.rmtree, ticket.folder, True)
        log.info("recording %s announced: %s", rid, data.kind)
        waiter = self._waiters.pop(rid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ok)

    async def _health_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.health_interval)
            try:
                self.health = await asyncio.to_thread(self.running.spool.health)
            except Exception:
                log.exception("archive: cannot read the spool's health")


def _kind_from_name(track: str) -> MediaKind:
    return MediaKind.AUDIO if "audio" in track.split("-") else MediaKind.VIDEO
