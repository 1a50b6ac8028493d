"""A mediasoup Consumer's rtpParameters read into the same stream description record-rtp makes from an SDP
(recorder/rtp_parameters.py), and hostile parameters refused with one clear error."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from recorder.errors import SdpError, UnsupportedCodecError
from recorder.models import Codec, MediaKind
from recorder.rtp_parameters import describe, parse_rtp_parameters, to_stream_spec
from recorder.sdp import parse_sdp

# As mediasoup 3.12.16 gives them for a PlainTransport Consumer of a VP8 Producer (router with RTX).
VP8: dict[str, Any] = {
    "codecs": [
        {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000, "parameters": {},
         "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "nack", "parameter": "pli"},
                          {"type": "ccm", "parameter": "fir"}, {"type": "goog-remb", "parameter": ""}]},
        {"mimeType": "video/rtx", "payloadType": 102, "clockRate": 90000, "parameters": {"apt": 101},
         "rtcpFeedback": []},
    ],
    "headerExtensions": [
        {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 1, "encrypt": False, "parameters": {}},
        {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 4, "encrypt": False,
         "parameters": {}},
    ],
    "encodings": [{"ssrc": 622318427, "rtx": {"ssrc": 190446382}}],
    "rtcp": {"cname": "d7Yk3pH2", "reducedSize": True, "mux": True},
    "mid": "0",
}  # fmt: skip
H264 = {
    "codecs": [
        {"mimeType": "video/H264", "payloadType": 107, "clockRate": 90000,
         "parameters": {"packetization-mode": 1, "profile-level-id": "42e01f", "level-asymmetry-allowed": 1}},
    ],
    "encodings": [{"ssrc": 11, "scalabilityMode": "L1T3"}],
}  # fmt: skip
OPUS = {
    "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2,
                "parameters": {"useinbandfec": 1}}],
    "encodings": [{"ssrc": 7}],
}  # fmt: skip


def test_vp8_with_rtx_reads_codec_ssrc_and_retransmission_stream() -> None:
    stream = describe(parse_rtp_parameters(VP8), MediaKind.VIDEO)
    assert (stream.codec, stream.payload_type, stream.clock_rate, stream.ssrc) == (
        Codec.VP8,
        101,
        90000,
        622318427,
    )
    assert (stream.rtx_payload_type, stream.rtx_ssrc) == (102, 190446382)
    assert [h.id for h in stream.header_extensions] == [1, 4] and stream.mid == "0"


@pytest.mark.parametrize(
    ("params", "sdp_media"),
    [
        (VP8, "m=video 40000 RTP/AVP 101 102\na=rtpmap:101 VP8/90000\na=rtpmap:102 rtx/90000\n"
              "a=fmtp:102 apt=101\na=ssrc:622318427 cname:x\n"),
        (H264, "m=video 40000 RTP/AVP 107\na=rtpmap:107 H264/90000\na=fmtp:107 packetization-mode=1\n"
               "a=ssrc:11\n"),
        (OPUS, "m=audio 40000 RTP/AVP 100\na=rtpmap:100 opus/48000/2\na=ssrc:7\n"),
    ],
)  # fmt: skip
def test_same_stream_description_as_the_equivalent_sdp(params: dict[str, Any], sdp_media: str) -> None:
    sdp = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n" + sdp_media
    (from_sdp,) = parse_sdp(sdp)
    stream = describe(parse_rtp_parameters(params))
    spec = to_stream_spec(stream, from_sdp.name, 40000, 40001, "127.0.0.1")
    assert spec == from_sdp


def mutated(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (mutated(VP8, "codecs.0.mimeType", "video/AV1"), "unsupported codec video/AV1"),
        (mutated(VP8, "codecs.0.mimeType", "video/VP8\n../x"), "rtpParameters.codecs.0.mimeType"),
        (mutated(VP8, "codecs.0.payloadType", 300), "rtpParameters.codecs.0.payloadType"),
        (mutated(VP8, "codecs.1.payloadType", 101), "payload types must be unique"),
        (mutated(VP8, "codecs", [VP8["codecs"][1]]), "no media codec"),
        (mutated(VP8, "codecs", [VP8["codecs"][0]] * 17), "rtpParameters.codecs"),
        (mutated(VP8, "encodings", [{"rtx": {"ssrc": 5}}]), "must carry its SSRC"),
        (mutated(VP8, "encodings", [{"ssrc": 2**32}]), "rtpParameters.encodings.0.ssrc"),
        (mutated(VP8, "encodings", [{"ssrc": 5, "rtx": {"ssrc": 5}}]), "RTX SSRC equals the media SSRC"),
        (mutated(VP8, "codecs", [VP8["codecs"][0]]), "an RTX SSRC without an RTX codec"),
        (mutated(VP8, "encodings", []), "rtpParameters.encodings"),
        (mutated(VP8, "codecs.0.clockRate", 48000), "clock rate 48000"),
        (mutated(OPUS, "codecs.0.channels", 6), "1 or 2 channels"),
        (mutated(VP8, "headerExtensions.0.uri", "x" * 300), "rtpParameters.headerExtensions.0.uri"),
        ("not an object", "rtpParameters"),
    ],
)
def test_hostile_parameters_are_refused_with_one_clear_error(params: Any, message: str) -> None:
    with pytest.raises(SdpError) as raised:
        describe(parse_rtp_parameters(params))
    assert message in str(raised.value)


def test_a_consumer_of_the_other_kind_is_refused() -> None:
    with pytest.raises(SdpError, match="a consumer of kind audio cannot send video/VP8"):
        describe(parse_rtp_parameters(VP8), MediaKind.AUDIO)
    with pytest.raises(UnsupportedCodecError):
        describe(parse_rtp_parameters(mutated(OPUS, "codecs.0.mimeType", "audio/PCMU")))
