"""VP9 over RTP (RFC 9628): payload descriptor in flexible and non-flexible mode (§4.2), scalability
structure (§4.2.1), frame start by the B bit, keyframes from the VP9 uncompressed header.

Spatial layers: the layer frames of one picture (one RTP timestamp) are packed into one VP9 superframe
with its index (VP9 bitstream spec, Annex B), as WebM stores them and decoders expect, so the whole
picture at its highest resolution is kept. A single layer frame is stored as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from recorder.codecs.base import DepacketizedFrame
from recorder.codecs.bitreader import BitReader
from recorder.errors import MalformedPacketError
from recorder.models import Codec

FLAG_I, FLAG_P, FLAG_L, FLAG_F, FLAG_B, FLAG_E, FLAG_V = 0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02
SYNC_CODE = 0x498342
CS_RGB = 7


def parse_descriptor(payload: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    """(descriptor size, flags, SS resolutions) of a VP9 payload descriptor."""
    size = len(payload)
    if size < 1:
        raise MalformedPacketError("VP9 payload is empty")
    flags = payload[0]
    pos = 1
    try:
        if flags & FLAG_I:
            pos += 2 if payload[pos] & 0x80 else 1
        if flags & FLAG_L:
            pos += 1 if flags & FLAG_F else 2  # TL0PICIDX only in non-flexible mode
        if flags & FLAG_F and flags & FLAG_P:
            for _ in range(3):
                more = payload[pos] & 0x01
                pos += 1
                if not more:
                    break
        resolutions: list[tuple[int, int]] = []
        if flags & FLAG_V:
            ss = payload[pos]
            pos += 1
            layers = (ss >> 5) + 1
            if ss & 0x10:  # Y: resolutions present
                for _ in range(layers):
                    if pos + 4 > size:
                        raise MalformedPacketError("VP9 scalability structure is truncated")
                    resolutions.append(
                        (
                            int.from_bytes(payload[pos : pos + 2], "big"),
                            int.from_bytes(payload[pos + 2 : pos + 4], "big"),
                        )
                    )
                    pos += 4
            if ss & 0x08:  # G: picture group description
                groups = payload[pos]
                pos += 1
                for _ in range(groups):
                    refs = (payload[pos] >> 2) & 0x03
                    pos += 1 + refs
    except IndexError:
        raise MalformedPacketError("VP9 payload descriptor is truncated") from None
    if pos >= size:
        raise MalformedPacketError("VP9 payload has a descriptor but no data")
    return pos, flags, resolutions


def keyframe_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) if `frame` is a VP9 key frame, else None (VP9 spec §6.2 uncompressed header)."""
    r = BitReader(frame)
    if r.bits(2) != 2:
        raise MalformedPacketError("VP9 frame lacks its frame marker")
    profile = r.bit() | (r.bit() << 1)
    if profile == 3:
        r.bit()
    if r.bit():  # show_existing_frame
        return None
    if r.bit():  # frame_type: 1 = non-key
        return None
    r.bits(2)  # show_frame, error_resilient_mode
    if r.bits(24) != SYNC_CODE:
        raise MalformedPacketError("VP9 key frame lacks the sync code")
    if profile >= 2:
        r.bit()
    if r.bits(3) != CS_RGB:
        r.bit()
        if profile in (1, 3):
            r.bits(3)
    elif profile in (1, 3):
        r.bit()
    return r.bits(16) + 1, r.bits(16) + 1


def superframe(frames: list[bytes]) -> bytes:
    """Pack layer frames into a VP9 superframe with its trailing index (VP9 spec Annex B)."""
    largest = max(len(f) for f in frames)
    mag = 0 if largest < 1 << 8 else 1 if largest < 1 << 16 else 2 if largest < 1 << 24 else 3
    if len(frames) > 8:
        raise MalformedPacketError("VP9 picture has more than 8 layer frames")
    marker = bytes([0xC0 | (mag << 3) | (len(frames) - 1)])
    sizes = b"".join(len(f).to_bytes(mag + 1, "little") for f in frames)
    return b"".join(frames) + marker + sizes + marker


class Vp9Depacketizer:
    codec = Codec.VP9

    def is_frame_start(self, payload: bytes) -> bool:
        return bool(payload) and bool(payload[0] & FLAG_B)

    def depacketize(self, payloads: Sequence[bytes]) -> DepacketizedFrame:
        layers: list[list[bytes]] = []
        first_flags = -1
        resolutions: list[tuple[int, int]] = []
        for payload in payloads:
            pos, flags, ss = parse_descriptor(payload)
            if first_flags < 0:
                first_flags = flags
            resolutions = ss or resolutions
            if flags & FLAG_B or not layers:
                layers.append([])
            layers[-1].append(payload[pos:])
        frames = [b"".join(parts) for parts in layers]
        data = frames[0] if len(frames) == 1 else superframe(frames)
        size = None if first_flags & FLAG_P else keyframe_size(frames[0])
        if size is None:
            return DepacketizedFrame(data, False)
        width, height = resolutions[-1] if resolutions else size
        return DepacketizedFrame(data, True, width, height)

    def codec_extradata(self) -> bytes:
        return b""
