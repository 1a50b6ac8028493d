"""VideoRoom request building and answer checking over a scripted plugin channel (no Janus)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from janus_bridge import errors
from janus_bridge.videoroom import ForwardStream, VideoRoom


class FakeChannel:
    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    async def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.requests.append(dict(body))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def forwarded(*forwarders: dict[str, Any]) -> dict[str, Any]:
    return {"videoroom": "rtp_forward", "room": 1, "publisher_id": 9, "forwarders": list(forwarders)}


def test_forward_stream_validation() -> None:
    assert ForwardStream("1", 5002, rtcp_port=5003).to_request() == {
        "mid": "1",
        "port": 5002,
        "rtcp_port": 5003,
    }
    assert ForwardStream("0", 5000, pt=111, ssrc=7).to_request() == {
        "mid": "0",
        "port": 5000,
        "pt": 111,
        "ssrc": 7,
    }
    for bad in ({"port": 0}, {"port": 70000}, {"pt": 128}, {"ssrc": -1}, {"rtcp_port": 0}):
        with pytest.raises(ValidationError):
            ForwardStream(**{"mid": "0", "port": 5000, **bad})


async def test_rtp_forward_request_and_mids() -> None:
    channel = FakeChannel(
        forwarded(
            {"stream_id": 2, "host": "127.0.0.1", "port": 5002, "type": "video", "local_rtcp_port": 40000},
            {"stream_id": 1, "host": "127.0.0.1", "port": 5000, "type": "audio"},
        )
    )
    room = VideoRoom(channel)
    result = await room.rtp_forward(
        1, 9, "127.0.0.1", [ForwardStream("0", 5000), ForwardStream("1", 5002, rtcp_port=5003)], secret="s"
    )
    assert [(f.mid, f.stream_id) for f in result] == [("0", 1), ("1", 2)]  # request order, mids filled in
    assert channel.requests == [
        {
            "request": "rtp_forward",
            "room": 1,
            "publisher_id": 9,
            "host": "127.0.0.1",
            "secret": "s",  # admin_key omitted when None
            "streams": [{"mid": "0", "port": 5000}, {"mid": "1", "port": 5002, "rtcp_port": 5003}],
        }
    ]


async def test_missing_forwarder_rolls_back_what_was_created() -> None:
    stop_ok = {"videoroom": "stop_rtp_forward", "room": 1, "publisher_id": 9, "stream_id": 1}
    channel = FakeChannel(forwarded({"stream_id": 1, "host": "h", "port": 5000, "type": "audio"}), stop_ok)
    with pytest.raises(errors.ForwarderNotCreatedError) as info:
        await VideoRoom(channel).rtp_forward(
            1, 9, "h", [ForwardStream("0", 5000), ForwardStream("5", 5002)], secret="s", admin_key="k"
        )
    assert info.value.missing_mids == ("5",) and info.value.stopped_stream_ids == (1,)
    assert channel.requests[1] == {
        "request": "stop_rtp_forward",
        "room": 1,
        "publisher_id": 9,
        "stream_id": 1,
        "secret": "s",
        "admin_key": "k",
    }


async def test_rollback_failure_is_reported_not_raised_over() -> None:
    channel = FakeChannel(
        forwarded({"stream_id": 1, "host": "h", "port": 5000, "type": "audio"}),
        errors.videoroom_error(428, "No such feed (9)"),
    )
    with pytest.raises(errors.ForwarderNotCreatedError) as info:
        await VideoRoom(channel).rtp_forward(1, 9, "h", [ForwardStream("0", 5000), ForwardStream("5", 5002)])
    assert info.value.stopped_stream_ids == ()


async def test_rtp_forward_argument_checks() -> None:
    room = VideoRoom(FakeChannel())
    with pytest.raises(ValueError, match="at least one"):
        await room.rtp_forward(1, 9, "h", [])
    with pytest.raises(ValueError, match="distinct"):
        await room.rtp_forward(1, 9, "h", [ForwardStream("0", 5000), ForwardStream("1", 5000)])


async def test_unexpected_answers_are_protocol_errors() -> None:
    room = VideoRoom(
        FakeChannel({"videoroom": "success"}, {"videoroom": "participants", "participants": [{}]})
    )
    with pytest.raises(errors.JanusProtocolError, match="exists"):
        await room.exists(1)
    with pytest.raises(errors.JanusProtocolError, match="Participant"):
        await room.list_participants(1)
