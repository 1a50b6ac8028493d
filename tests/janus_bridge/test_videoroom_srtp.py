"""SRTP forwarders over a scripted plugin channel (the real Janus: tests/e2e_webrtc/test_srtp_forward.py):
Janus takes one `srtp_suite`/`srtp_crypto` per `rtp_forward` request, so streams with their own keys go in
one request each, all or nothing; a plain answer to an SRTP request is refused; no error carries the key.
And when `janus.forward_srtp = "auto"` means SRTP."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from janus_bridge import errors
from janus_bridge.videoroom import ForwardStream, VideoRoom
from recorder.crypto.srtp import SrtpKey, SrtpSuite
from recorder.service.settings import JanusSettings


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


def forwarded(stream_id: int, port: int, kind: str, srtp: bool = True) -> dict[str, Any]:
    forwarder: dict[str, Any] = {"stream_id": stream_id, "host": "10.0.0.2", "port": port, "type": kind}
    if srtp:
        forwarder["srtp"] = True
    return {"videoroom": "rtp_forward", "room": 1, "publisher_id": 9, "forwarders": [forwarder]}


STOPPED = {"videoroom": "stop_rtp_forward", "room": 1, "publisher_id": 9, "stream_id": 1}


async def test_one_request_per_key_with_its_suite_and_crypto() -> None:
    audio, video = SrtpKey.generate(), SrtpKey.generate(SrtpSuite.AES_CM_128_HMAC_SHA1_32)
    channel = FakeChannel(forwarded(1, 5000, "audio"), forwarded(2, 5002, "video"))
    result = await VideoRoom(channel).rtp_forward(
        1,
        9,
        "10.0.0.2",
        [ForwardStream("0", 5000, srtp=audio), ForwardStream("1", 5002, rtcp_port=5003, srtp=video)],
        secret="s",
    )
    assert [(f.mid, f.stream_id, f.srtp) for f in result] == [("0", 1, True), ("1", 2, True)]
    first, second = channel.requests
    assert (first["srtp_suite"], second["srtp_suite"]) == (80, 32)
    assert base64.b64decode(first["srtp_crypto"]) == audio.material
    assert base64.b64decode(second["srtp_crypto"]) == video.material
    assert [s["mid"] for s in first["streams"]] == ["0"] and [s["mid"] for s in second["streams"]] == ["1"]
    assert all("srtp" not in s for r in channel.requests for s in r["streams"])


async def test_plain_streams_share_one_request_without_crypto() -> None:
    channel = FakeChannel(
        {
            "videoroom": "rtp_forward",
            "forwarders": [
                {"stream_id": 1, "host": "127.0.0.1", "port": 5000, "type": "audio"},
                {"stream_id": 2, "host": "127.0.0.1", "port": 5002, "type": "video"},
            ],
        }
    )
    await VideoRoom(channel).rtp_forward(
        1, 9, "127.0.0.1", [ForwardStream("0", 5000), ForwardStream("1", 5002)]
    )
    (request,) = channel.requests
    assert "srtp_suite" not in request and "srtp_crypto" not in request


async def test_a_failing_later_request_stops_what_earlier_ones_created() -> None:
    keys = [SrtpKey.generate(), SrtpKey.generate()]
    channel = FakeChannel(forwarded(1, 5000, "audio"), errors.NoSuchFeedError(428, "No such feed"), STOPPED)
    with pytest.raises(errors.NoSuchFeedError) as error:
        await VideoRoom(channel).rtp_forward(
            1, 9, "10.0.0.2", [ForwardStream("0", 5000, srtp=keys[0]), ForwardStream("1", 5002, srtp=keys[1])]
        )
    assert channel.requests[-1]["request"] == "stop_rtp_forward" and channel.requests[-1]["stream_id"] == 1
    assert not any(k.inline() in str(error.value) for k in keys)


async def test_a_plain_answer_to_an_srtp_request_is_refused_and_undone() -> None:
    key = SrtpKey.generate()
    channel = FakeChannel(forwarded(1, 5000, "audio", srtp=False), STOPPED)
    with pytest.raises(errors.JanusProtocolError, match="plain forwarder") as error:
        await VideoRoom(channel).rtp_forward(1, 9, "10.0.0.2", [ForwardStream("0", 5000, srtp=key)])
    assert channel.requests[-1]["request"] == "stop_rtp_forward"
    assert key.inline() not in str(error.value) and key.inline() not in repr(
        ForwardStream("0", 5000, srtp=key)
    )


@pytest.mark.parametrize(
    ("mode", "host", "on"),
    [
        ("auto", "127.0.0.1", False),
        ("auto", "127.1.2.3", False),
        ("auto", "::1", False),
        ("auto", "::ffff:127.0.0.1", False),
        ("auto", "localhost", False),
        ("auto", "10.0.0.5", True),
        ("auto", "callvault.recording.svc", True),
        ("auto", "fd00::5", True),
        ("on", "127.0.0.1", True),
        ("off", "10.0.0.5", False),
    ],
)
def test_when_the_forward_leg_is_srtp(mode: str, host: str, on: bool) -> None:
    settings = JanusSettings(forward_srtp=mode, forward_host=host)  # type: ignore[arg-type]
    assert (settings.srtp_suite() is not None) is on


def test_the_suite_setting() -> None:
    settings = JanusSettings(forward_host="10.0.0.5", forward_srtp_suite="AES_CM_128_HMAC_SHA1_32")  # type: ignore[arg-type]
    assert settings.srtp_suite() is SrtpSuite.AES_CM_128_HMAC_SHA1_32
    with pytest.raises(ValueError):
        JanusSettings(forward_srtp_suite="AEAD_AES_256_GCM")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        JanusSettings(forward_srtp="yes")  # type: ignore[arg-type]
