"""VP8 depacketizer (RFC 7741) on libvpx frames: packetized by aiortc's packetizer and by descriptor
variants written from §4.2, each frame must come back bit for bit with libvpx's keyframe flag and the
keyframe's picture size (RFC 6386 §9.1)."""

from __future__ import annotations

import pytest
from aiortc.codecs.vpx import PACKET_MAX, Vp8Encoder, VpxPayloadDescriptor
from codec_media import HEIGHT, WIDTH, EncodedFrame, chunks, fuzz, vp8_descriptor

from recorder.codecs import Vp8Depacketizer, depacketizer_for
from recorder.errors import MalformedPacketError
from recorder.models import Codec


def test_rfc7741_aiortc_packetizer_round_trip(vp8_frames: list[EncodedFrame]) -> None:
    """§4.2 with X, I and a 15-bit PictureID on every packet; §4.3 S=1/PID=0 starts the frame."""
    d = depacketizer_for(Codec.VP8)
    assert d.codec is Codec.VP8 and d.codec_extradata() == b""
    assert sum(f.keyframe for f in vp8_frames) >= 2
    for i, f in enumerate(vp8_frames):
        payloads = Vp8Encoder._packetize(f.data, picture_id=(i * 3001) % 0x8000)
        assert len(payloads) > 1 or len(f.data) <= PACKET_MAX  # aiortc splits above its PACKET_MAX
        assert d.is_frame_start(payloads[0])
        assert not any(d.is_frame_start(p) for p in payloads[1:])
        frame = d.depacketize(payloads)
        assert frame.data == f.data
        assert frame.keyframe == f.keyframe
        assert (frame.width, frame.height) == ((WIDTH, HEIGHT) if f.keyframe else (None, None))


@pytest.mark.parametrize(
    "fields",
    [
        {},  # no X: one-octet descriptor
        {"picture_id": 0x55, "long_picture_id": False},  # 7-bit PictureID (M=0)
        {"picture_id": 0x1234},  # 15-bit PictureID (M=1)
        {"picture_id": 0x7F, "long_picture_id": False, "tl0picidx": 9, "tid": 2},  # I, L, T
        {"keyidx": 17},  # K alone: the TID|Y|KEYIDX octet is still present
        {"tl0picidx": 200, "tid": 1, "keyidx": 3},
    ],
)
def test_rfc7741_4_2_descriptor_fields(vp8_frames: list[EncodedFrame], fields: dict[str, int]) -> None:
    d = Vp8Depacketizer()
    for f in vp8_frames[:4]:
        # Three "partitions" with PID 0..2, each starting with S=1 (§4.2: S marks a partition start).
        third = len(f.data) // 3 + 1
        payloads = []
        for pid, part in enumerate(chunks(f.data, third)):
            for k, piece in enumerate(chunks(part, 300)):
                payloads.append(vp8_descriptor(start=k == 0, pid=pid, **fields) + piece)
        assert [d.is_frame_start(p) for p in payloads].count(True) == 1  # only S=1 with PID=0
        frame = d.depacketize(payloads)
        assert frame.data == f.data and frame.keyframe == f.keyframe


def test_aiortc_descriptor_with_all_extensions_parses_the_same(vp8_frames: list[EncodedFrame]) -> None:
    """Cross-check §4.2 against aiortc's descriptor writer (15-bit PictureID, TL0PICIDX, TID/Y, KEYIDX)."""
    data = vp8_frames[0].data
    descriptor = bytes(VpxPayloadDescriptor(1, 0, picture_id=300, tl0picidx=4, tid=(1, 1), keyidx=5))
    frame = Vp8Depacketizer().depacketize([descriptor + data[:500], b"\x00" + data[500:]])
    assert frame.data == data and frame.keyframe


def test_rfc6386_9_1_size_ignores_the_scaling_bits(vp8_frames: list[EncodedFrame]) -> None:
    key = vp8_frames[0].data
    assert vp8_frames[0].keyframe and key[3:6] == b"\x9d\x01\x2a"
    scaled = bytearray(key)
    scaled[7] |= 0xC0  # horizontal_scale = 3
    scaled[9] |= 0x40  # vertical_scale = 1
    frame = Vp8Depacketizer().depacketize([b"\x10" + bytes(scaled)])
    assert (frame.width, frame.height) == (WIDTH, HEIGHT)


@pytest.mark.parametrize(
    ("payloads", "message"),
    [
        ([], "no packets"),
        ([b""], "empty"),
        ([b"\x90"], "no extension octet"),
        ([b"\x90\x80"], "truncated at its PictureID"),
        ([b"\x90\x80\x81"], "truncated"),  # 15-bit PictureID cut after one octet
        ([b"\x90\xe0\x05\x01"], "truncated"),  # I, L, T: TID octet missing
        ([b"\x10"], "no data"),
        ([b"\x10\x00\x01\x02"], "9d 01 2a"),  # P=0 (keyframe) without the start code
        ([b"\x10\x00\x00\x00\x9d\x01\x2a\x00\x00\x00\x00"], "empty 0x0"),
        ([b"\x00\x01abc"], "start of partition 0"),  # S=0 first
        ([b"\x11\x01abc"], "start of partition 0"),  # S=1 but PID=1 first
        ([b"\x10\x01abc", b""], "empty"),
        ([b"\x10\x01abc", b"\x80"], "no extension octet"),
    ],
)
def test_malformed(payloads: list[bytes], message: str) -> None:
    with pytest.raises(MalformedPacketError, match=message):
        Vp8Depacketizer().depacketize(payloads)


def test_random_bytes_raise_only_malformed_packet_error() -> None:
    accepted = fuzz(Vp8Depacketizer(), seed=7, prefixes=[b"\x10", b"\x90\x80", b"\x90\xf0\x81\x02\x03\x04"])
    assert accepted > 0  # the loop reaches the keyframe parsing, not only the descriptor checks
