"""VP8 over RTP (RFC 7741): payload descriptor (§4.2), frame start and keyframe detection (§4.3),
picture size from the keyframe header (RFC 6386 §9.1)."""

from __future__ import annotations

from collections.abc import Sequence

from recorder.codecs.base import DepacketizedFrame
from recorder.errors import MalformedPacketError
from recorder.models import Codec

# First descriptor octet: |X|R|N|S|R|PID| (RFC 7741 §4.2)
X_BIT, S_BIT, PID_MASK = 0x80, 0x10, 0x07
# Extension octet: |I|L|T|K| RSV |
I_BIT, L_BIT, T_BIT, K_BIT = 0x80, 0x40, 0x20, 0x10
M_BIT = 0x80  # 15-bit PictureID
KEYFRAME_START_CODE = b"\x9d\x01\x2a"
KEYFRAME_HEADER_SIZE = 10  # 3-byte frame tag, start code, 2+2 bytes of size (RFC 6386 §9.1)
SIZE_MASK = 0x3FFF  # the top two bits are the scaling mode


def descriptor_size(payload: bytes) -> int:
    """Bytes taken by the VP8 payload descriptor at the start of `payload` (RFC 7741 §4.2)."""
    size = len(payload)
    if not size:
        raise MalformedPacketError("VP8 payload is empty")
    pos = 1
    if payload[0] & X_BIT:
        if size < 2:
            raise MalformedPacketError("VP8 descriptor has X set but no extension octet")
        ext = payload[1]
        pos = 2
        if ext & I_BIT:
            if pos >= size:
                raise MalformedPacketError("VP8 descriptor is truncated at its PictureID")
            pos += 2 if payload[pos] & M_BIT else 1
        if ext & L_BIT:  # TL0PICIDX
            pos += 1
        if ext & (T_BIT | K_BIT):  # TID|Y|KEYIDX
            pos += 1
    if pos > size:
        raise MalformedPacketError(f"VP8 payload descriptor is truncated ({size} of {pos} bytes)")
    if pos == size:
        raise MalformedPacketError(f"VP8 payload has a {pos}-byte descriptor and no data")
    return pos


class Vp8Depacketizer:
    """One VP8 stream. Stateless: every frame carries its own descriptor and keyframe header."""

    codec = Codec.VP8

    def is_frame_start(self, payload: bytes) -> bool:
        # S=1 and PID=0: the first packet of the first partition (§4.3).
        return bool(payload) and payload[0] & (S_BIT | PID_MASK) == S_BIT

    def depacketize(self, payloads: Sequence[bytes]) -> DepacketizedFrame:
        if not payloads:
            raise MalformedPacketError("VP8 frame has no packets")
        first = payloads[0]
        start = descriptor_size(first)
        if first[0] & (S_BIT | PID_MASK) != S_BIT:
            raise MalformedPacketError("VP8 frame does not begin with the start of partition 0 (S=1, PID=0)")
        if len(payloads) == 1:
            data = first[start:]
        else:
            parts = [memoryview(first)[start:]]
            parts += [memoryview(p)[descriptor_size(p) :] for p in payloads[1:]]
            data = b"".join(parts)
        if data[0] & 0x01:  # P bit of the VP8 payload header: 1 = interframe (§4.3, RFC 6386 §9.1)
            return DepacketizedFrame(data, False)
        if len(data) < KEYFRAME_HEADER_SIZE or data[3:6] != KEYFRAME_START_CODE:
            raise MalformedPacketError("VP8 keyframe lacks the 9d 01 2a start code")
        width = int.from_bytes(data[6:8], "little") & SIZE_MASK
        height = int.from_bytes(data[8:10], "little") & SIZE_MASK
        if not width or not height:
            raise MalformedPacketError(f"VP8 keyframe states an empty {width}x{height} picture")
        return DepacketizedFrame(data, True, width, height)

    def codec_extradata(self) -> bytes:
        return b""
