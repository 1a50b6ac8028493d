"""Whether a recording captures: the room's policy (as the recording's `capture` tag) over the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.api.models import RoomPolicy
from recorder.api.policy import PolicyStore
from recorder.capture.policy import capture_wanted
from recorder.recording import RecordingInfo
from recorder.service.settings import JanusSettings


@pytest.mark.parametrize(
    ("tags", "default", "wanted"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"capture": "on"}, False, True),
        ({"capture": "off"}, True, False),
        ({"capture": "maybe"}, False, False),  # not a choice: the setting stands
    ],
)
def test_the_tag_wins_over_the_setting(tags: dict[str, str], default: bool, wanted: bool) -> None:
    assert capture_wanted(tags, default) is wanted


@pytest.mark.parametrize(("capture", "tag"), [(True, "on"), (False, "off"), (None, None)])
def test_a_rooms_policy_tags_its_recordings(tmp_path: Path, capture: bool | None, tag: str | None) -> None:
    store = PolicyStore(None, "all", JanusSettings())  # type: ignore[arg-type]  # the hook reads no database
    store.rooms["1234"] = RoomPolicy(record=True, capture=capture)
    info = RecordingInfo(recording_id="r1", folder=tmp_path, room_id="1234", started_at=0.0)
    store.start_hook(info)
    assert info.metadata.get("capture") == tag
