"""Object keys from templates and the LocalStore backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recorder.storage import LocalStore, ObjectNotFoundError, Retention, RetentionMode, StorageSettings
from recorder.storage.base import StorageRefusedError
from recorder.storage.keys import prefix_glob, recording_prefix, render_key

DAY = datetime(2024, 5, 1, 23, 30, tzinfo=UTC)


def test_default_template_renders_date_id_name() -> None:
    key = render_key(StorageSettings().key_template, recording_id="rec-1", name="video-1.webm", date=DAY)
    assert key == "2024/05/01/rec-1/video-1.webm"
    assert (
        recording_prefix(StorageSettings().key_template, recording_id="rec-1", date=DAY)
        == "2024/05/01/rec-1/"
    )
    assert prefix_glob(StorageSettings().key_template, recording_id="rec-1") == "*/*/*/rec-1/"


@pytest.mark.parametrize(
    "template", ["{recording_id}/{name}/x", "{bucket}/{name}", "/{recording_id}/{name}", "{name"]
)
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        StorageSettings(key_template=template)


@pytest.mark.parametrize("name", ["../x", "a//b", "/abs", "a/./b", ""])
def test_names_cannot_escape_the_recording(name: str) -> None:
    with pytest.raises(ValueError):
        render_key("{recording_id}/{name}", recording_id="r", name=name or "a//", date=DAY)


def test_extra_settings_are_forbidden() -> None:
    with pytest.raises(ValueError):
        StorageSettings.model_validate({"bakend": "s3"})


def test_local_store_roundtrip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 3000)
    result = store.put_file("a/b/f.bin", src, "video/webm", {"Track": "video-1"})
    assert result.size == 3000
    info = store.stat("a/b/f.bin")
    assert info.content_type == "video/webm"
    assert info.metadata == {"track": "video-1", "sha256": result.sha256}
    assert store.get_bytes("a/b/f.bin") == src.read_bytes()
    store.put_bytes("a/c.json", b"{}", "application/json")
    assert [o.key for o in store.list("a/")] == ["a/b/f.bin", "a/c.json"]
    assert [o.key for o in store.list("a/b")] == ["a/b/f.bin"]
    url = store.presign_get("a/c.json", timedelta(minutes=5))
    assert url.startswith("file://") and url.endswith("/a/c.json")
    store.delete("a/c.json")
    with pytest.raises(ObjectNotFoundError):
        store.stat("a/c.json")
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes("nope")
    assert not store.object_lock_enabled()


def test_local_store_honours_explicit_retention(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    until = datetime.now(UTC) + timedelta(days=1)
    store.put_bytes("k", b"evidence", retention=Retention(mode=RetentionMode.COMPLIANCE, until=until))
    assert store.get_retention("k") == Retention(mode=RetentionMode.COMPLIANCE, until=until)
    with pytest.raises(StorageRefusedError):
        store.delete("k")
    with pytest.raises(StorageRefusedError):
        store.put_bytes("k", b"overwrite")
