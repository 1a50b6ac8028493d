"""H.264 over RTP (RFC 6184), packetization modes 0 and 1: single NAL unit packets (§5.6), STAP-A
(§5.7.1) and FU-A (§5.8); the interleaved mode's STAP-B, MTAP and FU-B are refused.

Access units come out in Annex B with 4-byte start codes. The latest SPS and PPS (in-band, or from SDP
sprop-parameter-sets) are tracked and inserted in front of every IDR access unit that lacks them, so
each keyframe decodes on its own. An IDR access unit seen before any SPS and PPS is not a keyframe:
nothing can decode it. The picture size comes from the SPS (H.264 §7.3.2.1.1, cropping applied).
"""

from __future__ import annotations

from collections.abc import Sequence

from recorder.codecs.base import DepacketizedFrame
from recorder.codecs.bitreader import BitReader
from recorder.errors import MalformedPacketError
from recorder.models import Codec

START_CODE = b"\x00\x00\x00\x01"
FORBIDDEN_BIT, NRI_MASK, TYPE_MASK = 0x80, 0x60, 0x1F
NAL_IDR, NAL_SPS, NAL_PPS, NAL_AUD = 5, 7, 8, 9
LAST_NAL_TYPE = 23  # 1-23 are NAL unit types; 24-29 RTP packet types; 0, 30, 31 reserved
STAP_A, STAP_B, MTAP16, MTAP24, FU_A, FU_B = 24, 25, 26, 27, 28, 29
INTERLEAVED_TYPES = {STAP_B: "STAP-B", MTAP16: "MTAP16", MTAP24: "MTAP24", FU_B: "FU-B"}
FU_START, FU_END = 0x80, 0x40
FU_A_HEADER_SIZE = 2
STAP_SIZE_FIELD = 2
# Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices (§7.3.2.1.1).
HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
CHROMA_444 = 3


def _check_nal_header(header: int, where: str) -> int:
    """The type of a NAL unit header that may stand in an access unit; raises otherwise."""
    if header & FORBIDDEN_BIT:
        raise MalformedPacketError(f"H.264 {where} has the forbidden_zero_bit set")
    kind = header & TYPE_MASK
    if not 1 <= kind <= LAST_NAL_TYPE:
        raise MalformedPacketError(f"H.264 {where} has NAL unit type {kind}, which is not a NAL unit type")
    return kind


class _Unpacker:
    """Collects the NAL units of one access unit from its RTP payloads, in order."""

    __slots__ = ("fragment", "fragment_type", "nals")

    def __init__(self) -> None:
        self.nals: list[bytes | memoryview] = []
        self.fragment: list[bytes | memoryview] | None = None
        self.fragment_type = 0

    def add(self, payload: bytes) -> None:
        if not payload:
            raise MalformedPacketError("H.264 RTP payload is empty")
        header = payload[0]
        if header & FORBIDDEN_BIT:
            raise MalformedPacketError("H.264 RTP payload header has the forbidden_zero_bit set")
        kind = header & TYPE_MASK
        if kind == FU_A:
            self._fu_a(payload)
            return
        if self.fragment is not None:
            raise MalformedPacketError("H.264 fragmented NAL unit interrupted before its FU-A end fragment")
        if 1 <= kind <= LAST_NAL_TYPE:  # single NAL unit packet (§5.6)
            self.nals.append(payload)
        elif kind == STAP_A:
            self._stap_a(payload)
        elif kind in INTERLEAVED_TYPES:
            raise MalformedPacketError(
                f"H.264 {INTERLEAVED_TYPES[kind]} packets (interleaved mode) are unsupported"
            )
        else:
            raise MalformedPacketError(f"H.264 RTP payload has reserved NAL unit type {kind}")

    def _stap_a(self, payload: bytes) -> None:
        """Single-time aggregation packet: 16-bit size, NAL unit, repeated (§5.7.1)."""
        view = memoryview(payload)
        pos, size = 1, len(payload)
        if size == 1:
            raise MalformedPacketError("H.264 STAP-A holds no NAL unit")
        while pos < size:
            if pos + STAP_SIZE_FIELD > size:
                raise MalformedPacketError(f"H.264 STAP-A is truncated in the NAL size at byte {pos}")
            length = (payload[pos] << 8) | payload[pos + 1]
            pos += STAP_SIZE_FIELD
            if not length or pos + length > size:
                raise MalformedPacketError(
                    f"H.264 STAP-A NAL size {length} at byte {pos - 2} does not fit the {size}-byte packet"
                )
            _check_nal_header(payload[pos], "NAL unit in a STAP-A")
            self.nals.append(view[pos : pos + length])
            pos += length

    def _fu_a(self, payload: bytes) -> None:
        """Fragmentation unit: FU indicator, FU header |S|E|R|Type|, fragment (§5.8)."""
        if len(payload) <= FU_A_HEADER_SIZE:
            raise MalformedPacketError(f"H.264 FU-A packet of {len(payload)} bytes has no fragment")
        fu = payload[1]
        kind = _check_nal_header(fu & TYPE_MASK, "FU-A header")
        fragment = self.fragment
        if fu & FU_START:
            if fragment is not None:
                raise MalformedPacketError("H.264 FU-A start while the previous fragmented NAL is unfinished")
            fragment = self.fragment = [bytes([(payload[0] & (FORBIDDEN_BIT | NRI_MASK)) | kind])]
            self.fragment_type = kind
        elif fragment is None:
            raise MalformedPacketError("H.264 FU-A continuation without a start fragment (S=0 first)")
        elif kind != self.fragment_type:
            raise MalformedPacketError(
                f"H.264 FU-A fragment of NAL type {kind} continues a NAL unit of type {self.fragment_type}"
            )
        fragment.append(memoryview(payload)[FU_A_HEADER_SIZE:])
        if fu & FU_END:
            self.nals.append(b"".join(fragment))
            self.fragment = None


class H264Depacketizer:
    """One H.264 stream; keeps the latest SPS and PPS across access units."""

    codec = Codec.H264

    def __init__(self, sprop_parameter_sets: Sequence[bytes] = ()) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self.size: tuple[int, int] | None = None
        """Picture size stated by the current SPS; None if unknown or the SPS could not be parsed."""
        for nal in sprop_parameter_sets:
            # Only SPS and PPS matter here; other entries (SPS extensions, subset SPS) are ignored.
            if nal and nal[0] & (FORBIDDEN_BIT | TYPE_MASK) in (NAL_SPS, NAL_PPS):
                self._remember(nal[0] & TYPE_MASK, nal)

    def is_frame_start(self, payload: bytes) -> bool:
        if not payload:
            return False
        kind = payload[0] & TYPE_MASK
        if kind == FU_A:
            return len(payload) > 1 and bool(payload[1] & FU_START)
        return 1 <= kind <= STAP_A

    def depacketize(self, payloads: Sequence[bytes]) -> DepacketizedFrame:
        if not payloads:
            raise MalformedPacketError("H.264 access unit has no packets")
        unpacker = _Unpacker()
        for payload in payloads:
            unpacker.add(payload)
        if unpacker.fragment is not None:
            raise MalformedPacketError("H.264 access unit ends inside a fragmented NAL unit (no FU-A end)")
        nals = unpacker.nals
        idr = has_sps = has_pps = False
        for nal in nals:
            kind = nal[0] & TYPE_MASK
            if kind == NAL_IDR:
                idr = True
            elif kind == NAL_SPS:
                has_sps = True
                self._remember(kind, nal)
            elif kind == NAL_PPS:
                has_pps = True
                self._remember(kind, nal)
        if idr and not (has_sps and has_pps):
            if self.sps is None or self.pps is None:
                idr = False  # undecodable until parameter sets arrive
            else:
                missing = ([] if has_sps else [self.sps]) + ([] if has_pps else [self.pps])
                at = 1 if nals[0][0] & TYPE_MASK == NAL_AUD else 0  # the AUD stays first (§7.4.1.2.3)
                nals[at:at] = missing
        data = START_CODE + START_CODE.join(nals)
        if not idr:
            return DepacketizedFrame(data, False)
        if self.size is None:
            return DepacketizedFrame(data, True)
        return DepacketizedFrame(data, True, self.size[0], self.size[1])

    def codec_extradata(self) -> bytes:
        """Annex B SPS and PPS, the decoder configuration for the container; b'' until both are known."""
        if self.sps is None or self.pps is None:
            return b""
        return START_CODE + self.sps + START_CODE + self.pps

    def _remember(self, kind: int, nal: bytes | memoryview) -> None:
        if kind == NAL_PPS:
            self.pps = bytes(nal)
        elif nal != self.sps:
            self.sps = bytes(nal)
            try:
                self.size = sps_size(self.sps)
            except MalformedPacketError:
                self.size = None  # still recorded bit for bit; only the size is unknown


def unescape(rbsp: bytes) -> bytes:
    """Remove emulation prevention bytes (00 00 03 -> 00 00, H.264 §7.4.1)."""
    return rbsp.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in rbsp else rbsp


def sps_size(sps: bytes) -> tuple[int, int]:
    """Picture (width, height) from a sequence parameter set NAL unit (H.264 §7.3.2.1.1, §7.4.2.1.1),
    frame cropping applied."""
    r = BitReader(unescape(sps[1:]), "H.264 SPS")
    profile = r.bits(8)
    r.bits(16)  # constraint_set flags, reserved_zero_2bits, level_idc
    r.ue()  # seq_parameter_set_id
    chroma_format = 1
    separate_planes = False
    if profile in HIGH_PROFILES:
        chroma_format = r.ue()
        if chroma_format > CHROMA_444:
            raise MalformedPacketError(f"H.264 SPS has chroma_format_idc {chroma_format}")
        if chroma_format == CHROMA_444:
            separate_planes = r.flag()
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.bit()  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma_format == CHROMA_444 else 8):
                if r.flag():  # seq_scaling_list_present_flag[i]
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.bit()  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        cycle = r.ue()
        if cycle > 255:
            raise MalformedPacketError(f"H.264 SPS has {cycle} pic_order_cnt cycle frames (at most 255)")
        for _ in range(cycle):
            r.se()  # offset_for_ref_frame[i]
    elif poc_type != 2:
        raise MalformedPacketError(f"H.264 SPS has pic_order_cnt_type {poc_type}")
    r.ue()  # max_num_ref_frames
    r.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()  # mb_adaptive_frame_field_flag
    r.bit()  # direct_8x8_inference_flag
    left = right = top = bottom = 0
    if r.flag():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
    # CropUnitX/Y (equations 7-19 to 7-22): ChromaArrayType is 0 with separate colour planes.
    if separate_planes or chroma_format == 0:
        crop_x, crop_y = 1, 2 - frame_mbs_only
    else:
        crop_x = 1 if chroma_format == CHROMA_444 else 2  # SubWidthC
        crop_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)  # SubHeightC
    width = width_mbs * 16 - crop_x * (left + right)
    height = (2 - frame_mbs_only) * height_map_units * 16 - crop_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise MalformedPacketError(f"H.264 SPS crops the picture to {width}x{height}")
    return width, height


def _skip_scaling_list(r: BitReader, size: int) -> None:
    """scaling_list() (§7.3.2.1.1.1), read only to get past it."""
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + r.se()) % 256
        last = following or last
