"""H.264 framing for Matroska: Annex B access units to length-prefixed NAL units, and the
AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) built from SPS and PPS."""

from __future__ import annotations

import pytest

from recorder.errors import MalformedPacketError
from recorder.mux.avc import annexb_to_avcc, decoder_configuration, split_annexb

SPS = bytes.fromhex("6742c01e95a0a0fd00f0884534")  # baseline (66), level 3.0
PPS = bytes.fromhex("68ce3c80")
IDR = bytes.fromhex("65888400aa")
SEI = bytes.fromhex("0605ff")
# A High profile (100) SPS: ue(0) sps id, chroma_format_idc ue(1), bit depths ue(2) and ue(0).
HIGH_SPS = bytes([0x67, 100, 0x00, 0x28, 0b1_010_011_1, 0b1_0000000])


@pytest.mark.parametrize(
    ("stream", "nals"),
    [
        (b"\0\0\0\1" + SPS + b"\0\0\0\1" + PPS + b"\0\0\0\1" + IDR, [SPS, PPS, IDR]),
        (b"\0\0\1" + SEI + b"\0\0\1" + IDR, [SEI, IDR]),  # 3-byte start codes
        (b"\0\0\0\0\1" + SEI + b"\0\0\0" + b"\0\0\1" + IDR + b"\0\0", [SEI, IDR]),  # zero_bytes around
        (b"\0\0\0\1\0\0\0\1" + IDR, [IDR]),  # an empty NAL unit is skipped
        (IDR, [IDR]),  # no start code at all: kept whole
    ],
)
def test_annexb_is_split_into_nal_units(stream: bytes, nals: list[bytes]) -> None:
    assert split_annexb(stream) == nals
    assert annexb_to_avcc(stream) == b"".join(len(n).to_bytes(4, "big") + n for n in nals)


def test_decoder_configuration_record() -> None:
    record = decoder_configuration(b"\0\0\0\1" + SPS + b"\0\0\0\1" + PPS)
    assert record == (
        bytes([1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1])  # version, profile, compat, level, 4-byte lengths, 1 SPS
        + len(SPS).to_bytes(2, "big") + SPS
        + bytes([1]) + len(PPS).to_bytes(2, "big") + PPS
    )  # fmt: skip
    assert decoder_configuration(record) == record  # already a record: unchanged


def test_high_profile_record_carries_chroma_format_and_bit_depths() -> None:
    record = decoder_configuration(b"\0\0\0\1" + HIGH_SPS + b"\0\0\0\1" + PPS)
    tail = record[-4:]
    assert record[1] == 100
    assert tail == bytes([0xFC | 1, 0xF8 | 2, 0xF8 | 0, 0])  # 4:2:0, luma 10 bit, chroma 8 bit, no ext


def test_a_record_needs_an_sps() -> None:
    with pytest.raises(MalformedPacketError):
        decoder_configuration(b"\0\0\0\1" + PPS)
