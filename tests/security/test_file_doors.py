"""Names read from files (manifests, state) never leave their folder (issue 10, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from recorder.manifest.model import ChainLink, StoredObject
from recorder.names import UnsafeNameError, child

HASH = "0" * 64


OUTSIDE = ["../../etc/passwd", "/etc/shadow", "a/../../b", "a//b", ".", "a\\..\\b", ""]


@pytest.mark.parametrize("name", OUTSIDE)
def test_a_manifest_naming_a_file_outside_its_recording_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="relative path"):
        StoredObject(name=name, key=f"k/{name}", size=1, content_type="x", sha256=HASH)
    with pytest.raises(ValidationError, match="relative path"):
        ChainLink(index=0, path=name, sha256=HASH, link=HASH)


def test_child_refuses_every_way_out(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "link").symlink_to(tmp_path)  # a symlink that points out
    for name in ["..", ".", "../x", "a/b", "/abs", "x\x00", "", "link/x", "link"]:
        with pytest.raises(UnsafeNameError):
            child(tmp_path / "inside", name)
    assert child(tmp_path / "inside", "7-video-1.json") == tmp_path / "inside" / "7-video-1.json"
