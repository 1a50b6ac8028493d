"""Event parsing over real Janus 1.1.2 event-handler samples (fixtures/), malformed and unknown input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from janus_bridge import events as ev
from janus_bridge.events import parse_event, parse_events

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = sorted(FIXTURES.glob("evh_*.json"))

EXPECTED_CLASS = {
    "evh_core_sub1.json": ev.CoreEvent,
    "evh_handle_attached.json": ev.HandleEvent,
    "evh_handle_detached.json": ev.HandleEvent,
    "evh_jsep_local_answer.json": ev.JsepEvent,
    "evh_jsep_remote_offer.json": ev.JsepEvent,
    "evh_media_sub1_audio.json": ev.MediaEvent,
    "evh_media_sub1_video.json": ev.MediaEvent,
    "evh_media_sub3_audio.json": ev.MediaEvent,
    "evh_media_sub3_video.json": ev.MediaEvent,
    "evh_plugin_configured.json": ev.VideoRoomConfigured,
    "evh_plugin_created.json": ev.VideoRoomCreated,
    "evh_plugin_destroyed.json": ev.VideoRoomDestroyed,
    "evh_plugin_joined.json": ev.VideoRoomJoined,
    "evh_plugin_leaving.json": ev.VideoRoomLeaving,
    "evh_plugin_published.json": ev.VideoRoomPublished,
    "evh_plugin_rtp_forward.json": ev.VideoRoomRtpForward,
    "evh_plugin_stop_rtp_forward.json": ev.VideoRoomStopRtpForward,
    "evh_plugin_unpublished.json": ev.VideoRoomUnpublished,
    "evh_session_created.json": ev.SessionEvent,
    "evh_session_destroyed.json": ev.SessionEvent,
    "evh_transport_subNone.json": ev.TransportEvent,
    "evh_webrtc_sub1_ice.json": ev.WebRtcEvent,
    "evh_webrtc_sub2_local-candidate.json": ev.WebRtcEvent,
    "evh_webrtc_sub3_remote-candidate.json": ev.WebRtcEvent,
    "evh_webrtc_sub4_candidates_selected-pair.json": ev.WebRtcEvent,
    "evh_webrtc_sub5_dtls_retransmissions.json": ev.WebRtcEvent,
    "evh_webrtc_sub6_connection.json": ev.WebRtcEvent,
    "evh_webrtc_sub6_connection_reason.json": ev.WebRtcEvent,
}


def load(name: str) -> ev.JanusEvent:
    events, malformed = parse_events((FIXTURES / name).read_bytes())
    assert malformed == 0 and len(events) == 1
    return events[0]


def test_every_sample_has_an_expectation() -> None:
    assert {p.name for p in SAMPLES} == set(EXPECTED_CLASS)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_parses(path: Path) -> None:
    raw = json.loads(path.read_text())
    events, malformed = parse_events(path.read_bytes())
    assert malformed == 0
    assert [type(e) for e in events] == [EXPECTED_CLASS[path.name]]
    event = events[0]
    assert event.type == raw["type"] and event.timestamp == raw["timestamp"]
    assert event.session_id == raw.get("session_id") and event.handle_id == raw.get("handle_id")
    assert event.event == raw["event"]  # the raw body is always kept


def test_all_samples_in_one_array_in_order() -> None:
    body = json.dumps([json.loads(p.read_text()) for p in SAMPLES])
    events, malformed = parse_events(body)
    assert malformed == 0
    assert [type(e) for e in events] == [EXPECTED_CLASS[p.name] for p in SAMPLES]


def test_published_carries_streams() -> None:
    event = load("evh_plugin_published.json")
    assert isinstance(event, ev.VideoRoomPublished)
    assert (event.room, event.publisher_id, event.display) == (1234, 5565063620137650, "synthetic")
    assert [(s.mid, s.type, s.codec) for s in event.streams] == [
        ("0", "audio", "opus"),
        ("1", "video", "vp8"),
    ]
    assert event.session_id == 5069016018379208 and event.opaque_id == "lab-publisher"


def test_joined() -> None:
    event = load("evh_plugin_joined.json")
    assert isinstance(event, ev.VideoRoomJoined)
    assert (event.room, event.publisher_id, event.display) == (1234, 5565063620137650, "synthetic")


def test_unpublished_and_leaving_have_no_session() -> None:
    for name, cls in [
        ("evh_plugin_unpublished.json", ev.VideoRoomUnpublished),
        ("evh_plugin_leaving.json", ev.VideoRoomLeaving),
    ]:
        event = load(name)
        assert isinstance(event, cls)
        assert event.session_id is None and event.handle_id is None
        assert (event.room, event.publisher_id) == (1234, 5565063620137650)


def test_unpublished_twice_gives_two_equal_events() -> None:
    raw = json.loads((FIXTURES / "evh_plugin_unpublished.json").read_text())
    events, malformed = parse_events(json.dumps([raw, {**raw, "timestamp": raw["timestamp"] + 500}]))
    assert malformed == 0
    assert [(e.room, e.publisher_id) for e in events if isinstance(e, ev.VideoRoomUnpublished)] == [
        (1234, 5565063620137650)
    ] * 2


def test_rtp_forward_and_stop() -> None:
    fwd = load("evh_plugin_rtp_forward.json")
    assert isinstance(fwd, ev.VideoRoomRtpForward)
    assert (fwd.room, fwd.publisher_id, fwd.stream_id) == (1234, 8558442004511896, 3915288912)
    assert (fwd.host, fwd.port, fwd.media, fwd.codec) == ("127.0.0.1", 5000, "audio", "opus")
    assert fwd.type == 64  # the envelope type, not the data's "type": "audio"
    stop = load("evh_plugin_stop_rtp_forward.json")
    assert isinstance(stop, ev.VideoRoomStopRtpForward)
    assert (stop.room, stop.publisher_id, stop.stream_id) == (1234, 8558442004511896, 3915288912)


def test_destroyed_and_configured() -> None:
    destroyed = load("evh_plugin_destroyed.json")
    assert isinstance(destroyed, ev.VideoRoomDestroyed) and destroyed.room == 555
    configured = load("evh_plugin_configured.json")
    assert isinstance(configured, ev.VideoRoomConfigured)
    assert configured.publisher_id == 5565063620137650 and configured.data["bitrate"] == 512000


def test_other_types() -> None:
    core = load("evh_core_sub1.json")
    assert isinstance(core, ev.CoreEvent) and core.status == "started" and core.info is not None
    session = load("evh_session_created.json")
    assert isinstance(session, ev.SessionEvent) and session.name == "created"
    handle = load("evh_handle_attached.json")
    assert isinstance(handle, ev.HandleEvent) and handle.plugin == "janus.plugin.videoroom"
    jsep = load("evh_jsep_remote_offer.json")
    assert isinstance(jsep, ev.JsepEvent) and jsep.owner == "remote" and jsep.jsep.type == "offer"
    assert jsep.jsep.sdp.startswith("v=0")
    pair = load("evh_webrtc_sub4_candidates_selected-pair.json")
    assert isinstance(pair, ev.WebRtcEvent) and pair.selected_pair is not None
    media = load("evh_media_sub3_video.json")
    assert isinstance(media, ev.MediaEvent) and media.packets_received == 342 and media.codec == "vp8"
    transport = load("evh_transport_subNone.json")
    assert isinstance(transport, ev.TransportEvent) and transport.data["event"] == "connected"
    hangup = load("evh_webrtc_sub6_connection_reason.json")
    assert isinstance(hangup, ev.WebRtcEvent) and (hangup.connection, hangup.reason) == ("hangup", "Close PC")


def test_unknown_type_and_unknown_plugin_event_are_generic() -> None:
    body = [
        {"type": 2048, "timestamp": 1, "event": {"whatever": True}},
        {
            "type": 64,
            "timestamp": 2,
            "event": {"plugin": "janus.plugin.videoroom", "data": {"event": "talking"}},
        },
        {"type": 64, "timestamp": 3, "event": {"plugin": "janus.plugin.streaming", "data": {"event": "x"}}},
    ]
    events, malformed = parse_events(json.dumps(body))
    assert malformed == 0
    assert [type(e) for e in events] == [ev.GenericEvent, ev.PluginEvent, ev.PluginEvent]
    assert events[0].event == {"whatever": True}


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b"\xff\xfe", b"42", b'"text"', b"null", "[1, 2"],
    ids=["empty", "broken", "binary", "number", "string", "null", "truncated"],
)
def test_unparseable_body_is_one_malformed(body: bytes | str) -> None:
    assert parse_events(body) == ([], 1)


def test_malformed_entries_are_counted_not_raised() -> None:
    good = json.loads((FIXTURES / "evh_session_created.json").read_text())
    body = [
        good,
        42,
        {"event": {}},  # no type
        {"type": "1", "event": {}},  # type not an integer
        {"type": True, "event": {}},  # bool is not a type
        {"type": 1, "timestamp": 1},  # no event body
        {"type": 1, "timestamp": 1, "event": {}},  # session event without name
        {
            "type": 64,
            "event": {"plugin": "janus.plugin.videoroom", "data": {"event": "published"}},
        },  # no room/id
        {"type": 64, "event": {"plugin": "janus.plugin.videoroom", "data": "oops"}},
        good,
    ]
    events, malformed = parse_events(json.dumps(body))
    assert malformed == 8
    assert [type(e) for e in events] == [ev.SessionEvent, ev.SessionEvent]


def test_single_object_body_and_str() -> None:
    text = (FIXTURES / "evh_plugin_published.json").read_text()
    events, malformed = parse_events(text)
    assert malformed == 0 and isinstance(events[0], ev.VideoRoomPublished)


def test_parse_event_raises_for_direct_use() -> None:
    with pytest.raises(ValueError):
        parse_event({"type": 1, "event": {}})
    with pytest.raises(ev.EventParseError):
        ev.decode_body("3")


def test_models_are_frozen() -> None:
    event = load("evh_plugin_published.json")
    with pytest.raises(ValueError):
        event.room = 1  # type: ignore[misc]
