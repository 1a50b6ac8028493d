"""What `transcripts.keep_original = false` deletes once a redacted copy is stored (pure: the plan from the
signed manifest, recorder/transcripts/originals.py), and the refusal of a store that protects an object."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from recorder.manifest import Manifest, StoredObject
from recorder.storage.base import Retention, RetentionMode
from recorder.storage.local import LocalStore
from recorder.transcripts.originals import plan_removal, protection
from recorder.webhooks import examples as hooks


def _object(name: str) -> StoredObject:
    return StoredObject(name=name, key=hooks.PREFIX + name, size=10, content_type="x", sha256="0" * 64)


def _manifest(*extra: str) -> Manifest:
    m = hooks.manifest()
    return m.model_copy(update={"objects": [*m.objects, *(_object(n) for n in extra)]})


def test_the_redacted_tracks_their_segments_composites_and_earlier_copies_go() -> None:
    manifest = _manifest(
        "composite-sd.mp4", "composite-audio.m4a", "transcript.json", "transcript.vtt",
        "redacted-1/1002-audio-1.webm", "redacted-1/composite-audio.m4a", "redacted-1/transcript.json",
        "redacted-1/redactions.json", "redacted-2/1002-audio-1.webm", "redacted-2/composite-audio.m4a",
        "redacted-2/transcript.json", "redacted-2/redactions.json",
    )  # fmt: skip
    planned = {o.name for o in plan_removal(manifest, "redacted-2", ["1002-audio-1.webm"], False)}
    assert planned == {
        "1002-audio-1.webm",
        "1002-audio-1.segments/000000.webm",
        "1002-audio-1.segments/000001.webm",
        "composite-sd.mp4",
        "composite-audio.m4a",
        "redacted-1/1002-audio-1.webm",
        "redacted-1/composite-audio.m4a",
        "redacted-1/transcript.json",
    }  # the video track, the summaries, the automatic (masked) transcript, the reports and the new copy stay
    manual = {o.name for o in plan_removal(manifest, "redacted-2", ["1002-audio-1.webm"], True)}
    assert manual - planned == {"transcript.json", "transcript.vtt"}  # stored unmasked before a manual one


def test_an_object_under_legal_hold_or_retention_is_not_deleted(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    objects = [_object("1002-audio-1.webm"), _object("composite-audio.m4a")]
    locked = Retention(mode=RetentionMode.COMPLIANCE, until=datetime.now(UTC) + timedelta(days=1))
    store.put_bytes(objects[0].key, b"media")
    store.put_bytes(objects[1].key, b"media")
    store.put_bytes(hooks.PREFIX + "locked.webm", b"media", retention=locked)
    assert protection(store, objects) is None
    assert protection(store, [_object("gone.webm")]) is None  # what is gone already is no obstacle
    store.set_legal_hold(objects[1].key, True)
    assert protection(store, objects) == "composite-audio.m4a is under legal hold in the store"
    store.set_legal_hold(objects[1].key, False)
    why = protection(store, [*objects, _object("locked.webm")])
    assert why is not None and why.startswith("locked.webm is under object lock until")
