"""VP9 over RTP (RFC 9628): payload descriptor in flexible and non-flexible mode (§4.2), scalability
structure (§4.2.1), frame start by the B bit, keyframes and picture size from the VP9 uncompressed
header (VP9 bitstream spec §6.2).

A frame handed to `depacketize` is one picture: every packet of one RTP timestamp. A picture with one
layer frame (no spatial scalability) comes out exactly as it was sent. A picture with several spatial
layer frames (B marks the start of each) comes out as one VP9 superframe (VP9 spec Annex B): the layer
frames in order, followed by the superframe index. This is how libvpx emits spatial SVC and how WebM
stores it, and it is the only choice that keeps every picture decodable: upper layers predict from the
lower ones (inter-layer prediction), so the highest layer alone does not decode, and a decoder fed the
superframe outputs the picture at the highest resolution sent. Layer frames that are superframes
themselves (a hidden frame and a shown one) are flattened into the picture's superframe, because
decoders do not parse nested indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

from recorder.codecs.base import DepacketizedFrame
from recorder.codecs.bitreader import BitReader
from recorder.errors import MalformedPacketError
from recorder.models import Codec

# First descriptor octet: |I|P|L|F|B|E|V|Z| (RFC 9628 §4.2)
I_BIT, P_BIT, L_BIT, F_BIT, B_BIT, E_BIT, V_BIT, Z_BIT = 0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
M_BIT = 0x80  # 15-bit picture ID
D_BIT = 0x01  # layer indices |TID|U|SID|D|: inter-layer dependency
N_BIT = 0x01  # another P_DIFF follows
MAX_P_DIFFS = 3
# Scalability structure: |N_S|Y|G|-|-|-| (§4.2.1)
SS_Y, SS_G = 0x10, 0x08

SYNC_CODE = 0x498342
CS_RGB = 7
FRAME_MARKER = 2
# Superframe index (VP9 spec Annex B): marker byte |1|1|0|bytes_per_framesize_minus_1(2)|frames_minus_1(3)|
SUPERFRAME_MARKER, SUPERFRAME_MARKER_MASK = 0xC0, 0xE0
MAX_SUPERFRAME_FRAMES = 8
HEADER_BYTES = 64  # far more than the uncompressed header needs up to the frame size


class Descriptor:
    """The fields of one RFC 9628 payload descriptor the depacketizer acts on."""

    __slots__ = ("flags", "inter_layer", "resolutions", "sid", "size")

    def __init__(
        self, size: int, flags: int, sid: int, inter_layer: bool, resolutions: list[tuple[int, int]]
    ) -> None:
        self.size = size
        """Descriptor length in bytes: the layer frame data starts there."""
        self.flags = flags
        self.sid = sid
        """Spatial layer index (0 when L is not set)."""
        self.inter_layer = inter_layer
        """D: this layer frame depends on the spatial layer below it."""
        self.resolutions = resolutions
        """Per spatial layer (width, height) from the scalability structure, when V and Y are set."""


def parse_descriptor(payload: bytes) -> Descriptor:
    """Parse the VP9 payload descriptor at the start of `payload` (RFC 9628 §4.2, §4.2.1)."""
    size = len(payload)
    if not size:
        raise MalformedPacketError("VP9 payload is empty")
    flags = payload[0]
    pos = 1
    sid = 0
    inter_layer = False
    resolutions: list[tuple[int, int]] = []
    try:
        if flags & I_BIT:
            pos += 2 if payload[pos] & M_BIT else 1
        if flags & L_BIT:  # |TID|U|SID|D|, then TL0PICIDX in non-flexible mode
            sid = (payload[pos] >> 1) & 0x07
            inter_layer = bool(payload[pos] & D_BIT)
            pos += 1 if flags & F_BIT else 2
        if flags & F_BIT and flags & P_BIT:
            for count in range(1, MAX_P_DIFFS + 1):
                more = payload[pos] & N_BIT
                pos += 1
                if not more:
                    break
                if count == MAX_P_DIFFS:
                    raise MalformedPacketError("VP9 descriptor has more than 3 reference indices")
        if flags & V_BIT:
            ss = payload[pos]
            pos += 1
            if ss & SS_Y:
                end = pos + 4 * ((ss >> 5) + 1)
                if end > size:
                    raise MalformedPacketError("VP9 scalability structure is truncated in its resolutions")
                resolutions = [
                    (int.from_bytes(payload[i : i + 2], "big"), int.from_bytes(payload[i + 2 : i + 4], "big"))
                    for i in range(pos, end, 4)
                ]
                pos = end
            if ss & SS_G:
                groups = payload[pos]
                pos += 1
                for _ in range(groups):
                    pos += 1 + ((payload[pos] >> 2) & 0x03)  # |TID|U|R|-|-| and R P_DIFFs
    except IndexError:
        raise MalformedPacketError(f"VP9 payload descriptor is truncated ({size} bytes)") from None
    if pos > size:
        raise MalformedPacketError(f"VP9 payload descriptor is truncated ({size} of {pos} bytes)")
    if pos == size:
        raise MalformedPacketError(f"VP9 payload has a {pos}-byte descriptor and no data")
    return Descriptor(pos, flags, sid, inter_layer, resolutions)


def is_key_frame(frame: bytes) -> bool:
    """True if `frame` (a VP9 frame or superframe) starts with a key frame header (VP9 spec §6.2)."""
    if not frame:
        return False
    byte = frame[0]
    if byte >> 6 != FRAME_MARKER:
        raise MalformedPacketError(f"VP9 frame lacks its frame marker (first byte {byte:#04x})")
    profile = ((byte >> 5) & 1) | ((byte >> 3) & 2)  # profile_low_bit, then profile_high_bit
    shift = 2 if profile == 3 else 3  # profile 3 has a reserved bit first
    return not (byte >> shift) & 1 and not (byte >> (shift - 1)) & 1  # show_existing_frame, frame_type


def frame_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) stated by a VP9 frame header: key frames, intra-only frames and inter frames that
    give an explicit size; None for inter frames that take their size from a reference and for
    show_existing_frame (VP9 spec §6.2 uncompressed_header, frame_size, frame_size_with_refs)."""
    r = BitReader(frame[:HEADER_BYTES], "VP9 uncompressed header")
    if r.bits(2) != FRAME_MARKER:
        raise MalformedPacketError("VP9 frame lacks its frame marker")
    profile = r.bit()
    profile |= r.bit() << 1
    if profile == 3:
        r.bit()  # reserved_zero
    if r.flag():  # show_existing_frame
        return None
    non_key = r.flag()
    show_frame = r.flag()
    error_resilient = r.flag()
    if not non_key:
        _sync_code(r)
        _color_config(r, profile)
        return _frame_size(r)
    intra_only = False if show_frame else r.flag()
    if not error_resilient:
        r.bits(2)  # reset_frame_context
    if intra_only:
        _sync_code(r)
        if profile > 0:
            _color_config(r, profile)
        r.bits(8)  # refresh_frame_flags
        return _frame_size(r)
    r.bits(8 + 3 * 4)  # refresh_frame_flags, ref_frame_idx[3] and ref_frame_sign_bias[3]
    for _ in range(3):
        if r.flag():  # found_ref: the size is a reference frame's
            return None
    return _frame_size(r)


def _sync_code(r: BitReader) -> None:
    if r.bits(24) != SYNC_CODE:
        raise MalformedPacketError("VP9 intra frame lacks the 49 83 42 sync code")


def _color_config(r: BitReader, profile: int) -> None:
    if profile >= 2:
        r.bit()  # ten_or_twelve_bit
    if r.bits(3) != CS_RGB:
        r.bit()  # color_range
        if profile in (1, 3):
            r.bits(3)  # subsampling_x, subsampling_y, reserved_zero
    elif profile in (1, 3):
        r.bit()  # reserved_zero


def _frame_size(r: BitReader) -> tuple[int, int]:
    width = r.bits(16) + 1
    return width, r.bits(16) + 1


def split_superframe(frame: bytes) -> list[bytes]:
    """The frames of a VP9 superframe (VP9 spec Annex B), or [frame] if it has no superframe index."""
    marker = frame[-1]
    if marker & SUPERFRAME_MARKER_MASK != SUPERFRAME_MARKER:
        return [frame]
    mag = ((marker >> 3) & 0x03) + 1
    count = (marker & 0x07) + 1
    index_size = 2 + mag * count
    if len(frame) < index_size or frame[-index_size] != marker:
        return [frame]  # the last byte only looks like a marker: an ordinary frame
    frames = []
    pos = 0
    end = len(frame) - index_size
    for i in range(len(frame) - index_size + 1, len(frame) - 1, mag):
        size = int.from_bytes(frame[i : i + mag], "little")
        if pos + size > end:
            raise MalformedPacketError("VP9 superframe index states frames beyond the superframe")
        frames.append(frame[pos : pos + size])
        pos += size
    return frames


def superframe(frames: Sequence[bytes]) -> bytes:
    """Pack frames into a VP9 superframe with its trailing index (VP9 spec Annex B)."""
    if not 1 <= len(frames) <= MAX_SUPERFRAME_FRAMES:
        raise MalformedPacketError(f"a VP9 superframe holds 1 to 8 frames, not {len(frames)}")
    largest = max(len(f) for f in frames)
    mag = (max(largest.bit_length(), 1) + 7) // 8  # bytes per frame size, 1..4
    if mag > 4:
        raise MalformedPacketError(f"VP9 frame of {largest} bytes is too large for a superframe")
    marker = bytes([SUPERFRAME_MARKER | ((mag - 1) << 3) | (len(frames) - 1)])
    index = b"".join([marker, *(len(f).to_bytes(mag, "little") for f in frames), marker])
    return b"".join([*frames, index])


class Vp9Depacketizer:
    """One VP9 stream. Stateless: keyframes carry their size in the bitstream or the SS."""

    codec = Codec.VP9

    def is_frame_start(self, payload: bytes) -> bool:
        return bool(payload) and bool(payload[0] & B_BIT)

    def depacketize(self, payloads: Sequence[bytes]) -> DepacketizedFrame:
        if not payloads:
            raise MalformedPacketError("VP9 frame has no packets")
        first = parse_descriptor(payloads[0])
        if not first.flags & B_BIT:
            raise MalformedPacketError("VP9 frame does not begin with the start of a layer frame (B=0)")
        if len(payloads) == 1:
            return self._picture([payloads[0][first.size :]], first, first.sid, first.resolutions)
        # Group packets into layer frames: each B=1 packet starts one (§4.2).
        layers: list[list[memoryview]] = []
        top_sid = 0
        resolutions = first.resolutions
        for i, payload in enumerate(payloads):
            d = first if i == 0 else parse_descriptor(payload)
            if d.flags & B_BIT:
                layers.append([])
                top_sid = d.sid if d.flags & L_BIT else len(layers) - 1
            resolutions = d.resolutions or resolutions
            layers[-1].append(memoryview(payload)[d.size :])
        frames = [b"".join(parts) for parts in layers]
        return self._picture(frames, first, top_sid, resolutions)

    def _picture(
        self, frames: list[bytes], first: Descriptor, top_sid: int, resolutions: list[tuple[int, int]]
    ) -> DepacketizedFrame:
        if len(frames) == 1:
            data = frames[0]
        else:
            data = superframe([sub for frame in frames for sub in split_superframe(frame)])
        # A keyframe: the picture's first layer frame is a base layer (SID 0, or a spatial layer coded
        # without inter-layer dependency, D=0, as SFUs forward from independent spatial layers), is not
        # inter-picture predicted (P=0) and is a key frame in its header (P=0 alone is not enough: some
        # senders never set P).
        if first.flags & P_BIT or first.inter_layer or not is_key_frame(frames[0]):
            return DepacketizedFrame(data, False)
        size = frame_size(frames[0])
        if len(frames) > 1:
            if top_sid < len(resolutions):
                size = resolutions[top_sid]
            else:
                size = frame_size(split_superframe(frames[-1])[-1]) or size
        if size is None:
            return DepacketizedFrame(data, True)
        return DepacketizedFrame(data, True, size[0], size[1])

    def codec_extradata(self) -> bytes:
        return b""
