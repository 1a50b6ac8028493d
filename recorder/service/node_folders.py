"""The folders under data_dir that belong to one node, and a lock on each (docs/fleet.md, "One data_dir per
node"). Nodes of a fleet may share `<data_dir>/recordings`, `composites` and `exports` (a ReadWriteMany
volume), but never a node's own state: its `state.json` (the recorder role: the rooms it records), its
upload spool and webhook outbox (the archive: each upload and webhook sent once), and, with an archive, its
transcript jobs (`transcripts/jobs`: an interrupted job is taken up by the node that queued it, whose
archive makes its manifest revision). Without an archive a node's transcript jobs are not locked (tests and
small set-ups run an api and a recorder node on one data_dir that way; not safe for redactions). Two nodes
on one such folder would upload, announce or redo each other's work; the second one refuses to start
instead, naming the folder and who holds it.

The locks are `flock`s on a `.callvault-node.lock` file in each folder (NFS and CephFS honour them), held
for the life of the process; the file says which node holds it, for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import IO, TYPE_CHECKING

from recorder.errors import CallVaultError

if TYPE_CHECKING:
    from recorder.service.settings import ServiceSettings

LOCK_NAME = ".callvault-node.lock"


class FolderInUseError(CallVaultError):
    """Another CallVault process holds one of this node's own folders."""


def private_folders(
    data_dir: Path, recorder: bool, spool: Path | None, outbox: Path | None, transcripts: bool
) -> list[tuple[str, Path]]:
    """(what, folder) of each folder this node needs for itself."""
    found: list[tuple[str, Path]] = []
    if recorder:
        found.append(("state.json (the recorder's rooms)", data_dir))
    if spool is not None:
        found.append(("the upload spool (archive.spool.dir)", spool))
    if outbox is not None:
        found.append(("the webhook outbox (archive.webhooks.outbox_path)", outbox.parent))
    if transcripts:
        found.append(("the transcript jobs", data_dir / "transcripts" / "jobs"))
    return found


class FolderLocks:
    def __init__(self) -> None:
        self._held: list[IO[str]] = []

    def claim(self, folders: list[tuple[str, Path]], node: str) -> None:
        """Lock every folder, or none: FolderInUseError naming the first one another process holds."""
        seen: set[Path] = set()
        try:
            for what, path in folders:
                folder = path.resolve()
                if folder in seen:
                    continue
                seen.add(folder)
                self._held.append(_lock(what, folder, node))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        for handle in self._held:
            with contextlib.suppress(OSError):
                handle.close()
        self._held.clear()


def _lock(what: str, folder: Path, node: str) -> IO[str]:
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK_NAME).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()[:200] or "another process"
        handle.close()
        raise FolderInUseError(
            f"{folder} ({what}) is in use by another CallVault node ({holder}): nodes may share"
            " data_dir's recordings/, composites/ and exports/, but each needs its own data_dir (or its own"
            " archive.spool.dir and archive.webhooks.outbox_path) for the rest"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"node {node}, host {socket.gethostname()}, pid {os.getpid()}\n")
    handle.flush()
    return handle


def folders_of(settings: ServiceSettings) -> list[tuple[str, Path]]:
    """The folders `callvault serve` with these settings keeps for itself (as serve decides: a worker-only
    node on the PostgreSQL job queue has no archive nor transcriber)."""
    from recorder.jobs.settings import Role  # noqa: PLC0415 (settings import each other's modules)

    roles = set(settings.roles)
    on_queue = settings.api.catalog_location(settings.data_dir).dialect == "postgresql"
    worker_only = on_queue and roles == {Role.WORKER}
    archive = settings.archive.resolved(settings.data_dir) if settings.archive is not None else None
    if worker_only:
        archive = None
    transcripts = settings.transcripts.enabled or settings.transcripts.redact or settings.api.enabled
    return private_folders(
        settings.data_dir,
        Role.RECORDER in roles,
        archive.spool.dir if archive is not None else None,
        archive.webhooks.outbox_path if archive is not None else None,
        transcripts and archive is not None,  # its jobs end in the archive's manifest revisions
    )
