"""Opus depacketizer (RFC 7587) on libopus packets, and the OpusHead (RFC 7845 §5.1) it hands the
container, checked field by field, against FFmpeg's own and by decoding with it."""

from __future__ import annotations

import struct

import av
import numpy as np
import pytest
from codec_media import fuzz

from recorder.codecs import OpusDepacketizer, depacketizer_for
from recorder.codecs.opus import opus_head
from recorder.errors import MalformedPacketError
from recorder.models import Codec


def test_rfc7587_4_2_one_opus_packet_per_rtp_payload(opus_stream: tuple[list[bytes], bytes]) -> None:
    packets, _ = opus_stream
    d = depacketizer_for(Codec.OPUS)
    assert d.codec is Codec.OPUS
    for packet in packets:
        assert d.is_frame_start(packet)
        frame = d.depacketize([packet])
        assert frame.data == packet and frame.keyframe and frame.width is None and frame.height is None


def test_rfc7845_5_1_opus_head_fields() -> None:
    head = opus_head(1, sample_rate=44100, pre_skip=312)
    assert len(head) == 19 and head[:8] == b"OpusHead"
    version, channels, pre_skip, rate, gain, family = struct.unpack("<BBHIhB", head[8:])
    assert (version, channels, pre_skip, rate, gain, family) == (1, 1, 312, 44100, 0, 0)
    assert OpusDepacketizer().codec_extradata() == opus_head(2)
    assert depacketizer_for(Codec.OPUS, channels=1).codec_extradata() == opus_head(1)


def test_opus_head_matches_ffmpeg_and_decodes(opus_stream: tuple[list[bytes], bytes]) -> None:
    packets, ffmpeg_head = opus_stream
    pre_skip = int.from_bytes(ffmpeg_head[10:12], "little")
    assert opus_head(2, 48000, pre_skip) == ffmpeg_head
    decoder = av.CodecContext.create("opus", "r")
    decoder.extradata = opus_head(2, pre_skip=pre_skip)
    frames = [f for p in packets for f in decoder.decode(av.Packet(p))]
    assert len(frames) == len(packets) and frames[0].layout.nb_channels == 2
    assert np.abs(frames[-1].to_ndarray()).max() > 0.1  # the tone, not silence


@pytest.mark.parametrize(("channels", "pre_skip"), [(0, 0), (3, 0), (2, -1), (2, 1 << 16)])
def test_opus_head_rejects_what_it_cannot_state(channels: int, pre_skip: int) -> None:
    with pytest.raises(ValueError, match=r"channels|pre-skip"):
        opus_head(channels, pre_skip=pre_skip)


@pytest.mark.parametrize(
    ("payloads", "message"),
    [([b""], "empty"), ([], "not 0"), ([b"\xfc\x01", b"\xfc\x02"], "exactly one RTP packet")],
)
def test_malformed(payloads: list[bytes], message: str) -> None:
    with pytest.raises(MalformedPacketError, match=message):
        OpusDepacketizer().depacketize(payloads)


def test_random_bytes_raise_only_malformed_packet_error() -> None:
    fuzz(OpusDepacketizer(), seed=48)
