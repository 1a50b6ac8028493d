"""VP9 depacketizer (RFC 9628) on libvpx-vp9 frames packetized by the RFC's rules (aiortc has no VP9):
frames come back bit for bit with libvpx's keyframe flags and sizes; spatial layers of one picture come
back as a VP9 superframe (VP9 bitstream spec Annex B) that FFmpeg decodes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from codec_media import (
    HEIGHT,
    WIDTH,
    EncodedFrame,
    decode,
    encode_video,
    fuzz,
    vp9_packetize,
    vp9_ss,
)

from recorder.codecs import Vp9Depacketizer, depacketizer_for
from recorder.codecs.vp9 import frame_size, split_superframe, superframe
from recorder.errors import MalformedPacketError
from recorder.models import Codec


def check_round_trip(frames: list[EncodedFrame], **packetize: Any) -> None:
    d = depacketizer_for(Codec.VP9)
    assert sum(f.keyframe for f in frames) >= 2
    for i, f in enumerate(frames):
        payloads = vp9_packetize(f.data, (i * 37) % 0x8000, **packetize)  # 7- then 15-bit picture IDs
        assert d.is_frame_start(payloads[0]) and not any(d.is_frame_start(p) for p in payloads[1:])
        frame = d.depacketize(payloads)
        assert frame.data == f.data
        assert frame.keyframe == f.keyframe
        assert (frame.width, frame.height) == ((WIDTH, HEIGHT) if f.keyframe else (None, None))


def test_rfc9628_4_2_non_flexible_mode(vp9_frames: list[EncodedFrame]) -> None:
    """I with 7- and 15-bit picture IDs, L with TL0PICIDX, B on the first packet, E on the last."""
    check_round_trip(vp9_frames, sid=0)


def test_rfc9628_4_2_flexible_mode_with_reference_indices(vp9_frames: list[EncodedFrame]) -> None:
    """F=1: layer indices without TL0PICIDX; P=1 frames carry up to 3 P_DIFF octets (N chains them)."""
    check_round_trip(vp9_frames, flexible=True, sid=0, p_diffs=(1, 2, 3))


def test_rfc9628_4_2_1_scalability_structure_on_keyframes(vp9_frames: list[EncodedFrame]) -> None:
    """V=1 with Y (resolutions) and G (picture group with P_DIFFs) before the payload."""
    d = Vp9Depacketizer()
    ss = vp9_ss([(WIDTH, HEIGHT)], groups=[[1], [1, 2], []])
    for i, f in enumerate(vp9_frames):
        payloads = vp9_packetize(f.data, picture_id=i, sid=0, ss=ss if f.keyframe else b"")
        frame = d.depacketize(payloads)
        assert frame.data == f.data and frame.keyframe == f.keyframe
        assert (frame.width, frame.height) == ((WIDTH, HEIGHT) if f.keyframe else (None, None))


def test_minimal_descriptor_as_ffmpeg_sends_it(vp9_frames: list[EncodedFrame]) -> None:
    """FFmpeg's RTP muxer sets only B and E: P is never set, so keyframes come from the frame header."""
    d = Vp9Depacketizer()
    for f in vp9_frames:
        frame = d.depacketize(vp9_packetize(f.data, set_p=False))
        assert frame.data == f.data and frame.keyframe == f.keyframe


def test_profile_1_color_config() -> None:
    """4:4:4 is VP9 profile 1: color_config then carries subsampling bits before the frame size."""
    frames = encode_video("libvpx-vp9", frames=3, pix_fmt="yuv444p", deadline="realtime", **{"cpu-used": "8"})
    assert (frames[0].data[0] >> 4) & 3 == 0b10  # profile_low_bit=1, profile_high_bit=0
    frame = Vp9Depacketizer().depacketize(vp9_packetize(frames[0].data, picture_id=1))
    assert frame.keyframe and (frame.width, frame.height) == (WIDTH, HEIGHT)
    assert frame_size(frames[0].data) == (WIDTH, HEIGHT)


def test_keyframe_needs_p0_a_base_layer_and_a_key_frame_header(vp9_frames: list[EncodedFrame]) -> None:
    key = vp9_frames[0].data
    d = Vp9Depacketizer()
    assert d.depacketize(vp9_packetize(key, picture_id=1, sid=0)).keyframe
    assert not d.depacketize(vp9_packetize(key, picture_id=1, sid=1)).keyframe  # D=1: needs SID 0
    # An independently coded spatial layer (D=0), as an SFU forwards it from an S-mode stream.
    assert d.depacketize(vp9_packetize(key, picture_id=1, sid=2, depends=False)).keyframe
    assert not d.depacketize(vp9_packetize(key, picture_id=1, inter=True)).keyframe  # P=1
    assert not d.depacketize(vp9_packetize(vp9_frames[1].data, picture_id=2, set_p=False)).keyframe
    assert frame_size(vp9_frames[1].data) is None  # inter frame sized by its reference (found_ref)


def spatial_picture(layers: list[bytes], picture_id: int, resolutions: list[tuple[int, int]]) -> list[bytes]:
    """One picture of spatial SVC: each layer frame starts with B; SS on the base layer's first packet."""
    payloads: list[bytes] = []
    for sid, layer in enumerate(layers):
        ss = vp9_ss(resolutions) if sid == 0 else b""
        payloads += vp9_packetize(layer, picture_id=picture_id, sid=sid, inter=sid > 0, ss=ss, mtu=300)
    return payloads


def test_spatial_layers_become_a_superframe_that_decodes(vp9_frames: list[EncodedFrame]) -> None:
    """Two layer frames in one picture (here a key frame and the inter frame predicted from it, which is
    what an upper spatial layer is) come out as a superframe with an Annex B index, and FFmpeg decodes
    it to the same pictures as the layer frames one by one; the stream then keeps decoding."""
    frames = [f.data for f in vp9_frames]
    payloads = spatial_picture(frames[:2], picture_id=5, resolutions=[(WIDTH, HEIGHT), (WIDTH, HEIGHT)])
    picture = Vp9Depacketizer().depacketize(payloads)
    assert picture.keyframe and (picture.width, picture.height) == (WIDTH, HEIGHT)
    assert picture.data == superframe(frames[:2])
    assert split_superframe(picture.data) == frames[:2]
    # Annex B: marker 0b110 | bytes_per_framesize_minus_1 | frames_in_superframe_minus_1, sizes, marker.
    mag = max(len(frames[0]), len(frames[1])).bit_length() // 8 + 1
    index = picture.data[len(frames[0]) + len(frames[1]) :]
    assert index[0] == index[-1] == 0xC0 | ((mag - 1) << 3) | 1
    assert index[1:-1] == len(frames[0]).to_bytes(mag, "little") + len(frames[1]).to_bytes(mag, "little")

    expected = decode("vp9", frames)
    got = decode("vp9", [picture.data, *frames[2:]])
    assert len(got) == len(expected)
    np.testing.assert_array_equal(got[-1].to_ndarray(), expected[-1].to_ndarray())
    np.testing.assert_array_equal(got[1].to_ndarray(), expected[1].to_ndarray())


def test_spatial_keyframe_size_is_the_top_layer_from_the_ss(vp9_frames: list[EncodedFrame]) -> None:
    frames = [f.data for f in vp9_frames]
    resolutions = [(WIDTH // 2, HEIGHT // 2), (WIDTH, HEIGHT), (WIDTH * 2, HEIGHT * 2)]
    two = Vp9Depacketizer().depacketize(spatial_picture(frames[:2], 9, resolutions))
    assert (two.width, two.height) == (WIDTH, HEIGHT)  # SID 1 is the highest layer sent
    three = Vp9Depacketizer().depacketize(spatial_picture(frames[:3], 9, resolutions))
    assert (three.width, three.height) == (WIDTH * 2, HEIGHT * 2)


def test_layer_frames_that_are_superframes_are_flattened(vp9_frames: list[EncodedFrame]) -> None:
    """Annex B indexes do not nest: a layer frame sent as a superframe (hidden + shown frame) has its
    frames moved into the picture's superframe."""
    frames = [f.data for f in vp9_frames]
    payloads = spatial_picture([superframe(frames[:2]), frames[2]], 3, [(WIDTH, HEIGHT)] * 2)
    picture = Vp9Depacketizer().depacketize(payloads)
    assert picture.data == superframe(frames[:3])
    assert len(decode("vp9", [picture.data])) >= 1


def test_single_layer_superframe_is_kept_as_sent(vp9_frames: list[EncodedFrame]) -> None:
    sent = superframe([f.data for f in vp9_frames[:2]])
    frame = Vp9Depacketizer().depacketize(vp9_packetize(sent, picture_id=2, inter=False))
    assert frame.data == sent and frame.keyframe


@pytest.mark.parametrize(
    ("payloads", "message"),
    [
        ([], "no packets"),
        ([b""], "empty"),
        ([b"\x88"], "truncated"),  # I without picture ID
        ([b"\x88\x80"], "truncated"),  # 15-bit picture ID cut short
        ([b"\xa8\x01\x00"], "truncated"),  # L non-flexible: TL0PICIDX missing
        ([b"\xd8\x01\x03\x03"], "truncated"),  # flexible P: P_DIFF chain runs out
        ([b"\xd8\x01\x03\x03\x03\x02\x00"], "more than 3 reference indices"),
        ([b"\x8a\x01\x30\x01\x40"], "resolutions"),  # SS with Y, one layer, 2 of 4 size octets
        ([b"\x8a\x01\x08\x02\x24"], "truncated"),  # SS with G: 2 groups, first cut short
        ([b"\x8c\x01"], "no data"),
        ([b"\x0c\x41\x02"], "frame marker"),  # P=0 and not a VP9 frame
        ([b"\x0c\x80\x49\x83\x42"], "truncated"),  # key frame header cut inside color config
        ([b"\x0c\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00"], "sync code"),
        ([b"\x04\x80\x00"], r"start of a layer frame \(B=0\)"),
        ([b"\x48\x86\x00"] * 9, "1 to 8 frames"),
        ([b"\x48\x86\x00", b"\x48\xc1\x05\x05\xc1"], "beyond the superframe"),
    ],
)
def test_malformed(payloads: list[bytes], message: str) -> None:
    with pytest.raises(MalformedPacketError, match=message):
        Vp9Depacketizer().depacketize(payloads)


def test_random_bytes_raise_only_malformed_packet_error() -> None:
    accepted = fuzz(Vp9Depacketizer(), seed=9, prefixes=[b"\x0c", b"\x4c", b"\x0e\x30", b"\xbe\x81\x02\x03"])
    assert accepted > 0
