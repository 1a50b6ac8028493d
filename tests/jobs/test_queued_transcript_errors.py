"""A worker node that cannot transcribe (no model, no transcribe extra) fails a queued transcript job once,
with one clear line the recorder hands on (transcript.failed), never a retry loop (and a recorder that
stopped while its job waited follows the same job when it asks again); a worker's result that
names a path outside its attempt folder is refused (recorder/jobs/transcripts.py)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from postgres_kit import PostgresServer

from recorder.jobs.queue import ensure_schema, make_app
from recorder.jobs.transcripts import (
    MISSING_EXTRA,
    QueuedResult,
    QueuedTranscripts,
    cannot_transcribe,
    place,
    transcript_jobs_of,
)
from recorder.transcripts.settings import TranscriptSettings
from recorder.transcripts.work import TranscriptWorkers, WorkError, WorkRequest, WorkResult

sys.path.insert(1, str(Path(__file__).parent))  # jobs_kit
from jobs_kit import node, stop_all

pytestmark = [pytest.mark.timeout(120)]
RID = "rec-no-model-1"


async def test_a_worker_without_the_model_fails_the_job_once_with_one_clear_error(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    data_dir = tmp_path / "data"
    folder = data_dir / "recordings" / RID
    folder.mkdir(parents=True)
    (folder / "audio-bob.webm").write_bytes(b"not read: the model is checked first")
    missing = tmp_path / "no-model"
    await ensure_schema(url)
    app = make_app(url)
    await app.open_async()
    worker: subprocess.Popen[bytes] | None = None
    try:
        local = TranscriptWorkers(TranscriptSettings())  # (not used: the folder is a shared one)
        queued = QueuedTranscripts(
            app, manifest_first=False, recordings=data_dir / "recordings", local=local, poll=0.1
        )
        request = WorkRequest(folder=folder, transcribe=True, redact_auto=True)
        # the recorder stops while its job waits in the queue (no worker yet); started again, it follows
        # the same job: never queued twice
        first = asyncio.create_task(queued.submit(request, RID))
        async with asyncio.timeout(30):
            while not await transcript_jobs_of(app, RID):  # noqa: ASYNC110 - the queue's table
                await asyncio.sleep(0.05)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        worker, _ = node(
            tmp_path, "worker", url, ["worker"], data_dir,
            f'[janus]\nenabled = false\n[transcripts]\nmodel = "{missing}"\n', "",
            env={"CALLVAULT_COMPOSITE__ENABLED": "false"},
        )  # fmt: skip
        with pytest.raises(WorkError) as caught:
            async with asyncio.timeout(90):
                await queued.submit(request, RID)
        assert (
            str(caught.value)
            == f"this worker node cannot transcribe: transcripts.model {missing} is not a folder"
        )
        assert await transcript_jobs_of(app, RID) == [("failed", 1)]  # once: no retry loop
        assert worker.poll() is None  # the worker goes on
        # the recording untouched: no attempt folder, the result file taken by the recorder
        assert sorted(p.name for p in folder.iterdir()) == ["audio-bob.webm"]
    finally:
        await app.close_async()
        if worker is not None:
            stop_all([worker])
            print((tmp_path / "worker.log").read_text()[-3000:])


def test_a_worker_without_the_transcribe_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cannot_transcribe(TranscriptSettings()) is None  # (this test's venv has it)
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # as if not installed
    assert cannot_transcribe(TranscriptSettings()) == MISSING_EXTRA
    assert "pip install 'callvault[transcribe]'" in MISSING_EXTRA


def test_a_result_naming_a_file_outside_the_attempt_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "recordings" / RID
    attempt = folder / ".transcript.7.1.99.tmp"
    attempt.mkdir(parents=True)
    (attempt / "transcript.json").write_text("{}")
    (tmp_path / "recordings" / ".transcript.7.1.99.tmp").mkdir()  # beside the recording's folder
    for staged, names in [
        ("../.transcript.7.1.99.tmp", ["transcript.json"]),
        ("audio-bob.webm", ["transcript.json"]),  # not an attempt folder
        (attempt.name, ["../manifest.json"]),
        (attempt.name, [".hidden"]),
        (attempt.name, ["transcript.vtt"]),  # not made by the attempt
    ]:
        bad = QueuedResult(result=WorkResult(transcript=names), staged=staged)
        with pytest.raises(WorkError):
            place(folder, bad)
        assert not (folder / "transcript.json").exists() and not (tmp_path / "manifest.json").exists()
    good = QueuedResult(result=WorkResult(transcript=["transcript.json"]), staged=attempt.name)
    assert place(folder, good).transcript == ["transcript.json"]
    assert (folder / "transcript.json").read_text() == "{}"
    assert not attempt.exists()
