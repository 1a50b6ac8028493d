"""What the service remembers across restarts (data_dir/state.json)."""

from __future__ import annotations

import json
from pathlib import Path

from recorder.service.manager import RecordingManager, unused_track_name
from recorder.service.settings import JanusSettings, ServiceSettings


def test_earlier_forward_addresses_are_remembered(tmp_path: Path) -> None:
    """A pod that comes back with a new IP still recognises the forwarders it had Janus make before."""
    (tmp_path / "state.json").write_text(json.dumps({"rooms": {}, "forward_hosts": ["10.0.0.5", "10.0.0.6"]}))
    manager = RecordingManager(
        ServiceSettings(data_dir=tmp_path, janus=JanusSettings(forward_host="10.0.0.9"))
    )
    assert manager.forward_hosts == ["10.0.0.5", "10.0.0.6", "10.0.0.9"]
    manager.workers.shutdown()


def test_unreadable_state_is_ignored_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    manager = RecordingManager(ServiceSettings(data_dir=tmp_path))
    assert manager.resumable == {}
    manager.workers.shutdown()


def test_track_names_never_collide_with_an_earlier_run(tmp_path: Path) -> None:
    (tmp_path / "7-video-1.json").write_text("{}")
    (tmp_path / "7-video-1-part2.segments").mkdir()
    assert unused_track_name(tmp_path, "7-video-1") == "7-video-1-part3"
    assert unused_track_name(tmp_path, "8-video-1") == "8-video-1"
