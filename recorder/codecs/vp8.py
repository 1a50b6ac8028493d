"""VP8 over RTP (RFC 7741): payload descriptor (§4.2), frame start and keyframe detection (§4.3),
picture size from the keyframe header (RFC 6386 §9.1)."""

from __future__ import annotations

from collections.abc import Sequence

from recorder.codecs.base import DepacketizedFrame
from recorder.errors import MalformedPacketError
from recorder.models import Codec


def descriptor_size(payload: bytes) -> int:
    """Bytes taken by the VP8 payload descriptor at the start of `payload`."""
    size = len(payload)
    if size < 1:
        raise MalformedPacketError("VP8 payload is empty")
    pos = 1
    if payload[0] & 0x80:  # X: extension octet
        if size < 2:
            raise MalformedPacketError("VP8 descriptor has X set but no extension octet")
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: PictureID, 7 or 15 bits
            if pos >= size:
                raise MalformedPacketError("VP8 descriptor is truncated at its PictureID")
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX octet
            pos += 1
    if pos >= size:
        raise MalformedPacketError("VP8 payload has a descriptor but no data")
    return pos


class Vp8Depacketizer:
    codec = Codec.VP8

    def is_frame_start(self, payload: bytes) -> bool:
        # S=1 and PID=0: the first packet of the first partition.
        return bool(payload) and payload[0] & 0x17 == 0x10

    def depacketize(self, payloads: Sequence[bytes]) -> DepacketizedFrame:
        first = payloads[0]
        start = descriptor_size(first)
        if len(payloads) == 1:
            data = first[start:]
        else:
            data = b"".join([first[start:], *(p[descriptor_size(p) :] for p in payloads[1:])])
        keyframe = not data[0] & 0x01  # P bit of the VP8 payload header: 0 = keyframe
        if not keyframe:
            return DepacketizedFrame(data, False)
        if len(data) < 10 or data[3:6] != b"\x9d\x01\x2a":
            raise MalformedPacketError("VP8 keyframe lacks the 9d 01 2a start code")
        width = int.from_bytes(data[6:8], "little") & 0x3FFF
        height = int.from_bytes(data[8:10], "little") & 0x3FFF
        return DepacketizedFrame(data, True, width, height)

    def codec_extradata(self) -> bytes:
        return b""
