"""What the service remembers across restarts (data_dir/state.json)."""

from __future__ import annotations

import json
from pathlib import Path

from recorder.service.manager import RecordingManager, unused_track_name
from recorder.service.settings import JanusSettings, ServiceSettings

JANUS = JanusSettings(events_token="t")


def test_earlier_forward_addresses_are_remembered(tmp_path: Path) -> None:
    """A pod that comes back with a new IP still recognises the forwarders it had Janus make before."""
    (tmp_path / "state.json").write_text(json.dumps({"rooms": {}, "forward_hosts": ["10.0.0.5", "10.0.0.6"]}))
    manager = RecordingManager(
        ServiceSettings(data_dir=tmp_path, janus=JanusSettings(forward_host="10.0.0.9", events_token="t"))
    )
    assert manager.forward_hosts == ["10.0.0.5", "10.0.0.6", "10.0.0.9"]
    manager.workers.shutdown()


def test_unreadable_state_is_ignored_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    manager = RecordingManager(ServiceSettings(data_dir=tmp_path, janus=JANUS))
    assert manager.resumable == {}
    manager.workers.shutdown()


def test_track_names_never_collide_with_an_earlier_run(tmp_path: Path) -> None:
    (tmp_path / "7-video-1.json").write_text("{}")
    (tmp_path / "7-video-1-part2.segments").mkdir()
    assert unused_track_name(tmp_path, "7-video-1") == "7-video-1-part3"
    assert unused_track_name(tmp_path, "8-video-1") == "8-video-1"


async def test_a_refused_admission_starts_no_recording(tmp_path: Path) -> None:
    import pytest

    from recorder.errors import RecordingRefusedError
    from recorder.models import Codec
    from recorder.recording import ParticipantInfo
    from recorder.service.manager import StreamRequest

    manager = RecordingManager(ServiceSettings(data_dir=tmp_path, rtp_bind="127.0.0.1", janus=JANUS))
    manager.admission.append(lambda: "the upload spool is near its disk limit")
    with pytest.raises(RecordingRefusedError, match="spool is near its disk limit"):
        await manager.add_participant("r", ParticipantInfo(id="1"), [StreamRequest("0", Codec.OPUS, 111)])
    assert manager.rooms == {} and not (tmp_path / "recordings").exists()
    await manager.shutdown()


async def test_an_abandoned_recording_is_handed_to_the_sinks(tmp_path: Path) -> None:
    from recorder.models import Codec, MediaKind, TrackSummary
    from recorder.recording import RecordingInfo

    folder = tmp_path / "recordings" / "rec-1"
    folder.mkdir(parents=True)
    track = TrackSummary(
        name="7-video-1", kind=MediaKind.VIDEO, codec=Codec.VP8, clock_rate=90000, payload_type=96,
        container="webm", state="recovered", first_wallclock=100.0, last_wallclock=160.0,
    )  # fmt: skip
    (folder / "7-video-1.json").write_text(track.model_dump_json())
    state = {"rooms": {"1234": {"recording_id": "rec-1", "participants": {"7": {"display_name": "agent"}}}}}
    (tmp_path / "state.json").write_text(json.dumps(state))

    finished: list[tuple[RecordingInfo, list[TrackSummary]]] = []

    class Sink:
        async def recording_finished(self, info: RecordingInfo, tracks: list[TrackSummary]) -> None:
            finished.append((info, tracks))

    manager = RecordingManager(ServiceSettings(data_dir=tmp_path, janus=JANUS), [Sink()])  # type: ignore[list-item]
    info = await manager.finish_abandoned("1234")
    assert info is not None and finished and finished[0][0] is info
    assert (info.started_at, info.finished_at) == (100.0, 160.0)
    assert info.track_participants == {"7-video-1": "7"} and info.participants[0].display_name == "agent"
    assert [t.state for t in finished[0][1]] == ["recovered"]
    assert json.loads((tmp_path / "state.json").read_text())["rooms"] == {}
    await manager.shutdown()


async def test_a_simulcast_stream_is_remembered_as_simulcast(tmp_path: Path) -> None:
    """A restarted service forwards a simulcast publisher through Janus's simulcast context again (Janus's
    listforwarders does not say so): before, it came back recorded at the lowest layer."""
    from recorder.models import Codec
    from recorder.recording import ParticipantInfo
    from recorder.service.manager import StreamRequest

    settings = ServiceSettings(
        data_dir=tmp_path, rtp_bind="127.0.0.1", rtp_port_min=47100, rtp_port_max=47199, janus=JANUS
    )
    manager = RecordingManager(settings)
    streams = [StreamRequest("0", Codec.OPUS, 111), StreamRequest("1", Codec.VP8, 96, simulcast=True)]
    await manager.add_participant("1234", ParticipantInfo(id="7"), streams)
    restarted = RecordingManager(settings)  # what a service started after a crash now would read
    (room,) = restarted.resumable.values()
    restarted.workers.shutdown()
    await manager.shutdown()
    assert [(s.mid, s.simulcast) for s in room.participants["7"].streams] == [("0", False), ("1", True)]
