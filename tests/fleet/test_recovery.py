"""Recorders of a fleet sharing one recordings folder (the chart's ReadWriteMany volume): a recorder that
starts again finalizes the tracks its own crash left — its recordings by id, and those its state file
names — and never the tracks a live peer is writing. Alone (SQLite), every unfinished track, as always."""

from __future__ import annotations

from pathlib import Path

from archive_kit import FakeTrack

from recorder.fleet.recovery import owns, recover_own
from recorder.models import Codec
from recorder.mux.recovery import unfinished_tracks
from recorder.service.manager import RoomState, ServiceState, new_recording_id
from recorder.service.settings import ServiceSettings

PG = "postgresql://callvault@db.invalid/callvault"  # never connected: only its dialect is read


def _live(recordings: Path, rid: str) -> Path:
    folder = recordings / rid
    folder.mkdir(parents=True)
    FakeTrack(folder, "agent-video-0", Codec.VP8).segment(0)  # segments, summary still "recording"
    return folder


def _settings(data_dir: Path, node: str, url: str | None) -> ServiceSettings:
    api = {"catalog_url": url} if url else {}
    return ServiceSettings(
        data_dir=data_dir,
        janus={"events_open": True},
        fleet={"node_name": node},
        api=api,  # type: ignore[arg-type]
    )


def test_only_its_own_recordings_in_a_fleet(tmp_path: Path) -> None:
    shared = tmp_path / "shared-recordings"
    mine = new_recording_id("room_7-a", "rec-a")
    legacy = "20261130T101010Z-1234-0badcafe"  # from before the fleet: named in rec-a's state file
    peers = [
        new_recording_id("room", "rec-b"),
        new_recording_id("x_rec-a", "b"),
        new_recording_id("r", "a.rec-a"),
    ]
    assert owns(mine, "rec-a") and not any(owns(rid, "rec-a") for rid in peers)
    for rid in (mine, legacy, *peers):
        _live(shared, rid)
    data_dir = tmp_path / "rec-a"
    data_dir.mkdir()
    state = ServiceState(rooms={"1234": RoomState(recording_id=legacy)})
    (data_dir / "state.json").write_text(state.model_dump_json())

    recovered = recover_own(_settings(data_dir, "rec-a", PG), shared)
    assert len(recovered) == 2
    for rid in (mine, legacy):
        assert unfinished_tracks(shared / rid) == []
    for rid in peers:  # a live peer's tracks are left alone
        assert unfinished_tracks(shared / rid) == ["agent-video-0"]


def test_every_unfinished_track_alone(tmp_path: Path) -> None:
    recordings = tmp_path / "data" / "recordings"
    rids = [new_recording_id("room"), "20261130T101010Z-other-0badcafe"]
    for rid in rids:
        _live(recordings, rid)
    assert len(recover_own(_settings(tmp_path / "data", "rec-a", None), recordings)) == 2
    assert all(unfinished_tracks(recordings / rid) == [] for rid in rids)
