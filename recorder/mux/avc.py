"""H.264 in Matroska (V_MPEG4/ISO/AVC, RFC 9559 codec mapping): the AVCDecoderConfigurationRecord
(ISO/IEC 14496-15 §5.3.3.1) that is its CodecPrivate, and access units converted from Annex B byte
stream (start codes, H.264 Annex B) to the 4-byte length-prefixed NAL units the record announces.

Pure functions. The NAL units themselves are never touched: only the framing between them changes.
"""

from __future__ import annotations

from recorder.codecs.bitreader import BitReader
from recorder.codecs.h264 import HIGH_PROFILES, unescape
from recorder.errors import MalformedPacketError

NAL_SPS, NAL_PPS, NAL_SPS_EXT = 7, 8, 13
NAL_TYPE_MASK = 0x1F
LENGTH_SIZE = 4
_START = b"\x00\x00\x01"
# Profiles whose record carries chroma format and bit depths (ISO/IEC 14496-15 §5.3.3.1.1).
_EXTENDED_RECORD_PROFILES = frozenset({100, 110, 122, 144})
_MAX_PARAMETER_SETS = 31
_MIN_SPS_SIZE = 4


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream. Zero bytes before a start code belong to the byte
    stream (leading_zero_8bits / trailing_zero_8bits, H.264 §B.1), not to a NAL unit, whose last
    octet is never zero (§7.4.1), so they are dropped; empty NAL units are skipped."""
    parts = data.split(_START)
    nals = [p.rstrip(b"\x00") for p in parts[1:]]
    if parts[0].strip(b"\x00"):
        # Bytes before the first start code: not Annex B framing, keep them as one NAL unit so that
        # nothing the sender sent is lost.
        nals.insert(0, parts[0].rstrip(b"\x00"))
    return [n for n in nals if n]


def annexb_to_avcc(data: bytes) -> bytes:
    """An access unit in Annex B form as 4-byte big-endian length-prefixed NAL units."""
    return b"".join(len(n).to_bytes(LENGTH_SIZE, "big") + n for n in split_annexb(data))


def decoder_configuration(extradata: bytes) -> bytes:
    """The AVCDecoderConfigurationRecord for the SPS and PPS in `extradata` (Annex B); a record given
    as is (configurationVersion 1) is returned unchanged. Raises MalformedPacketError without an SPS."""
    if extradata[:1] == b"\x01":
        return extradata
    nals = split_annexb(extradata)
    sps = [n for n in nals if n[0] & NAL_TYPE_MASK == NAL_SPS]
    pps = [n for n in nals if n[0] & NAL_TYPE_MASK == NAL_PPS]
    ext = [n for n in nals if n[0] & NAL_TYPE_MASK == NAL_SPS_EXT]
    if not sps or len(sps[0]) < _MIN_SPS_SIZE:
        raise MalformedPacketError("H.264 decoder configuration needs a sequence parameter set")
    if len(sps) > _MAX_PARAMETER_SETS or len(pps) > 255:
        raise MalformedPacketError("H.264 decoder configuration holds too many parameter sets")
    profile, compatibility, level = sps[0][1], sps[0][2], sps[0][3]
    out = bytearray(
        [1, profile, compatibility, level, 0xFC | (LENGTH_SIZE - 1), 0xE0 | len(sps)]
    )  # configurationVersion, profile, compatibility, level, lengthSizeMinusOne, numOfSPS
    for nal in sps:
        out += len(nal).to_bytes(2, "big") + nal
    out.append(len(pps))
    for nal in pps:
        out += len(nal).to_bytes(2, "big") + nal
    if profile in _EXTENDED_RECORD_PROFILES:
        chroma_format, luma_depth, chroma_depth = _sps_format(sps[0])
        out += bytes([0xFC | chroma_format, 0xF8 | luma_depth, 0xF8 | chroma_depth, len(ext)])
        for nal in ext:
            out += len(nal).to_bytes(2, "big") + nal
    return bytes(out)


def _sps_format(sps: bytes) -> tuple[int, int, int]:
    """chroma_format_idc, bit_depth_luma_minus8 and bit_depth_chroma_minus8 of an SPS (H.264
    §7.3.2.1.1); 4:2:0 8-bit when the SPS does not carry them or cannot be read."""
    try:
        r = BitReader(unescape(sps[1:16]), "H.264 SPS")
        profile = r.bits(8)
        r.bits(16)  # constraint flags, level_idc
        r.ue()  # seq_parameter_set_id
        if profile not in HIGH_PROFILES:
            return 1, 0, 0
        chroma_format = r.ue()
        if chroma_format == 3:  # 4:4:4 carries separate_colour_plane_flag
            r.bit()
        return chroma_format & 3, r.ue() & 7, r.ue() & 7
    except MalformedPacketError:
        return 1, 0, 0
