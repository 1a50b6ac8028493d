"""The bridge against a real Janus 1.1.2: a `published` event for a recorded room allocates ports,
creates real forwarders (pt chosen per codec, RTCP port on video, which Janus latches), `unpublished`
twice finishes the tracks once, an empty room finishes its recording, and reconciliation stops
forwarders into our port range that we do not know."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from janus_fixture import (
    FAST_BACKOFF,
    ROOM,
    ROOM_SECRET,
    JanusServer,
    eventually,
    join_fake_publisher,
    start_or_skip,
)
from service_kit import bridge_following, bridge_settings

from janus_bridge.bridge import JanusBridge
from janus_bridge.client import JanusClient
from janus_bridge.events import parse_events
from janus_bridge.videoroom import ForwardStream
from recorder.service.manager import RecordingManager


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    server = start_or_skip(JanusServer(tmp_path_factory.mktemp("janus")))
    yield server
    server.stop()


@pytest.fixture
async def bridge(janus: JanusServer, tmp_path: Path) -> AsyncIterator[JanusBridge]:
    async with bridge_following(bridge_settings(janus, tmp_path / "data", (46000, 46999))) as b:
        yield b


def event(name: str, room: int, publisher: int, **extra: object) -> bytes:
    data = {"event": name, "room": room, "id": publisher, **extra}
    return json.dumps(
        [{"type": 64, "timestamp": 1, "event": {"plugin": "janus.plugin.videoroom", "data": data}}]
    ).encode()


STREAMS = [{"type": "audio", "mid": "0", "codec": "opus"}, {"type": "video", "mid": "1", "codec": "vp8"}]


async def test_published_publisher_is_forwarded_and_recorded(bridge: JanusBridge) -> None:
    handle, publisher = await join_fake_publisher(bridge.client, display="agent")
    events, malformed = parse_events(event("published", ROOM, publisher, display="agent", streams=STREAMS))
    assert malformed == 0
    await bridge.on_events(events)

    manager = bridge.manager
    streams = manager.participant_streams(str(ROOM), str(publisher))
    assert [(s.mid, s.kind.value) for s in streams] == [("0", "audio"), ("1", "video")]
    videoroom = await bridge.client.videoroom()
    (listed,) = [p for p in await videoroom.list_forwarders(ROOM, ROOM_SECRET) if p.publisher_id == publisher]
    by_port = {f.port: f for f in listed.forwarders}
    audio, video = streams
    assert by_port[audio.port].type == "audio" and by_port[audio.port].remote_rtcp_port is None
    assert by_port[video.port].type == "video" and by_port[video.port].remote_rtcp_port == video.rtcp_port
    # Janus latches the RTCP path by sending to our RTCP port: our PLIs can now reach the publisher.
    track = manager.rooms[str(ROOM)].session.tracks[video.track]
    local_rtcp = by_port[video.port].local_rtcp_port

    async def latched() -> bool:
        return track.receiver.rtcp_remote is not None and track.receiver.rtcp_remote[1] == local_rtcp

    await eventually(latched)
    info = manager.rooms[str(ROOM)].info
    assert [(p.id, p.display_name) for p in info.participants] == [(str(publisher), "agent")]

    # `unpublished` arrives twice; then the empty room's recording finishes after the grace period.
    gone, _ = parse_events(event("unpublished", ROOM, publisher))
    await bridge.on_events(gone + gone)
    assert manager.participant_streams(str(ROOM), str(publisher)) == []

    async def finished() -> bool:
        return str(ROOM) not in manager.rooms and len(manager.finished) == 1

    await eventually(finished, within=5)
    folder = manager.finished[0].folder
    summaries = sorted(p.name for p in folder.glob("*.json"))
    assert summaries == [f"{publisher}-audio-0.json", f"{publisher}-video-1.json"]
    await handle.detach()


async def test_rooms_not_recorded_are_ignored(bridge: JanusBridge) -> None:
    events, _ = parse_events(event("published", 999, 5, streams=STREAMS))
    await bridge.on_events(events)
    assert bridge.manager.rooms == {}


async def test_reconcile_stops_unknown_forwarders_into_our_range(bridge: JanusBridge) -> None:
    handle, publisher = await join_fake_publisher(bridge.client, display="customer")
    events, _ = parse_events(event("published", ROOM, publisher, streams=STREAMS))
    await bridge.on_events(events)
    videoroom = await bridge.client.videoroom()
    # A forwarder left by an earlier run of the service, into our range but unknown to us now.
    await videoroom.rtp_forward(
        ROOM,
        publisher,
        "127.0.0.1",
        [ForwardStream(mid="0", port=46990)],
        secret=ROOM_SECRET,
        admin_key="supersecret",
    )
    await bridge.reconcile()
    (listed,) = [p for p in await videoroom.list_forwarders(ROOM, ROOM_SECRET) if p.publisher_id == publisher]
    ours = {s.port for s in bridge.manager.participant_streams(str(ROOM), str(publisher))}
    assert {f.port for f in listed.forwarders} == ours
    await handle.detach()
    await asyncio.sleep(0)


async def test_a_restarted_service_takes_the_call_up_again(janus: JanusServer, tmp_path: Path) -> None:
    """The service dies mid-call (no clean finish): the next one resumes the same recording, replaces
    the old forwarders with new ones, and names the new tracks apart from the old."""
    settings = bridge_settings(janus, tmp_path / "data", (46000, 46999))
    first = JanusBridge(
        RecordingManager(settings), settings.janus, JanusClient(janus.ws_url, backoff=FAST_BACKOFF)
    )
    await first.start()
    caller = JanusClient(janus.ws_url, backoff=FAST_BACKOFF)  # the publisher outlives the service
    await caller.connect()
    handle, publisher = await join_fake_publisher(caller, display="caller")
    events, _ = parse_events(event("published", ROOM, publisher, display="caller", streams=STREAMS))
    await first.on_events(events)
    recording = first.manager.rooms[str(ROOM)]
    old_forwarders = set(first.forwarders[(str(ROOM), str(publisher))])
    for track in recording.session.tracks.values():  # the process dies: sockets close, nothing is finished
        track.receiver.close()
    await first.client.close()

    second = JanusBridge(
        RecordingManager(settings), settings.janus, JanusClient(janus.ws_url, backoff=FAST_BACKOFF)
    )
    assert str(ROOM) in second.manager.resumable
    try:
        await second.start()

        async def resumed() -> bool:
            return bool(second.manager.participant_streams(str(ROOM), str(publisher)))

        await eventually(resumed)
        assert second.manager.rooms[str(ROOM)].info.recording_id == recording.info.recording_id
        streams = second.manager.participant_streams(str(ROOM), str(publisher))
        assert [s.track for s in streams] == [f"{publisher}-audio-0-part2", f"{publisher}-video-1-part2"]
        videoroom = await second.client.videoroom()
        (listed,) = [
            p for p in await videoroom.list_forwarders(ROOM, ROOM_SECRET) if p.publisher_id == publisher
        ]
        # Exactly the new forwarders remain, to the new tracks' ports; the old ones were stopped.
        assert {f.port for f in listed.forwarders} == {s.port for s in streams}
        assert len(listed.forwarders) == 2 and not {f.stream_id for f in listed.forwarders} & old_forwarders
    finally:
        await handle.detach()
        await caller.close()
        await second.manager.shutdown()
        await second.close()


async def test_recording_turned_on_and_off_mid_call(bridge: JanusBridge) -> None:
    room = str(ROOM)
    bridge.room_policy[room] = False
    handle, publisher = await join_fake_publisher(bridge.client, display="late")
    events, _ = parse_events(event("published", ROOM, publisher, display="late", streams=STREAMS))
    await bridge.on_events(events)
    assert bridge.manager.rooms == {}  # not recorded while off

    await bridge.set_recording(room, True)  # everyone publishing now is recorded at once
    assert len(bridge.manager.participant_streams(room, str(publisher))) == 2

    await bridge.set_recording(room, False)
    assert bridge.manager.rooms == {} and len(bridge.manager.finished) == 1
    videoroom = await bridge.client.videoroom()
    assert not [p for p in await videoroom.list_forwarders(ROOM, ROOM_SECRET) if p.publisher_id == publisher]
    await handle.detach()


REFERENCE = Path("/work/shared/reference/janus/events")


def test_publisher_streams_from_janus_answer() -> None:
    from janus_bridge.bridge import publisher_streams

    answer = json.loads((REFERENCE / "evh_jsep_local_answer.json").read_text())["event"]["jsep"]["sdp"]
    assert publisher_streams(answer) == [
        {"type": "audio", "mid": "0", "codec": "opus"},
        {"type": "video", "mid": "1", "codec": "vp8"},
    ]


async def test_forwarded_as_soon_as_janus_answers_the_publisher(bridge: JanusBridge) -> None:
    """`joined` then Janus's SDP answer (before any media, before `published`) starts the recording."""
    handle, publisher = await join_fake_publisher(bridge.client, display="early")
    answer = json.loads((REFERENCE / "evh_jsep_local_answer.json").read_text())
    joined = [{"type": 64, "handle_id": 77, "event": {"plugin": "janus.plugin.videoroom",
               "data": {"event": "joined", "room": ROOM, "id": publisher, "display": "early"}}}]  # fmt: skip
    jsep = [{**answer, "handle_id": 77}]
    events, malformed = parse_events(json.dumps(joined + jsep))
    assert malformed == 0
    await bridge.on_events(events)
    streams = bridge.manager.participant_streams(str(ROOM), str(publisher))
    assert [(s.mid, s.kind.value) for s in streams] == [("0", "audio"), ("1", "video")]
    # The `published` that follows changes nothing.
    later, _ = parse_events(event("published", ROOM, publisher, display="early", streams=STREAMS))
    await bridge.on_events(later)
    assert bridge.manager.participant_streams(str(ROOM), str(publisher)) == streams
    await handle.detach()
