"""The bridge forwards a simulcasting publisher through Janus's simulcast context (issue 19, item 13).

Forwarding starts at Janus's SDP answer, before the `published` event. A forwarder made without
``simulcast`` carries layer 0 only (Janus 1.1's forwarders default to substream 0): a browser publishing
1280x720/640x360/320x180 was recorded at 320x180 for the whole call. What tells that a stream simulcasts,
read as Janus's core reads it: rids (``a=rid``/``a=simulcast``, which Janus also puts in its answer) or an
SSRC group ``SIM`` of two or more SSRCs (only in the publisher's offer, which Janus reports as a JSEP event
of owner "remote"). Janus simulcasts VP8 and H.264 only, and a simulcast forwarder of any other stream
forwards nothing: those never get the flag.

Against a real Janus 1.1.2 (no media: ICE needs a network namespace, the API does not), with Chromium
156's real simulcast offer and the answer Janus gave it (``data/``), and with a legacy SSRC-group offer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from janus_fixture import PUBLISHER_OFFER_SDP, ROOM, JanusServer, start_or_skip
from service_kit import bridge_following, bridge_settings

from janus_bridge.bridge import JanusBridge, publisher_streams
from janus_bridge.client import VIDEOROOM_PLUGIN, JanusClient
from janus_bridge.events import parse_events
from janus_bridge.videoroom import ForwardStream, VideoRoom

DATA = Path(__file__).parent / "data"
CHROMIUM_OFFER = (DATA / "chromium156-vp8-simulcast-offer.sdp").read_bytes().decode()
JANUS_ANSWER = (DATA / "janus112-vp8-simulcast-answer.sdp").read_bytes().decode()
SSRC_SIMULCAST_OFFER = PUBLISHER_OFFER_SDP.replace(
    "a=ssrc:2655473051 cname:test\r\n",
    "a=ssrc-group:SIM 2655473051 2655473052 2655473053\r\n"
    "a=ssrc:2655473051 cname:test\r\na=ssrc:2655473052 cname:test\r\na=ssrc:2655473053 cname:test\r\n",
)
HANDLE = 77


def test_simulcast_is_read_from_janus_answer() -> None:
    assert publisher_streams(JANUS_ANSWER) == [
        {"type": "audio", "mid": "0", "codec": "opus"},
        {"type": "video", "mid": "1", "codec": "vp8", "simulcast": True},
    ]


def test_ssrc_simulcast_is_read_from_the_publishers_offer() -> None:
    answer = JANUS_ANSWER.replace(
        "a=rid:h recv\r\na=rid:m recv\r\na=rid:l recv\r\na=simulcast:recv h;m;l\r\n", ""
    )
    assert "a=rid" not in answer and "a=simulcast" not in answer
    assert publisher_streams(answer)[1] == {"type": "video", "mid": "1", "codec": "vp8"}
    assert publisher_streams(answer, SSRC_SIMULCAST_OFFER)[1]["simulcast"] is True
    assert publisher_streams(answer, CHROMIUM_OFFER)[1]["simulcast"] is True
    assert publisher_streams(answer, PUBLISHER_OFFER_SDP)[1].get("simulcast") is None


def test_only_codecs_janus_simulcasts_get_a_simulcast_forwarder() -> None:
    h264 = JANUS_ANSWER.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 H264/90000")
    assert publisher_streams(h264)[1] == {"type": "video", "mid": "1", "codec": "h264", "simulcast": True}
    vp9 = JANUS_ANSWER.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP9/90000")
    assert publisher_streams(vp9, CHROMIUM_OFFER)[1] == {"type": "video", "mid": "1", "codec": "vp9"}


# -- against a real Janus -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    server = start_or_skip(JanusServer(tmp_path_factory.mktemp("janus"), videocodec="vp8,h264"))
    yield server
    server.stop()


@pytest.fixture
async def bridge(janus: JanusServer, tmp_path: Path) -> AsyncIterator[JanusBridge]:
    async with bridge_following(bridge_settings(janus, tmp_path / "data")) as b:
        yield b


@pytest.fixture
def forwarded(monkeypatch: pytest.MonkeyPatch) -> list[ForwardStream]:
    """Every stream the bridge asks Janus to forward (the request still goes to Janus)."""
    streams: list[ForwardStream] = []
    original = VideoRoom.rtp_forward

    async def rtp_forward(self: VideoRoom, *args: Any, **kwargs: Any) -> Any:
        streams.extend(args[3])
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(VideoRoom, "rtp_forward", rtp_forward)
    return streams


async def publish(client: JanusClient, offer: str, display: str) -> tuple[int, str, list[dict[str, Any]]]:
    """Join and publish ``offer`` on a handle; (publisher id, Janus's answer SDP, Janus's streams)."""
    handle = await client.attach(VIDEOROOM_PLUGIN, opaque_id=f"test-{display}")
    joined = await handle.message({"request": "join", "ptype": "publisher", "room": ROOM, "display": display})
    answer = await handle.message({"request": "publish"}, {"type": "offer", "sdp": offer})
    assert answer.jsep is not None
    return int(joined.data["id"]), answer.jsep["sdp"], list(answer.data["streams"])


def events(publisher: int, display: str, offer: str | None, answer: str, offer_first: bool) -> bytes:
    """What Janus's event handler posts for a publisher: `joined`, its offer ("remote"), Janus's answer
    ("local"). With ``joinandconfigure`` the offer's event comes before `joined`."""
    joined = {"type": 64, "handle_id": HANDLE, "event": {"plugin": "janus.plugin.videoroom",
              "data": {"event": "joined", "room": ROOM, "id": publisher, "display": display}}}  # fmt: skip
    remote = {
        "type": 8,
        "handle_id": HANDLE,
        "event": {"owner": "remote", "jsep": {"type": "offer", "sdp": offer}},
    }
    local = {
        "type": 8,
        "handle_id": HANDLE,
        "event": {"owner": "local", "jsep": {"type": "answer", "sdp": answer}},
    }
    order: Sequence[dict[str, Any]] = [remote, joined] if offer_first else [joined, remote]
    return json.dumps([e for e in order if offer is not None or e is not remote] + [local]).encode()


@pytest.mark.parametrize(
    ("offer", "offer_event", "simulcast"),
    [
        pytest.param(CHROMIUM_OFFER, False, True, id="rids-answer-only"),
        pytest.param(CHROMIUM_OFFER, True, True, id="rids-with-offer"),
        pytest.param(SSRC_SIMULCAST_OFFER, True, True, id="ssrc-group-sim"),
        pytest.param(PUBLISHER_OFFER_SDP, True, False, id="no-simulcast"),
    ],
)
@pytest.mark.parametrize("offer_first", [False, True], ids=["join-then-publish", "joinandconfigure"])
async def test_forwarders_of_simulcast_streams_go_through_janus_simulcast_context(
    bridge: JanusBridge,
    forwarded: list[ForwardStream],
    offer: str,
    offer_event: bool,
    simulcast: bool,
    offer_first: bool,
) -> None:
    client = bridge.client
    publisher, answer, janus_streams = await publish(client, offer, "sim")
    # Janus itself says whether it treats the video as simulcast.
    assert bool(janus_streams[1].get("simulcast")) is simulcast, janus_streams
    parsed, malformed = parse_events(
        events(publisher, "sim", offer if offer_event else None, answer, offer_first)
    )
    assert malformed == 0
    await bridge.on_events(parsed)
    assert bridge.errors == 0
    kinds = {s.mid: s.kind.value for s in bridge.manager.participant_streams(str(ROOM), str(publisher))}
    assert kinds == {"0": "audio", "1": "video"}
    by_mid = {s.mid: s for s in forwarded}
    assert by_mid["0"].simulcast is None
    assert by_mid["1"].simulcast is (True if simulcast else None), forwarded
    await bridge.set_recording(str(ROOM), False)
