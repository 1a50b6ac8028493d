"""The ingest API in process (no mediasoup): hostile bodies and paths refused with one clear problem, the
room policy obeyed, producer pauses in the track summary, leases that end abandoned rooms' recordings."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from test_rtp_parameters import OPUS, VP8

from recorder.api.app import ControlApi
from recorder.api.site import HttpSite
from recorder.service.app import build_app
from recorder.service.manager import RecordingManager
from recorder.service.settings import ServiceSettings

KEY = "ingest-test-admin-key-0123456789abcdefgh"
BASE = "/v1/ingest/rooms/room-1"


class Service:
    def __init__(self, url: str, http: aiohttp.ClientSession, manager: RecordingManager) -> None:
        self.url, self.http, self.manager = url, http, manager

    async def call(self, method: str, path: str, body: Any = None, key: str = KEY) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"}
        async with self.http.request(method, self.url + path, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def register(
        self, pid: str, mid: str, params: dict[str, Any], kind: str = "video"
    ) -> tuple[int, Any]:
        body = {"kind": kind, "mid": mid, "rtp_parameters": params, "display_name": pid.title()}
        return await self.call("POST", f"{BASE}/participants/{pid}/streams", body)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    low = random.randrange(30000, 39000, 2)
    settings = ServiceSettings(
        data_dir=tmp_path / "data",
        http_host="127.0.0.1",
        rtp_bind="127.0.0.1",
        rtp_port_min=low,
        rtp_port_max=low + 39,
        janus={"enabled": False},
        api={"admin_key": KEY},
        ingest={"lease_seconds": 0.6, "empty_room_grace": 0.2},
    )
    settings.data_dir.mkdir(parents=True)
    manager = RecordingManager(settings)
    app = build_app(manager, [], {})
    api = await ControlApi.open(settings, manager)
    manager.sinks.insert(0, api.sink)
    api.mount(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = HttpSite(runner, "127.0.0.1", 0, settings.api)
    await site.start()
    async with aiohttp.ClientSession() as http:
        yield Service(f"http://127.0.0.1:{site.port}", http, manager)
    await manager.shutdown()
    await runner.cleanup()
    await api.close()


async def until(check: Any, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/participants/..%2Fx/streams", {"kind": "video", "mid": "0", "rtp_parameters": VP8}, 422, "path"),
        ("/participants/a/streams", {"kind": "video", "mid": "../0", "rtp_parameters": VP8}, 422, "body.mid"),
        ("/participants/a/streams", {"kind": "data", "mid": "0", "rtp_parameters": VP8}, 422, "body.kind"),
        ("/participants/a/streams", {"kind": "video", "mid": "0", "rtp_parameters": {"codecs": []}}, 422,
         "body.rtp_parameters"),
        ("/participants/a/streams", {"kind": "audio", "mid": "0", "rtp_parameters": VP8}, 422,
         "a consumer of kind audio"),
        ("/participants/a/streams", {"kind": "video", "mid": "0", "rtp_parameters": VP8, "x": 1}, 422,
         "body.x"),
    ],
)  # fmt: skip
async def test_hostile_registrations_get_one_clear_problem(
    service: Service, path: str, body: dict[str, Any], status: int, field: str
) -> None:
    got, problem = await service.call("POST", BASE + path, body)
    assert got == status and field in json.dumps(problem), problem
    assert service.manager.rooms == {}  # nothing started, no port taken
    assert service.manager.ports.in_use == 0


async def test_registration_answers_ports_and_is_idempotent_per_mid(service: Service) -> None:
    status, first = await service.register("alice", "0", VP8)
    assert status == 201, first
    assert first["track"] == "alice-video-0" and first["ssrc"] == 622318427 and first["payload_type"] == 101
    assert first["rtcp_port"] == first["port"] + 1 and first["lease_seconds"] == 0.6
    status, again = await service.register("alice", "0", VP8)
    assert status == 201 and again["port"] == first["port"]
    status, audio = await service.register("alice", "1", OPUS, kind="audio")
    assert (
        status == 201 and audio["track"] == "alice-audio-1" and audio["recording_id"] == first["recording_id"]
    )
    recording = service.manager.rooms["room-1"]
    assert [p.display_name for p in recording.info.participants] == ["Alice"]
    track = recording.session.tracks["alice-video-0"]
    assert track.receiver.media_ssrc == 622318427  # PLIs can name the Consumer's SSRC before media


async def test_producers_of_a_new_participant_registering_at_once_get_their_own_tracks(
    service: Service,
) -> None:
    (_, video), (_, audio) = await asyncio.gather(
        service.register("alice", "0", VP8), service.register("alice", "1", OPUS, kind="audio")
    )
    assert (video["track"], audio["track"]) == ("alice-video-0", "alice-audio-1")
    assert video["port"] != audio["port"]
    assert sorted(service.manager.rooms["room-1"].session.tracks) == ["alice-audio-1", "alice-video-0"]


async def test_producer_pause_and_resume_are_in_the_track_summary(service: Service) -> None:
    await service.register("alice", "0", VP8)
    assert (await service.call("POST", f"{BASE}/participants/alice/streams/0/pause"))[0] == 200
    assert (await service.call("POST", f"{BASE}/participants/alice/streams/0/resume"))[0] == 200
    assert (await service.call("POST", f"{BASE}/participants/alice/streams/9/pause"))[0] == 404
    status, finished = await service.call("DELETE", BASE)
    assert status == 200 and finished["tracks"] == ["alice-video-0"]
    (info,) = service.manager.finished
    summary = json.loads((info.folder / "alice-video-0.json").read_text())
    assert len(summary["pauses"]) == 1 and summary["pauses"][0]["reason"] == "producer paused"


class Listener:
    """A recording sink that keeps the pauses and resumes it is told of (the archive turns them into the
    recording.paused / recording.resumed webhooks)."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str | None, str | None]] = []

    def __getattr__(self, name: str) -> Any:
        if name in ("recording_paused", "recording_resumed"):
            return lambda info, participant, pause: self.heard.append((name, participant, pause.reason))
        if name == "recording_finished":
            return _nothing
        return lambda *args: None


async def _nothing(*args: Any) -> None:
    return None


async def test_producer_pauses_are_told_once_and_an_operator_pause_holds(service: Service) -> None:
    listener = Listener()
    service.manager.sinks.append(listener)  # type: ignore[arg-type]
    body = {"kind": "video", "mid": "0", "rtp_parameters": VP8, "paused": True}
    assert (await service.call("POST", f"{BASE}/participants/alice/streams", body))[0] == 201
    assert (await service.call("POST", f"{BASE}/participants/alice/streams/0/pause"))[0] == 200  # again
    session = service.manager.rooms["room-1"].session
    assert service.manager.pause("room-1", by="operator", reason="card number")
    assert (await service.call("POST", f"{BASE}/participants/alice/streams/0/resume"))[0] == 200
    assert session.tracks["alice-video-0"].pipeline.paused  # the operator's pause still holds
    assert service.manager.resume("room-1")
    assert not session.tracks["alice-video-0"].pipeline.paused
    reason = "stream 0: producer paused"
    assert [h for h in listener.heard if h[1] == "alice"] == [
        ("recording_paused", "alice", reason),
        ("recording_resumed", "alice", reason),
    ]


async def test_a_room_whose_policy_says_no_is_refused(service: Service) -> None:
    status, _ = await service.call("PUT", "/v1/rooms/room-1/policy", {"record": False})
    assert status == 200
    status, problem = await service.register("alice", "0", VP8)
    assert status == 409 and "not recorded" in problem["detail"]


async def test_lease_ends_the_recording_when_heartbeats_stop(service: Service) -> None:
    await service.register("alice", "0", VP8)
    for _ in range(4):  # heartbeats keep it: longer than one lease in all
        status, lease = await service.call(
            "PUT", f"{BASE}/lease", {"streams": [{"participant_id": "alice", "mid": "0"}]}
        )
        assert status == 200 and lease["missing"] == []
        await asyncio.sleep(0.2)
    assert "room-1" in service.manager.rooms
    await until(lambda: service.manager.finished)  # then they stop
    assert [i.room_id for i in service.manager.finished] == ["room-1"]


async def test_heartbeat_names_streams_callvault_does_not_record(service: Service) -> None:
    streams = [{"participant_id": "alice", "mid": "0"}, {"participant_id": "bob", "mid": "1"}]
    await service.register("alice", "0", VP8)
    status, lease = await service.call("PUT", f"{BASE}/lease", {"streams": streams})
    assert status == 200 and lease["missing"] == [{"participant_id": "bob", "mid": "1"}]


async def test_last_stream_leaving_ends_the_room_after_the_grace(service: Service) -> None:
    await service.register("alice", "0", VP8)
    status, _ = await service.call("DELETE", f"{BASE}/participants/alice/streams/0")
    assert status == 200
    await until(lambda: service.manager.finished)
    (info,) = service.manager.finished
    assert info.participants[0].left_at is not None
