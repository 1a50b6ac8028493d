"""The Janus event door, tried as an attacker would (issue 10): path traversal through every name an
event carries, forged events that Janus never sent, an intake left open, hostile bodies and floods of
events. Each test fails on the code before the fix: traversal created folders outside data_dir, forged
`published` / `destroyed` started and finished recordings, a non-UTF-8 token or deep JSON gave 500, and
270,000 `joined` events grew memory without bound."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from janus_fixture import ROOM, JanusServer, eventually, join_fake_publisher
from pydantic import ValidationError
from service_kit import API_KEY, bridge_following, bridge_settings, client, free_tcp_port, get_json, until

from janus_bridge.bridge import MAX_PENDING_JOINS, MAX_PUBLISHERS, JanusBridge
from janus_bridge.client import JanusClient
from janus_bridge.events import parse_events
from janus_bridge.intake import EventIntake
from recorder.api.settings import ApiSettings
from recorder.commands.serve import serve
from recorder.errors import RecordingRefusedError
from recorder.models import Codec
from recorder.recording import ParticipantInfo
from recorder.service.manager import RecordingManager, StreamRequest
from recorder.service.settings import JanusSettings, ServiceSettings

TOKEN = "evt-0123456789"
TRAVERSALS = ["../../../../escape-target/pwn", "/tmp/x/abs", "..", ".", "a/b", "abc\n", "a\\b", "x\x00y", ""]


def videoroom(name: str, room: object, publisher: object | None = None, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event": name, "room": room, **data}
    if publisher is not None:
        body["id"] = publisher
    return {"type": 64, "timestamp": 1, "event": {"plugin": "janus.plugin.videoroom", "data": body}}


STREAMS = [{"type": "audio", "mid": "0", "codec": "opus"}, {"type": "video", "mid": "1", "codec": "vp8"}]


def every_traversal() -> list[dict[str, Any]]:
    """`published` events with a hostile room id, publisher id or mid, each alone."""
    events = []
    for bad in TRAVERSALS:
        events.append(videoroom("published", ROOM, bad, streams=STREAMS))
        events.append(videoroom("published", bad, 7, streams=STREAMS))
        streams = [{"type": "video", "mid": bad, "codec": "vp8"}]
        events.append(videoroom("published", ROOM, 7, streams=streams))
        events.append(videoroom("joined", ROOM, bad))
    events.append(videoroom("published", ROOM, True, streams=STREAMS))  # a boolean is not an id
    events.append(videoroom("published", ROOM, -1, streams=STREAMS))
    return events


def tree(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def test_events_with_traversal_in_any_name_are_refused() -> None:
    events, malformed = parse_events(json.dumps(every_traversal()))
    assert events == [] and malformed == len(every_traversal())


def test_janus_answer_sdp_with_a_hostile_mid_forwards_nothing_of_it() -> None:
    from janus_bridge.bridge import publisher_streams

    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:../../x\r\na=rtpmap:111 opus/48000/2\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n"
    )
    assert publisher_streams(sdp) == [{"type": "video", "mid": "1", "codec": "vp8"}]


async def test_manager_refuses_unsafe_names_before_making_anything(tmp_path: Path) -> None:
    """Defence in depth: whatever calls the manager (bridge, API, a future SFU), nothing is created."""
    settings = ServiceSettings(data_dir=tmp_path / "data", janus=JanusSettings(events_token=TOKEN))
    manager = RecordingManager(settings)
    try:
        for bad in TRAVERSALS:
            stream = StreamRequest(mid="0", codec=Codec.OPUS, payload_type=111)
            with pytest.raises(RecordingRefusedError):
                await manager.add_participant("1234", ParticipantInfo(id=bad), [stream])
            with pytest.raises(RecordingRefusedError):
                await manager.add_participant(bad, ParticipantInfo(id="7"), [stream])
            bad_mid = StreamRequest(mid=bad, codec=Codec.OPUS, payload_type=111)
            with pytest.raises(RecordingRefusedError):
                await manager.add_participant("1234", ParticipantInfo(id="7"), [bad_mid])
        assert manager.rooms == {}
        assert (
            not (tmp_path / "data" / "recordings").exists() or tree(tmp_path / "data" / "recordings") == set()
        )
        assert tree(tmp_path) <= {Path("data"), Path("data/recordings"), Path("data/state.json")}
    finally:
        await manager.shutdown()


def test_a_state_file_with_traversal_is_not_taken_up(tmp_path: Path) -> None:
    state = {"rooms": {"1234": {"recording_id": "../../x", "participants": {}}}, "forward_hosts": []}
    (tmp_path / "state.json").write_text(json.dumps(state))
    manager = RecordingManager(ServiceSettings(data_dir=tmp_path, janus=JanusSettings(events_token=TOKEN)))
    assert manager.resumable == {}
    manager.workers.shutdown()


# -- the intake as a whole, in a running service ----------------------------------------------------


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """`callvault serve` with Janus unreachable (events cannot be confirmed) and an events token."""
    port = free_tcp_port()
    settings = ServiceSettings(
        data_dir=tmp_path / "data",
        http_host="127.0.0.1",
        http_port=port,
        rtp_bind="127.0.0.1",
        api=ApiSettings(admin_key=API_KEY),
        janus=JanusSettings(ws_url=f"ws://127.0.0.1:{free_tcp_port()}", events_token=TOKEN),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, signals=False))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:

        async def up() -> bool:
            try:
                async with http.get(f"{base}/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await until(up, 15)
    try:
        yield base, tmp_path
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def post(base: str, body: bytes | str, **headers: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        url = f"{base}/janus/events"
        async with http.post(url, data=body, headers={"X-Janus-Token": TOKEN, **headers}) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()


async def test_forged_traversal_events_leave_no_trace_outside_data_dir(service: tuple[str, Path]) -> None:
    base, root = service
    before = tree(root)
    status, _, _ = await post(base, json.dumps(every_traversal()))
    assert status == 200  # Janus must not retry: the body was taken, its entries refused
    async with client() as http:
        room_start = await http.post(f"{base}/v1/rooms/..%2F..%2Fx/start")
        assert room_start.status in (400, 404, 422)

        async def counted() -> bool:
            return (await get_json(http, f"{base}/v1/status"))[1]["janus_events"]["malformed"] >= len(
                every_traversal()
            )

        await until(counted, 5)
        status_body = (await get_json(http, f"{base}/v1/status"))[1]
    assert status_body["rooms"] == {} and status_body["janus_events"]["received"] == 0
    created = {p for p in tree(root) - before if p.parts[0] != "data"}
    assert created == set(), created
    assert not await asyncio.to_thread(Path("/tmp/x/abs").exists)


async def test_forged_published_with_janus_unreachable_starts_nothing(service: tuple[str, Path]) -> None:
    """Before: a forged `published` with Janus down left an empty recording open forever (state.json)."""
    base, root = service
    status, _, _ = await post(base, json.dumps([videoroom("published", ROOM, 99, streams=STREAMS)]))
    assert status == 200
    async with client() as http:

        async def acted() -> bool:
            body = (await get_json(http, f"{base}/v1/status"))[1]
            return bool(body["janus_events"]["delivered"] >= 1)

        await until(acted, 5)
        body = (await get_json(http, f"{base}/v1/status"))[1]
    assert body["rooms"] == {} and body["janus_bridge"]["forwarded_publishers"] == 0
    state = (
        json.loads((root / "data" / "state.json").read_text()) if (root / "data/state.json").exists() else {}
    )
    assert state.get("rooms", {}) == {}
    assert not list((root / "data" / "recordings").iterdir())


async def test_hostile_bodies_get_clear_4xx_never_500(service: tuple[str, Path]) -> None:
    base, _ = service
    deep = "[" * 100_000 + "]" * 100_000
    status, _, text = await post(base, deep)
    assert status == 400 and "nested too deeply" in text
    status, _, _ = await post(base, b"\xff\xfe not json")
    assert status == 400
    # A token header that is not UTF-8: refused as unauthorized, not a server error.
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/janus/events", data=b"[]", headers={"X-Janus-Token": b"\xff\xfe".decode("latin-1")}
        ) as r,
    ):
        assert r.status == 401
    status, _, text = await post(base, json.dumps([{"type": 1}] * 10_001))
    assert status == 413 and "at most 10000" in text
    status, _, _ = await post(base, json.dumps([videoroom("joined", ROOM, 5)]), **{"X-Janus-Token": "wrong"})
    assert status == 401


def test_the_service_refuses_to_start_with_an_open_intake(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"janus\.events_token"):
        ServiceSettings(data_dir=tmp_path)
    # Said explicitly: it runs, and says so (the readiness test below).
    assert ServiceSettings(data_dir=tmp_path, janus=JanusSettings(events_open=True)).janus.events_open


async def test_an_open_intake_is_announced_in_readyz(tmp_path: Path) -> None:
    port = free_tcp_port()
    settings = ServiceSettings(
        data_dir=tmp_path / "data",
        http_host="127.0.0.1",
        http_port=port,
        api=ApiSettings(enabled=False),
        janus=JanusSettings(ws_url=f"ws://127.0.0.1:{free_tcp_port()}", events_open=True),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, signals=False))
    try:
        async with aiohttp.ClientSession() as http:

            async def answered() -> bool:
                try:
                    return (await get_json(http, f"http://127.0.0.1:{port}/readyz"))[0] in (200, 503)
                except aiohttp.ClientError:
                    return False

            await until(answered, 15)
            _, body = await get_json(http, f"http://127.0.0.1:{port}/readyz")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert "without credentials" in body["warnings"]["janus_events"]


async def test_event_state_stays_bounded_under_a_flood_of_forged_events(tmp_path: Path) -> None:
    """270,000 forged `joined` (and `published` for unrecorded rooms) events: what the bridge keeps stays
    under its caps (before: one entry per event, 172 MB -> 577 MB)."""
    settings = ServiceSettings(data_dir=tmp_path, janus=JanusSettings(events_token=TOKEN, record_rooms=["1"]))
    manager = RecordingManager(settings)
    bridge = JanusBridge(manager, settings.janus, JanusClient("ws://127.0.0.1:9"))
    intake = EventIntake(bridge.on_events, token=TOKEN)
    try:
        batch = 9_000
        for n in range(30):
            joined = [
                {**videoroom("joined", 5000 + i % 300, n * batch + i), "handle_id": n * batch + i}
                for i in range(batch)
            ]
            published = [videoroom("published", 9000 + n, i, streams=STREAMS) for i in range(400)]
            events, malformed = parse_events(json.dumps(joined + published))
            assert malformed == 0
            await bridge.on_events(events)
        assert len(bridge._joined) <= MAX_PENDING_JOINS
        assert bridge.counters()["known_publishers"] <= MAX_PUBLISHERS
        assert bridge.counters()["forgotten_publishers"] > 0
    finally:
        await intake.close()
        await manager.shutdown()


# -- forged events against a real Janus --------------------------------------------------------------


@pytest.fixture
async def bridge_with_janus(janus: JanusServer, tmp_path: Path) -> AsyncIterator[JanusBridge]:
    # Every room recorded (record_rooms "all"), as by default.
    async with bridge_following(bridge_settings(janus, tmp_path / "data", record_rooms="all")) as b:
        yield b


async def test_forged_events_are_checked_with_janus_before_acting(bridge_with_janus: JanusBridge) -> None:
    bridge = bridge_with_janus
    manager = bridge.manager
    # A publisher Janus has never heard of: nothing starts.
    events, _ = parse_events(json.dumps([videoroom("published", ROOM, 424242, streams=STREAMS)]))
    await bridge.on_events(events)
    assert manager.rooms == {} and bridge.unconfirmed == 1

    # A real publisher: recorded; a forged `destroyed` of its live room changes nothing.
    handle, publisher = await join_fake_publisher(bridge.client, display="agent")
    events, _ = parse_events(json.dumps([videoroom("published", ROOM, publisher, streams=STREAMS)]))
    await bridge.on_events(events)
    assert len(manager.participant_streams(str(ROOM), str(publisher))) == 2
    events, _ = parse_events(json.dumps([videoroom("destroyed", ROOM)]))
    await bridge.on_events(events)
    assert str(ROOM) in manager.rooms and bridge.unconfirmed == 2
    assert len(manager.participant_streams(str(ROOM), str(publisher))) == 2

    # The real leave (the handle goes away): Janus confirms, the recording ends.
    await handle.detach()
    events, _ = parse_events(json.dumps([videoroom("leaving", ROOM, publisher)]))
    await bridge.on_events(events)

    async def finished() -> bool:
        return str(ROOM) not in manager.rooms and len(manager.finished) == 1

    await eventually(finished, within=5)
