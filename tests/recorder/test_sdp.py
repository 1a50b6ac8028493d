"""SDP (RFC 8866) as ffmpeg, GStreamer and mediasoup recipes write it."""

from __future__ import annotations

import base64

import pytest

from recorder.errors import SdpError, UnsupportedCodecError
from recorder.models import Codec
from recorder.sdp import parse_sdp

FFMPEG_SDP = """v=0
o=- 0 0 IN IP4 127.0.0.1
s=No Name
c=IN IP4 127.0.0.1
t=0 0
a=tool:libavformat 59.27.100
m=video 5004 RTP/AVP 96
b=AS:600
a=rtpmap:96 VP8/90000
m=audio 5006 RTP/AVP 97
b=AS:48
a=rtpmap:97 opus/48000/2
a=fmtp:97 sprop-stereo=1
"""

SPS = bytes.fromhex("6742c01fda01e0089f9601100000030010000003032008")
PPS = bytes.fromhex("68ce3c80")


def test_ffmpeg_sdp_gives_two_streams() -> None:
    video, audio = parse_sdp(FFMPEG_SDP)
    assert (video.codec, video.payload_type, video.clock_rate, video.port, video.rtcp_port) == (
        Codec.VP8, 96, 90000, 5004, 5005,
    )  # fmt: skip
    assert (audio.codec, audio.clock_rate, audio.channels, audio.port) == (Codec.OPUS, 48000, 2, 5006)
    assert video.address == "127.0.0.1"
    assert video.name != audio.name


def test_mediasoup_style_sdp_with_rtcp_mux_ssrc_mid_and_sprop() -> None:
    sprop = ",".join(base64.b64encode(x).decode() for x in (SPS, PPS))
    sdp = f"""v=0
o=- 0 0 IN IP4 0.0.0.0
s=mediasoup
t=0 0
m=video 40000 RTP/AVPF 101 102
c=IN IP4 0.0.0.0
a=rtpmap:101 H264/90000
a=rtpmap:102 rtx/90000
a=fmtp:101 packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets={sprop}
a=rtcp-mux
a=ssrc:123456 cname:x
a=mid:1
"""
    (spec,) = parse_sdp(sdp)
    assert spec.codec is Codec.H264 and spec.payload_type == 101
    assert spec.rtcp_port == spec.port == 40000  # RFC 5761 multiplexing
    assert spec.ssrc == 123456 and spec.name == "video-1"
    assert spec.sprop_parameter_sets == (SPS, PPS)
    assert spec.address == "0.0.0.0"


def test_explicit_rtcp_port_and_disabled_stream() -> None:
    sdp = FFMPEG_SDP.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP8/90000\na=rtcp:7000").replace(
        "m=audio 5006", "m=audio 0"
    )
    (video,) = parse_sdp(sdp)
    assert video.rtcp_port == 7000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no 'v=' line"),
        ("v=0\ns=x\n", "no 'm=' line"),
        ("v=0\nthis is not sdp\n", "line 2"),
        ("v=0\nm=video abc RTP/AVP 96\n", "must be numbers"),
        ("v=0\nm=video 5000 udp 96\n", "not RTP"),
        ("v=0\nm=video 5000 RTP/AVP 96\na=rtpmap:96\n", "malformed a=rtpmap"),
        ("v=0\nc=IN XX 1.2.3.4\nm=video 5000 RTP/AVP 96\n", "c= line"),
    ],
)
def test_invalid_sdp_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        parse_sdp(text)


@pytest.mark.parametrize(
    ("media", "named"),
    [
        ("m=audio 5000 RTP/AVP 0\n", "static payload type 0"),
        ("m=audio 5000 RTP/AVP 96\na=rtpmap:96 PCMA/8000\n", "PCMA/8000"),
        ("m=video 5000 RTP/AVP 96\na=rtpmap:96 AV1/90000\n", "AV1/90000"),
        ("m=video 5000 RTP/AVP 96\n", "payload type 96 \\(no a=rtpmap\\)"),
        ("m=video 5000 RTP/AVP 96\na=rtpmap:96 opus/48000/2\n", "OPUS announced in an m=video line"),
        ("m=audio 5000 RTP/AVP 96\na=rtpmap:96 opus/48000/6\n", "opus with 6 channels"),
    ],
)
def test_unsupported_codec_is_named(media: str, named: str) -> None:
    with pytest.raises(UnsupportedCodecError, match=named):
        parse_sdp("v=0\n" + media)
