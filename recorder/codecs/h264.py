"""H.264 over RTP (RFC 6184), packetization modes 0 and 1: single NAL unit (§5.6), STAP-A (§5.7.1) and
FU-A (§5.8). Access units come out in Annex B with 4-byte start codes. The latest SPS and PPS are
tracked and put in front of every IDR frame that lacks them, so every keyframe decodes on its own;
an IDR frame before any SPS/PPS is known is not a keyframe, because nothing can decode it."""

from __future__ import annotations

from collections.abc import Sequence

from recorder.codecs.base import DepacketizedFrame
from recorder.codecs.bitreader import BitReader
from recorder.errors import MalformedPacketError
from recorder.models import Codec

START_CODE = b"\x00\x00\x00\x01"
NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 5, 6, 7, 8, 9
STAP_A, STAP_B, MTAP16, MTAP24, FU_A, FU_B = 24, 25, 26, 27, 28, 29
HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def split_payload(payload: bytes, nals: list[bytes], fragment: list[bytes] | None) -> list[bytes] | None:
    """Append the NAL units of one RTP payload to `nals`; returns the FU-A fragment still open."""
    if not payload:
        raise MalformedPacketError("H.264 RTP payload is empty")
    header = payload[0]
    if header & 0x80:
        raise MalformedPacketError("H.264 NAL unit has the forbidden_zero_bit set")
    kind = header & 0x1F
    if kind == FU_A:
        if len(payload) < 3:
            raise MalformedPacketError("H.264 FU-A packet is truncated")
        fu = payload[1]
        start, end = fu & 0x80, fu & 0x40
        if start:
            if fragment is not None:
                raise MalformedPacketError("H.264 FU-A start while the previous fragmented NAL is unfinished")
            fragment = [bytes([(header & 0xE0) | (fu & 0x1F)])]
        elif fragment is None:
            raise MalformedPacketError("H.264 FU-A continuation without a start fragment")
        fragment.append(payload[2:])
        if end:
            nals.append(b"".join(fragment))
            return None
        return fragment
    if fragment is not None:
        raise MalformedPacketError("H.264 fragmented NAL unit interrupted by another packet")
    if 1 <= kind <= 23:
        nals.append(payload)
    elif kind == STAP_A:
        pos, size = 1, len(payload)
        while pos < size:
            if pos + 2 > size:
                raise MalformedPacketError("H.264 STAP-A has a truncated NAL size")
            length = int.from_bytes(payload[pos : pos + 2], "big")
            pos += 2
            if length == 0 or pos + length > size:
                raise MalformedPacketError(f"H.264 STAP-A NAL size {length} runs past the packet")
            nals.append(payload[pos : pos + length])
            pos += length
    elif kind in (STAP_B, MTAP16, MTAP24, FU_B):
        raise MalformedPacketError(f"H.264 packetization type {kind} is not supported (interleaved mode)")
    else:
        raise MalformedPacketError(f"H.264 NAL unit type {kind} is reserved")
    return None


def sps_size(sps: bytes) -> tuple[int, int]:
    """Picture (width, height) from a sequence parameter set (H.264 §7.3.2.1.1), cropping applied."""
    r = BitReader(sps[1:].replace(b"\x00\x00\x03", b"\x00\x00"))
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma = 1
    separate_planes = 0
    if profile in HIGH_PROFILES:
        chroma = r.ue()
        if chroma == 3:
            separate_planes = r.bit()
        r.ue()
        r.ue()  # bit depths
        r.bit()
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma == 3 else 8):
                if r.bit():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()
    r.bit()  # direct_8x8_inference_flag
    crop = (r.ue(), r.ue(), r.ue(), r.ue()) if r.bit() else (0, 0, 0, 0)
    chroma_array_type = 0 if separate_planes else chroma
    if chroma_array_type == 0:
        crop_x, crop_y = 1, 2 - frame_mbs_only
    else:
        crop_x = 2 if chroma in (1, 2) else 1
        crop_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - crop_y * (crop[2] + crop[3])
    if width <= 0 or height <= 0:
        raise MalformedPacketError("H.264 SPS states an empty picture")
    return width, height


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se() + 256) % 256
        last = nxt or last


class H264Depacketizer:
    codec = Codec.H264

    def __init__(self, sprop_parameter_sets: Sequence[bytes] = ()) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self._size: tuple[int, int] | None = None
        for nal in sprop_parameter_sets:
            self._remember(nal)

    def is_frame_start(self, payload: bytes) -> bool:
        if not payload:
            return False
        kind = payload[0] & 0x1F
        return 1 <= kind <= STAP_A or (kind == FU_A and len(payload) > 1 and bool(payload[1] & 0x80))

    def depacketize(self, payloads: Sequence[bytes]) -> DepacketizedFrame:
        nals: list[bytes] = []
        fragment: list[bytes] | None = None
        for payload in payloads:
            fragment = split_payload(payload, nals, fragment)
        if fragment is not None:
            raise MalformedPacketError("H.264 access unit ends inside a fragmented NAL unit")
        idr = has_sps = has_pps = False
        for nal in nals:
            kind = nal[0] & 0x1F
            if kind == NAL_IDR:
                idr = True
            elif kind == NAL_SPS:
                has_sps = True
                self._remember(nal)
            elif kind == NAL_PPS:
                has_pps = True
                self._remember(nal)
        if idr and not (has_sps and has_pps):
            if self.sps is None or self.pps is None:
                idr = False  # undecodable until parameter sets arrive
            else:
                missing = ([] if has_sps else [self.sps]) + ([] if has_pps else [self.pps])
                nals = missing + nals
        data = b"".join(START_CODE + nal for nal in nals)
        if not idr:
            return DepacketizedFrame(data, False)
        size = self._size
        return DepacketizedFrame(data, True, size[0] if size else None, size[1] if size else None)

    def codec_extradata(self) -> bytes:
        if self.sps is None or self.pps is None:
            return b""
        return START_CODE + self.sps + START_CODE + self.pps

    def _remember(self, nal: bytes) -> None:
        if not nal:
            return
        kind = nal[0] & 0x1F
        if kind == NAL_SPS and nal != self.sps:
            self._size = sps_size(nal)
            self.sps = nal
        elif kind == NAL_PPS:
            self.pps = nal
