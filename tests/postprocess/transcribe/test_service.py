"""Transcripts and redaction in the service (recorder/transcripts): a call with espeak-ng speech, recorded
by `serve` through the ingest API as real RTP, in a room whose policy asks for a transcript and redaction.
The transcript is in the manifest's next revision (stored, signed, verifiable), search finds the
recording at the second the words were said, the card number is silenced in the redacted copy and masked
in the transcript, the webhooks come in order, the audit log holds each step, and an admin's manual
redaction goes the same way. A restart in the middle of a job does it again (one transcript.ready)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest
from age_kit import age_decrypt, keygen
from speech import AGENT_SAYS, CARD, CUSTOMER_SAYS, speak
from transcript_service_kit import ROOM, running, settings_for, webhook_receiver

from postprocess.transcribe.audio import SAMPLE_RATE, decode_track
from recorder.crypto.age import read_identities
from recorder.manifest import MANIFEST_NAME, Manifest, StoreSource, verify_recording
from recorder.manifest.signing import load_public_key
from recorder.storage import open_store
from recorder.transcripts.service import TranscriptJob
from recorder.webhooks import RedactionFinished, TranscriptReady

pytest.importorskip("faster_whisper")

SILENCE_FLOOR = 1e-4


def _rms(audio: np.ndarray, start: float, end: float) -> float:
    part = audio[max(0, round(start * SAMPLE_RATE)) : round(end * SAMPLE_RATE)]
    return float(np.sqrt((part.astype(np.float64) ** 2).mean())) if part.size else 0.0


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    work = tmp_path_factory.mktemp("voices")
    return [("alice", speak(work, "alice", AGENT_SAYS)), ("bob", speak(work, "bob", CUSTOMER_SAYS))]


async def test_a_call_is_transcribed_searchable_and_its_card_number_redacted(
    tmp_path: Path, voices: list[tuple[str, Path]]
) -> None:
    async with webhook_receiver() as receiver:
        # the room's composites: an audio mix (and the smallest video, required): rebuilt redacted
        composite = {"enabled": False, "profiles": ["sd"], "audio_mix": True, "fps": 5, "names": False}
        settings = settings_for(tmp_path, receiver, composite=composite)
        async with running(settings) as service:
            policy = {"transcribe": True, "redact": True, "outputs": ["tracks", "composite"]}
            status, _ = await service.call("PUT", f"/v1/rooms/{ROOM}/policy", policy)
            assert status == 200
            rid = await service.speak_into(voices)
            await receiver.wait_for(rid, "recording.finished", 60)
            ready = await receiver.wait_for(rid, "transcript.ready", 180)
            redacted = await receiver.wait_for(rid, "redaction.finished", 30)

            # search: the recording, at the second bob said it
            status, page = await service.call("GET", "/v1/recordings?q=order%20number")
            assert status == 200, page
            (item,) = [i for i in page["items"] if i["recording_id"] == rid]
            (hit,) = item["transcript_hits"]
            assert hit["speaker"] == "bob" and "order number" in hit["text"].lower()
            status, vtt = await service.call("GET", f"/v1/recordings/{rid}/transcript?format=vtt")
            assert status == 200 and vtt.startswith("WEBVTT") and "[redacted]" in vtt, vtt
            status, transcript = await service.call("GET", f"/v1/recordings/{rid}/transcript")
            assert status == 200
            spoken = " ".join(s["text"] for s in transcript["segments"])
            assert CARD not in spoken.replace(",", "").replace(" ", "")
            assert any(r["reason"] == "card-number" for r in transcript["redactions"])

            # manual redaction by an admin: the same path, its own copy and event
            status, accepted = await service.call(
                "POST",
                f"/v1/recordings/{rid}/redactions",
                {"start": 0.5, "end": 1.5, "reason": "agent's name"},
            )
            assert status == 202, accepted
            status, problem = await service.call(
                "POST", f"/v1/recordings/{rid}/redactions", {"start": 2, "end": 1, "reason": "x"}
            )
            assert status == 422, problem
            await _until(
                lambda: len([r for r in receiver.of(rid) if r.event.type.value == "redaction.finished"]) == 2
            )
            status, audit = await service.call("GET", f"/v1/audit?target={rid}&limit=1000")
            assert status == 200
        kinds = [r.event.type.value for r in receiver.of(rid)]

    assert kinds == [
        "recording.started",
        "recording.finished",
        "composite.finished",
        "composite.finished",
        "transcript.ready",
        "redaction.finished",
        "redaction.finished",
    ]
    event, done = ready.event.data, redacted.event.data
    assert isinstance(event, TranscriptReady) and isinstance(done, RedactionFinished)
    assert event.manifest is not None and event.manifest.revision == 3  # after the composites' revision
    assert {o.name for o in event.objects} == {"transcript.json", "transcript.vtt"}
    assert event.model == "tiny.en" and event.words > 20
    reasons = {r.reason for r in done.redactions}
    assert {"card-number", "card-expiry"} <= reasons and all(r.rule == "auto" for r in done.redactions)
    copy_names = {o.name for o in done.objects}
    assert {
        "redacted-1/bob-audio-1.webm",
        "redacted-1/composite-audio.m4a",
        "redacted-1/composite-sd.mp4",
    } <= copy_names
    actions = [(e["action"], e["outcome"]) for e in audit["entries"]]
    assert ("transcript.made", "ok") in actions and ("recording.redact", "ok") in actions
    assert (
        sum(a == ("recording.redacted", "ok") for a in actions) >= 3
    )  # the card, its expiry, the manual one
    assert ("recording.transcript", "ok") in actions

    # the store: the latest revision lists both redactions' copies and verifies with the service's key
    store = open_store(settings.archive.storage)  # type: ignore[union-attr]
    prefix = event.manifest.objects[0].key.rsplit("/", 1)[0] + "/"
    manifest = Manifest.model_validate_json(store.get_bytes(prefix + MANIFEST_NAME))
    assert manifest.revision == 4
    names = {o.name for o in manifest.objects}
    assert {"transcript.json", "redacted-1/bob-audio-1.webm", "redacted-2/bob-audio-1.webm"} <= names
    pem = tmp_path / "pub.pem"
    from recorder.manifest.signing import load_signing_key, public_key_pem

    pem.write_bytes(public_key_pem(load_signing_key(settings.archive.signing)))  # type: ignore[union-attr]
    report = verify_recording(StoreSource(store, prefix), load_public_key(pem))
    assert report.ok, report.problems
    stored = json.loads(store.get_bytes(prefix + "transcript.json"))
    assert CARD not in json.dumps(stored).replace(",", "").replace(" ", "")

    # the card number is silence in the redacted copy, speech in the original
    work = tmp_path / "check"
    work.mkdir()
    for name in (
        "bob-audio-1.webm",
        "redacted-1/bob-audio-1.webm",
        "composite-audio.m4a",
        "redacted-1/composite-audio.m4a",
    ):
        (work / name.replace("/", "-")).write_bytes(store.get_bytes(prefix + name))
    original, _ = decode_track(work / "bob-audio-1.webm")
    copy, _ = decode_track(work / "redacted-1-bob-audio-1.webm")
    card = next(r for r in done.redactions if r.reason == "card-number")
    offset = next(t["offset"] for t in stored["tracks"] if t["speaker"] == "bob")
    inner = (card.start + 0.3 - offset, card.end - 0.3 - offset)
    assert _rms(original, *inner) > 0.01
    assert _rms(copy, *inner) < SILENCE_FLOOR
    # the audio mix, rebuilt from the redacted tracks (AAC: re-encoded, so a looser floor)
    mix, _ = decode_track(work / "composite-audio.m4a")
    mix_copy, _ = decode_track(work / "redacted-1-composite-audio.m4a")
    inner = (card.start + 0.3, card.end - 0.3)  # the composite's zero is the transcript's origin
    assert _rms(mix, *inner) > 0.005
    assert _rms(mix_copy, *inner) < 1e-3


async def _until(check: object, within: float = 120, step: float = 0.1) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time limit"
        await asyncio.sleep(step)


async def test_a_restart_in_the_middle_of_a_job_does_it_again(
    tmp_path: Path, voices: list[tuple[str, Path]]
) -> None:
    async with webhook_receiver() as receiver:
        settings = settings_for(tmp_path, receiver, enabled=True)
        jobs = settings.data_dir / "transcripts" / "jobs"
        async with running(settings) as service:
            rid = await service.speak_into(voices[:1])
            # stopped as soon as the job is queued: in the worker process (loading the model) or before
            await _until((jobs / f"{rid}.json").is_file, 30, step=0.02)
        job = TranscriptJob.model_validate_json((jobs / f"{rid}.json").read_bytes())
        assert job.info.recording_id == rid
        assert not any(r.event.type.value == "transcript.ready" for r in receiver.of(rid))
        async with running(settings) as service:
            await receiver.wait_for(rid, "transcript.ready", 180)
            await _until(lambda: not (jobs / f"{rid}.json").exists(), 30)
            status, page = await service.call("GET", "/v1/recordings?q=help")
            assert status == 200 and [i["recording_id"] for i in page["items"]] == [rid]
        kinds = [r.event.type.value for r in receiver.of(rid)]
    assert kinds.count("transcript.ready") == 1 and "redaction.finished" not in kinds
    assert kinds.index("recording.finished") < kinds.index("transcript.ready")


async def test_the_transcript_of_an_encrypted_recording_is_stored_encrypted_and_redacted_from_the_store(
    tmp_path: Path, voices: list[tuple[str, Path]]
) -> None:
    identity = tmp_path / "identity.txt"
    recipient = keygen(identity)
    encryption = {"recipients": [recipient], "playback_identity_file": str(identity)}
    async with webhook_receiver() as receiver:
        settings = settings_for(tmp_path, receiver, encryption, enabled=True, keep_original=False)
        async with running(settings) as service:
            rid = await service.speak_into(voices[:1])
            ready = await receiver.wait_for(rid, "transcript.ready", 180)
            folder = settings.data_dir / "recordings" / rid
            await _until(lambda: not folder.exists(), 30)  # the plaintext working copy goes
            status, transcript = await service.call("GET", f"/v1/recordings/{rid}/transcript")
            event = ready.event.data
            assert isinstance(event, TranscriptReady)
            store = open_store(settings.archive.storage)  # type: ignore[union-attr]
            stored = next(o for o in event.objects if o.name == "transcript.json")
            sealed = await asyncio.to_thread(store.get_bytes, stored.key)
            # an admin's redaction: restored from the store with the playback identity, the originals
            # then deleted (keep_original = false), the copy stored encrypted
            body = {"start": 0.5, "end": 1.0, "reason": "agent's name"}
            status_redact, accepted = await service.call("POST", f"/v1/recordings/{rid}/redactions", body)
            assert status_redact == 202, accepted
            done = (await receiver.wait_for(rid, "redaction.finished", 120)).event.data
    assert event.manifest is not None
    assert event.manifest.encryption is not None
    assert {o.name: o.encryption for o in event.objects} == {
        "transcript.json": "age",
        "transcript.vtt": "age",
    }
    # through the API: decrypted from the store with the playback identity
    assert status == 200 and "help" in " ".join(s["text"] for s in transcript["segments"]).lower()
    assert sealed[:21] == b"age-encryption.org/v1"
    assert json.loads(age_decrypt(identity, sealed)) == transcript
    assert isinstance(done, RedactionFinished) and not done.original_kept and done.manifest is not None
    copy = next(o for o in done.objects if o.name == "redacted-1/alice-audio-1.webm")
    assert copy.encryption == "age" and store.get_bytes(copy.key)[:21] == b"age-encryption.org/v1"
    prefix = copy.key[: -len(copy.stored_name)]
    names = {o.key[len(prefix) :] for o in store.list(prefix)}
    assert "alice-audio-1.webm.age" not in names and "redacted-1/alice-audio-1.webm.age" in names
    assert "transcript.json.age" not in names  # stored unmasked before the manual redaction: replaced
    manifest = Manifest.model_validate_json(store.get_bytes(prefix + MANIFEST_NAME))
    assert "alice-audio-1.webm" in {r.name for r in manifest.removed}
    pem = tmp_path / "pub.pem"
    from recorder.manifest.signing import load_signing_key, public_key_pem

    pem.write_bytes(public_key_pem(load_signing_key(settings.archive.signing)))  # type: ignore[union-attr]
    report = verify_recording(
        StoreSource(store, prefix), load_public_key(pem), identities=read_identities(identity)
    )
    assert report.ok, report.problems
