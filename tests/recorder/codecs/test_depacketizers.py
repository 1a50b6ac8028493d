"""Depacketizers on real encoded media: libvpx/libx264 frames through PyAV, packetized by aiortc's
packetizers (VP8 RFC 7741, H.264 RFC 6184) or by the RFC's rules (VP9 RFC 9628), must come back bit
for bit, with the encoder's keyframe flags and picture size."""

from __future__ import annotations

import random
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from media import nal_units

from recorder.codecs import depacketizer_for
from recorder.codecs.h264 import H264Depacketizer, sps_size
from recorder.codecs.opus import opus_head
from recorder.codecs.vp9 import Vp9Depacketizer, superframe
from recorder.errors import MalformedPacketError
from recorder.models import Codec

W, H = 320, 180


def encode(codec: str, frames: int = 12, gop: int = 6, **options: str) -> list[tuple[bytes, bool]]:
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.gop_size = gop
    enc.bit_rate = 500_000
    enc.options = options
    rng = np.random.default_rng(5)
    out = []
    for i in range(frames):
        img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        out += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(vf)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(None)]
    return out


@pytest.fixture(scope="module")
def vp8() -> list[tuple[bytes, bool]]:
    return encode("libvpx", deadline="realtime", **{"cpu-used": "8"})


@pytest.fixture(scope="module")
def vp9() -> list[tuple[bytes, bool]]:
    return encode("libvpx-vp9", deadline="realtime", **{"cpu-used": "8"})


@pytest.fixture(scope="module")
def h264() -> list[tuple[bytes, bool]]:
    return encode("libx264", preset="ultrafast", tune="zerolatency", bf="0")


def test_vp8_rfc7741_with_aiortc_packetizer(vp8: list[tuple[bytes, bool]]) -> None:
    d = depacketizer_for(Codec.VP8)
    for i, (data, key) in enumerate(vp8):
        payloads = Vp8Encoder._packetize(data, picture_id=i * 1000 % 32768)  # 7- and 15-bit PictureIDs
        assert d.is_frame_start(payloads[0]) and not any(d.is_frame_start(p) for p in payloads[1:])
        frame = d.depacketize(payloads)
        assert frame.data == data and frame.keyframe == key
        assert (frame.width, frame.height) == ((W, H) if key else (None, None))


def vp9_packetize(data: bytes, picture_id: int, mtu: int = 500, layer_flags: int = 0x0C) -> list[bytes]:
    """RFC 9628 non-flexible mode: I (15-bit picture id), P on inter frames, B first, E last."""
    inter = 0x40 if data[0] & 0x04 else 0  # frame_type bit of the uncompressed header (profile 0)
    chunks = [data[i : i + mtu] for i in range(0, len(data), mtu)]
    out = []
    for k, chunk in enumerate(chunks):
        flags = 0x80 | inter | (0x08 if k == 0 else 0) | (0x04 if k == len(chunks) - 1 else 0)
        flags &= ~0x0C | layer_flags
        out.append(bytes([flags, 0x80 | (picture_id >> 8), picture_id & 0xFF]) + chunk)
    return out


def test_vp9_rfc9628(vp9: list[tuple[bytes, bool]]) -> None:
    d = depacketizer_for(Codec.VP9)
    for i, (data, key) in enumerate(vp9):
        payloads = vp9_packetize(data, i)
        assert d.is_frame_start(payloads[0])
        frame = d.depacketize(payloads)
        assert frame.data == data and frame.keyframe == key
        if key:
            assert (frame.width, frame.height) == (W, H)


def test_vp9_spatial_layers_become_a_superframe(vp9: list[tuple[bytes, bool]]) -> None:
    base, upper = vp9[1][0], vp9[2][0]  # two inter frames stand in for two layer frames
    payloads = vp9_packetize(base, 1) + vp9_packetize(upper, 1)
    frame = Vp9Depacketizer().depacketize(payloads)
    assert frame.data == superframe([base, upper])
    # Annex B index: marker byte, sizes, marker byte, at the end.
    marker = frame.data[-1]
    assert marker >> 5 == 0b110 and (marker & 0x07) + 1 == 2 and frame.data.startswith(base + upper)


def test_h264_rfc6184_with_aiortc_stap_a_and_fu_a(h264: list[tuple[bytes, bool]]) -> None:
    d = H264Depacketizer()
    for data, key in h264:
        nals = list(H264Encoder._split_bitstream(data))
        payloads = H264Encoder._packetize(nals)
        frame = d.depacketize(payloads)
        assert nal_units(frame.data) == nals
        assert frame.keyframe == key
        if key:
            assert (frame.width, frame.height) == (W, H)
    assert d.codec_extradata().startswith(b"\x00\x00\x00\x01\x67")


def test_h264_keyframe_gets_parameter_sets_prepended_and_decodes(h264: list[tuple[bytes, bool]]) -> None:
    first_key = h264[0][0]
    params = [n for n in nal_units(first_key) if n[0] & 0x1F in (7, 8)]
    second_key = next(data for data, key in h264[1:] if key)
    stripped = [n for n in nal_units(second_key) if n[0] & 0x1F not in (7, 8)]

    unknown = H264Depacketizer()
    assert not unknown.depacketize(H264Encoder._packetize(stripped)).keyframe  # nothing can decode it

    d = H264Depacketizer(sprop_parameter_sets=params)  # as from SDP sprop-parameter-sets
    frame = d.depacketize(H264Encoder._packetize(stripped))
    assert frame.keyframe and nal_units(frame.data)[:2] == params
    decoder = av.CodecContext.create("h264", "r")
    pictures = [*decoder.decode(av.Packet(frame.data)), *decoder.decode(None)]
    assert pictures and (pictures[0].width, pictures[0].height) == (W, H)


def test_h264_sps_size_with_cropping(h264: list[tuple[bytes, bool]]) -> None:
    sps = next(n for n in nal_units(h264[0][0]) if n[0] & 0x1F == 7)
    assert sps_size(sps) == (W, H)  # 180 is not a multiple of 16: frame cropping applies


@pytest.mark.parametrize(
    ("payloads", "message"),
    [
        ([b"\x7c\x85abc", b"\x7c\x85def"], "FU-A start while"),
        ([b"\x7c\x05abc"], "FU-A continuation without a start"),
        ([b"\x7c\x85abc"], "ends inside a fragmented NAL"),
        ([b"\x18\x00\x09\x65ab"], "STAP-A NAL size 9"),
        ([b"\x18\x00"], "truncated NAL size"),
        ([b"\xe5abc"], "forbidden_zero_bit"),
        ([b"\x00abc"], "reserved"),
        ([b"\x19abc"], "not supported"),
        ([b""], "empty"),
    ],
)
def test_h264_malformed(payloads: list[bytes], message: str) -> None:
    with pytest.raises(MalformedPacketError, match=message):
        H264Depacketizer().depacketize(payloads)


def test_opus_rfc7587_and_opus_head_rfc7845() -> None:
    d = depacketizer_for(Codec.OPUS, channels=2)
    assert d.depacketize([b"\xfc\x01\x02"]).data == b"\xfc\x01\x02"
    head = opus_head(2)
    assert len(head) == 19 and head[:8] == b"OpusHead" and head[9] == 2 and d.codec_extradata() == head
    with pytest.raises(MalformedPacketError):
        d.depacketize([b""])


@pytest.mark.parametrize("codec", list(Codec))
def test_garbage_is_rejected_or_passed_never_crashes(codec: Codec) -> None:
    rng = random.Random(11)
    d = depacketizer_for(codec)
    for _ in range(5_000):
        payloads = [
            bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 24))) for _ in range(rng.randrange(1, 4))
        ]
        try:
            d.is_frame_start(payloads[0])
            d.depacketize(payloads)
        except MalformedPacketError:
            pass
