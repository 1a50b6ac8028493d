"""H.264 depacketizer (RFC 6184, packetization modes 0 and 1) on libx264 access units: packetized by
aiortc's packetizer (STAP-A §5.7.1, FU-A §5.8) and by single NAL unit packets (§5.6), each access unit
comes back NAL unit for NAL unit, keyframes get the SPS/PPS they need, and the SPS gives the size."""

from __future__ import annotations

from typing import Any

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from codec_media import (
    HEIGHT,
    WIDTH,
    BitWriter,
    EncodedFrame,
    decode,
    encode_video,
    fuzz,
    h264_packetize,
    nal_type,
    nal_units,
)

from recorder.codecs import H264Depacketizer, depacketizer_for
from recorder.codecs.h264 import sps_size
from recorder.errors import MalformedPacketError
from recorder.models import Codec

START = b"\x00\x00\x00\x01"
SPS, PPS, IDR, AUD = 7, 8, 5, 9


def parameter_sets(frames: list[EncodedFrame]) -> list[bytes]:
    return [n for n in nal_units(frames[0].data) if nal_type(n) in (SPS, PPS)]


def test_rfc6184_aiortc_stap_a_and_fu_a(h264_frames: list[EncodedFrame]) -> None:
    d = depacketizer_for(Codec.H264)
    assert d.codec is Codec.H264 and d.codec_extradata() == b""
    assert sum(f.keyframe for f in h264_frames) >= 2
    kinds = set()
    for f in h264_frames:
        nals = nal_units(f.data)
        payloads = H264Encoder._packetize(nals)
        kinds |= {p[0] & 0x1F for p in payloads}
        assert d.is_frame_start(payloads[0])
        frame = d.depacketize(payloads)
        assert frame.data.startswith(START) and nal_units(frame.data) == nals
        assert frame.data == START + START.join(nals)  # Annex B, 4-byte start codes only
        assert frame.keyframe == f.keyframe
        assert (frame.width, frame.height) == ((WIDTH, HEIGHT) if f.keyframe else (None, None))
    assert {24, 28} <= kinds  # both STAP-A and FU-A were exercised
    assert d.codec_extradata() == START + START.join(parameter_sets(h264_frames))


def test_rfc6184_5_6_single_nal_unit_mode(h264_frames: list[EncodedFrame]) -> None:
    """Packetization mode 0: one NAL unit per packet; only the first packet of an FU-A starts a frame."""
    d = H264Depacketizer()
    for f in h264_frames:
        nals = nal_units(f.data)
        payloads = h264_packetize(nals, mtu=500, aggregate=False)
        assert [d.is_frame_start(p) for p in payloads] == [
            p[0] & 0x1F != 28 or p[1] & 0x80 > 0 for p in payloads
        ]
        frame = d.depacketize(payloads)
        assert nal_units(frame.data) == nals and frame.keyframe == f.keyframe


def test_keyframe_without_parameter_sets_gets_them_and_decodes(h264_frames: list[EncodedFrame]) -> None:
    """SPS/PPS sent once, in the first access unit; a later IDR without them still decodes on its own."""
    params = parameter_sets(h264_frames)
    later = next(f.data for f in h264_frames[1:] if f.keyframe)
    stripped = [n for n in nal_units(later) if nal_type(n) not in (SPS, PPS)]
    d = H264Depacketizer()
    d.depacketize(h264_packetize(nal_units(h264_frames[0].data)))
    frame = d.depacketize(h264_packetize(stripped))
    assert frame.keyframe and (frame.width, frame.height) == (WIDTH, HEIGHT)
    assert nal_units(frame.data) == params + stripped
    with pytest.raises(av.error.InvalidDataError):
        decode("h264", [START + START.join(stripped)])  # what the stripped IDR alone does
    pictures = decode("h264", [frame.data])
    assert len(pictures) == 1 and (pictures[0].width, pictures[0].height) == (WIDTH, HEIGHT)


def test_sprop_parameter_sets_from_sdp(h264_frames: list[EncodedFrame]) -> None:
    params = parameter_sets(h264_frames)
    stripped = [n for n in nal_units(h264_frames[0].data) if nal_type(n) not in (SPS, PPS)]
    d = depacketizer_for(Codec.H264, sprop_parameter_sets=[*params, b"", b"\x0f\x00"])  # junk is ignored
    assert d.codec_extradata() == START + START.join(params)
    frame = d.depacketize(h264_packetize(stripped))
    assert frame.keyframe and nal_units(frame.data) == params + stripped
    assert len(decode("h264", [frame.data])) == 1


def test_idr_before_any_parameter_sets_is_not_a_keyframe(h264_frames: list[EncodedFrame]) -> None:
    params = parameter_sets(h264_frames)
    stripped = [n for n in nal_units(h264_frames[0].data) if nal_type(n) not in (SPS, PPS)]
    assert not H264Depacketizer().depacketize(h264_packetize(stripped)).keyframe
    only_sps = H264Depacketizer(sprop_parameter_sets=params[:1])
    frame = only_sps.depacketize(h264_packetize(stripped))
    assert not frame.keyframe and only_sps.codec_extradata() == b""


def test_parameter_sets_go_after_the_access_unit_delimiter() -> None:
    """§7.4.1.2.3 of H.264: an AUD is the first NAL unit of its access unit."""
    frames = encode_video("libx264", frames=10, gop=5, preset="ultrafast", aud="1")
    d = H264Depacketizer()
    d.depacketize(h264_packetize(nal_units(frames[0].data)))
    later = next(f.data for f in frames[1:] if f.keyframe)
    stripped = [n for n in nal_units(later) if nal_type(n) not in (SPS, PPS)]
    assert nal_type(stripped[0]) == AUD
    frame = d.depacketize(h264_packetize(stripped))
    assert [nal_type(n) for n in nal_units(frame.data)][:3] == [AUD, SPS, PPS]
    assert len(decode("h264", [frame.data])) == 1


@pytest.mark.parametrize(
    "encoding",
    [
        pytest.param({"height": 180}, id="baseline-cropped"),
        pytest.param({"width": 317, "height": 179, "pix_fmt": "yuv444p"}, id="high444-crop-unit-1"),
        pytest.param({"height": 180, "x264-params": "interlaced=1:cqm=jvt"}, id="fields-scaling-matrices"),
        pytest.param({"pix_fmt": "gray", "width": 250, "height": 130}, id="monochrome"),
        pytest.param({"x264-params": "bframes=2"}, id="main-poc-type-0"),
    ],
)
def test_sps_size_matches_the_decoder(encoding: dict[str, Any]) -> None:
    """§7.3.2.1.1: chroma_format_idc, scaling lists, pic_order_cnt_type, frame_mbs_only, cropping."""
    frames = encode_video("libx264", frames=3, preset="ultrafast", **encoding)
    frame = H264Depacketizer().depacketize(H264Encoder._packetize(nal_units(frames[0].data)))
    picture = decode("h264", [frame.data])[0]
    assert frame.keyframe and (frame.width, frame.height) == (picture.width, picture.height)
    assert (picture.width, picture.height) == (encoding.get("width", WIDTH), encoding.get("height", HEIGHT))


def synthetic_sps(
    poc_type: int, chroma_format: int | None = None, crop: tuple[int, ...] = (), max_refs: int = 4
) -> bytes:
    """An SPS written from §7.3.2.1.1, for fields x264 never writes (pic_order_cnt_type 1, 4:2:2,
    explicit scaling lists, one that ends early)."""
    w = BitWriter().u(8, 100 if chroma_format is not None else 66).u(16, 0x001E).ue(0)
    if chroma_format is not None:
        w.ue(chroma_format)
        if chroma_format == 3:
            w.u(1, 0)
        w.ue(0).ue(0).u(1, 0).u(1, 1)  # bit depths, bypass, seq_scaling_matrix_present_flag
        for i in range(12 if chroma_format == 3 else 8):
            w.u(1, i in (0, 7))
            if i == 0:
                w.se(-8)  # a list ending early: delta -8 makes nextScale 0
            if i == 7:
                w.se(2).se(-1).se(-1)
                for _ in range(61):
                    w.se(0)
    w.ue(0).ue(poc_type)
    if poc_type == 0:
        w.ue(2)  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        w.u(1, 0).se(-3).se(2).ue(3).se(1).se(-1).se(5)
    w.ue(max_refs).u(1, 0).ue(19).ue(14).u(1, 1).u(1, 1)  # 320 wide, 15 map units, frame_mbs_only
    if crop:
        w.u(1, 1)
        for value in crop:
            w.ue(value)
    else:
        w.u(1, 0)
    w.u(1, 0)  # vui_parameters_present_flag
    return b"\x67" + w.rbsp()


@pytest.mark.parametrize(
    ("sps", "size"),
    [
        (synthetic_sps(1), (320, 240)),
        (synthetic_sps(1, crop=(1, 2, 3, 4)), (320 - 2 * 3, 240 - 2 * 7)),
        (synthetic_sps(2, chroma_format=0, crop=(1, 2, 3, 4)), (320 - 3, 240 - 7)),
        (synthetic_sps(0, chroma_format=2, crop=(1, 1, 1, 1)), (320 - 4, 240 - 2)),
        (synthetic_sps(1, chroma_format=3, crop=(5, 0, 0, 5)), (315, 235)),
    ],
)
def test_sps_size_synthetic(sps: bytes, size: tuple[int, int]) -> None:
    assert sps_size(sps) == size


def test_emulation_prevention_bytes_are_removed() -> None:
    """§7.4.1: 00 00 03 in the NAL unit is 00 00 in the RBSP. A huge max_num_ref_frames writes the zero
    run that needs an emulation prevention byte (the parser reads the field without judging it)."""
    sps = synthetic_sps(0, chroma_format=1, crop=(0, 0, 0, 4), max_refs=(1 << 24) - 1)
    assert b"\x00\x00\x03" in sps
    assert sps_size(sps) == (320, 232)


def test_unparsable_sps_keeps_the_stream_but_not_the_size(h264_frames: list[EncodedFrame]) -> None:
    nals = [n for n in nal_units(h264_frames[0].data) if nal_type(n) != SPS]
    frame = H264Depacketizer().depacketize(h264_packetize([b"\x67\x42", *nals]))
    assert frame.keyframe and (frame.width, frame.height) == (None, None)
    assert nal_units(frame.data)[0] == b"\x67\x42"


@pytest.mark.parametrize(
    ("payloads", "message"),
    [
        ([], "no packets"),
        ([b""], "empty"),
        ([b"\x7c\x85abc", b"\x7c\x85def"], "FU-A start while the previous fragmented NAL is unfinished"),
        ([b"\x7c\x05abc"], r"FU-A continuation without a start"),
        ([b"\x7c\x85abc", b"\x7c\x41def"], "FU-A fragment of NAL type 1 continues a NAL unit of type 5"),
        ([b"\x7c\x85abc"], "ends inside a fragmented NAL unit"),
        ([b"\x7c\x85abc", b"\x65abc"], "interrupted"),
        ([b"\x7c\x85"], "no fragment"),
        ([b"\x7c\x80abc"], "NAL unit type 0"),
        ([b"\x18\x00\x09\x65ab"], "STAP-A NAL size 9 at byte 1 does not fit"),
        ([b"\x18\x00\x03\x65ab\x00"], "truncated in the NAL size at byte 6"),
        ([b"\x18\x00\x00"], "STAP-A NAL size 0"),
        ([b"\x18"], "holds no NAL unit"),
        ([b"\x18\x00\x02\xe5a"], "NAL unit in a STAP-A has the forbidden_zero_bit set"),
        ([b"\x18\x00\x02\x18a"], "NAL unit in a STAP-A has NAL unit type 24"),
        ([b"\xe5abc"], "forbidden_zero_bit"),
        ([b"\x00abc"], "reserved NAL unit type 0"),
        ([b"\x1fabc"], "reserved NAL unit type 31"),
        ([b"\x19abc"], "STAP-B packets .interleaved mode. are unsupported"),
        ([b"\x1aabc"], "MTAP16"),
        ([b"\x1dabc"], "FU-B"),
    ],
)
def test_malformed(payloads: list[bytes], message: str) -> None:
    with pytest.raises(MalformedPacketError, match=message):
        H264Depacketizer().depacketize(payloads)


def test_random_bytes_raise_only_malformed_packet_error(h264_frames: list[EncodedFrame]) -> None:
    params = parameter_sets(h264_frames)
    d = H264Depacketizer(sprop_parameter_sets=params)
    accepted = fuzz(
        d, seed=264, prefixes=[b"\x65", b"\x67\x42\xc0\x1e", b"\x7c\x85", b"\x7c\x45", b"\x18\x00"]
    )
    assert accepted > 0
    # Random SPS bytes reach the SPS parser: it may give up on the size, never crash.
    fuzz(H264Depacketizer(), seed=265, prefixes=[b"\x67\x64", b"\x67\x42", b"\x67\xf4\x00\x1e"])
