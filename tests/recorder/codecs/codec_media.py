"""Real encoded media and test-side RTP packetizers for the depacketizer tests.

Video is a moving 320x240 test pattern encoded by libvpx/libx264 through PyAV; audio is a tone encoded
by libopus. Packetizers that aiortc lacks (VP9, H.264 single NAL unit mode, VP8 descriptor variants)
are written here from the RFCs, independently of the code under test.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from recorder.codecs.base import Depacketizer
from recorder.errors import MalformedPacketError

WIDTH, HEIGHT = 320, 240


@dataclass(frozen=True)
class EncodedFrame:
    data: bytes
    keyframe: bool


def pattern_picture(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """An RGB testsrc-like picture: colour bars sliding right with a moving gradient."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    bars = ((x + 4 * index) // (width // 8)) % 8
    r = np.broadcast_to(np.where(bars & 1, 230, 20), (height, width))
    g = np.broadcast_to(np.where(bars & 2, 230, 20), (height, width))
    b = (np.where(bars & 4, 200, 0) + (x + y + 3 * index) % 56).astype(np.int64)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def encode_video(
    codec: str,
    frames: int = 16,
    gop: int = 8,
    width: int = WIDTH,
    height: int = HEIGHT,
    pix_fmt: str = "yuv420p",
    **options: str,
) -> list[EncodedFrame]:
    """Encode `frames` pictures of the test pattern; keyframe flags as the encoder reports them."""
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, pix_fmt
    encoder.time_base = Fraction(1, 30)
    encoder.framerate = Fraction(30, 1)
    encoder.gop_size = gop
    encoder.bit_rate = 600_000
    encoder.options = options
    out: list[EncodedFrame] = []
    for i in range(frames):
        picture = av.VideoFrame.from_ndarray(pattern_picture(i, width, height), format="rgb24")
        picture = picture.reformat(format=pix_fmt)
        picture.pts = i
        out += [EncodedFrame(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(picture)]
    out += [EncodedFrame(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(None)]
    return out


def encode_audio(packets: int = 25, channels: int = 2) -> tuple[list[bytes], bytes]:
    """20 ms libopus packets of a 440 Hz tone at 48 kHz, and the OpusHead FFmpeg made for them."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "stereo" if channels == 2 else "mono"
    encoder.format = "s16"
    encoder.bit_rate = 64_000
    t = np.arange(960 * packets) / 48000
    tone = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    out: list[bytes] = []
    for i in range(packets):
        chunk = np.repeat(tone[None, i * 960 : (i + 1) * 960], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(chunk.T.reshape(1, -1), format="s16", layout=encoder.layout)
        frame.sample_rate = 48000
        frame.pts = i * 960
        out += [bytes(p) for p in encoder.encode(frame)]
    out += [bytes(p) for p in encoder.encode(None)]
    return out, bytes(encoder.extradata or b"")


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def decode(codec: str, packets: Sequence[bytes], extradata: bytes | None = None) -> list[av.VideoFrame]:
    """Decode with FFmpeg's decoder through PyAV; raises av.error.FFmpegError on a broken stream."""
    decoder = av.CodecContext.create(codec, "r")
    if extradata:
        decoder.extradata = extradata
    pictures = []
    for data in packets:
        pictures += decoder.decode(av.Packet(data))
    pictures += decoder.decode(None)
    return pictures


# -- VP8 (RFC 7741 §4.2) ----------------------------------------------------------------------------


def vp8_descriptor(
    start: bool,
    pid: int = 0,
    picture_id: int | None = None,
    long_picture_id: bool = True,
    tl0picidx: int | None = None,
    tid: int | None = None,
    keyidx: int | None = None,
) -> bytes:
    """|X|R|N|S|R|PID| then, when X, |I|L|T|K|RSV| and the optional fields in order."""
    ext = (
        (0x80 if picture_id is not None else 0)
        | (0x40 if tl0picidx is not None else 0)
        | (0x20 if tid is not None else 0)
        | (0x10 if keyidx is not None else 0)
    )
    first = (0x80 if ext else 0) | (0x10 if start else 0) | pid
    out = bytearray([first])
    if ext:
        out.append(ext)
        if picture_id is not None:
            out += (0x8000 | picture_id).to_bytes(2, "big") if long_picture_id else bytes([picture_id])
        if tl0picidx is not None:
            out.append(tl0picidx)
        if tid is not None or keyidx is not None:
            out.append(((tid or 0) << 6) | 0x20 | (keyidx or 0))
    return bytes(out)


# -- VP9 (RFC 9628 §4.2) ----------------------------------------------------------------------------


def vp9_inter(frame: bytes) -> bool:
    """frame_type of a profile 0-2 VP9 frame header: 1 = non-key (VP9 spec §6.2)."""
    return bool(frame[0] & 0x04)


def vp9_ss(resolutions: Sequence[tuple[int, int]], groups: Sequence[Sequence[int]] = ()) -> bytes:
    """Scalability structure (§4.2.1): |N_S|Y|G|-|-|-|, resolutions, then N_G groups of |TID|U|R|-|-|."""
    out = bytearray([((len(resolutions) - 1) << 5) | 0x10 | (0x08 if groups else 0)])
    for w, h in resolutions:
        out += w.to_bytes(2, "big") + h.to_bytes(2, "big")
    if groups:
        out.append(len(groups))
        for tid, refs in enumerate(groups):
            out.append((tid << 5) | (len(refs) << 2))
            out += bytes(refs)
    return bytes(out)


def vp9_packetize(
    frame: bytes,
    picture_id: int | None = None,
    flexible: bool = False,
    inter: bool | None = None,
    sid: int | None = None,
    depends: bool | None = None,
    p_diffs: Sequence[int] = (),
    ss: bytes = b"",
    mtu: int = 400,
    set_p: bool = True,
) -> list[bytes]:
    """RFC 9628 §4.2: descriptor |I|P|L|F|B|E|V|Z| + picture ID (7 or 15 bits) + layer indices
    |TID|U|SID|D| (+ TL0PICIDX when non-flexible) + P_DIFFs (flexible, P=1) + SS on the first packet."""
    if inter is None:
        inter = vp9_inter(frame)
    parts = chunks(frame, mtu)
    out = []
    for k, part in enumerate(parts):
        first, last = k == 0, k == len(parts) - 1
        flags = (
            (0x80 if picture_id is not None else 0)
            | (0x40 if inter and set_p else 0)
            | (0x20 if sid is not None else 0)
            | (0x10 if flexible else 0)
            | (0x08 if first else 0)
            | (0x04 if last else 0)
            | (0x02 if first and ss else 0)
        )
        d = bytearray([flags])
        if picture_id is not None:
            d += (0x8000 | picture_id).to_bytes(2, "big") if picture_id > 0x7F else bytes([picture_id])
        if sid is not None:
            d_bit = sid > 0 if depends is None else depends  # D: inter-layer dependency
            d.append((sid << 1) | d_bit)  # TID=0, U=0, SID, D
            if not flexible:
                d.append((picture_id or 0) & 0xFF)  # TL0PICIDX
        if flexible and inter and set_p:
            for i, diff in enumerate(p_diffs):
                d.append((diff << 1) | (1 if i < len(p_diffs) - 1 else 0))
        if first and ss:
            d += ss
        out.append(bytes(d) + part)
    return out


# -- H.264 (RFC 6184) -------------------------------------------------------------------------------


def nal_units(access_unit: bytes) -> list[bytes]:
    """NAL units of an Annex B access unit (3- or 4-byte start codes)."""
    parts = access_unit.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
    return [p for p in parts if p]


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def stap_a(nals: Sequence[bytes]) -> bytes:
    """§5.7.1: STAP-A header (F = OR of F bits, NRI = max NRI, type 24), then 16-bit size + NAL unit."""
    f_bit = max(n[0] & 0x80 for n in nals)
    nri = max(n[0] & 0x60 for n in nals)
    return bytes([f_bit | nri | 24]) + b"".join(len(n).to_bytes(2, "big") + n for n in nals)


def fu_a(nal: bytes, size: int) -> list[bytes]:
    """§5.8: FU indicator (F, NRI, type 28), FU header |S|E|R|type|, fragments of the NAL payload."""
    indicator = (nal[0] & 0xE0) | 28
    pieces = chunks(nal[1:], size)
    return [
        bytes([indicator, (0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0) | nal_type(nal)])
        + piece
        for i, piece in enumerate(pieces)
    ]


def h264_packetize(nals: Sequence[bytes], mtu: int = 1000, aggregate: bool = True) -> list[bytes]:
    """Non-interleaved mode (§6.3): small NAL units aggregated into STAP-A (when `aggregate`), large
    ones fragmented into FU-A, the rest sent as single NAL unit packets (§5.6)."""
    out: list[bytes] = []
    pending: list[bytes] = []

    def flush() -> None:
        if len(pending) > 1:
            out.append(stap_a(pending))
        elif pending:
            out.append(pending[0])
        pending.clear()

    for nal in nals:
        if len(nal) > mtu:
            flush()
            out += fu_a(nal, mtu - 2)
        elif aggregate and sum(len(n) + 2 for n in pending) + len(nal) + 3 <= mtu:
            pending.append(nal)
        else:
            flush()
            pending.append(nal)
            if not aggregate:
                flush()
    flush()
    return out


class BitWriter:
    """Writes bits and exp-Golomb codes, to build SPS variants x264 never emits."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> BitWriter:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        return self.u(code.bit_length() - 1, 0).u(code.bit_length(), code)

    def se(self, value: int) -> BitWriter:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        """The bits with rbsp_trailing_bits, emulation prevention applied (§7.4.1)."""
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray()
        zeros = 0
        for byte in raw:
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


# -- Malformed input ---------------------------------------------------------------------------------


def fuzz(depacketizer: Depacketizer, seed: int, rounds: int = 3000, prefixes: Sequence[bytes] = ()) -> int:
    """Feed seeded random payloads (optionally after a valid-looking prefix); anything but
    MalformedPacketError escapes. Returns how many frames were accepted."""
    rng = random.Random(seed)
    accepted = 0
    for _ in range(rounds):
        payloads = []
        for _ in range(rng.randrange(1, 4)):
            prefix = rng.choice(prefixes) if prefixes and rng.random() < 0.5 else b""
            payloads.append(prefix + rng.randbytes(rng.randrange(0, 24)))
        depacketizer.is_frame_start(payloads[0])
        try:
            depacketizer.depacketize(payloads)
        except MalformedPacketError:
            continue
        accepted += 1
    return accepted
