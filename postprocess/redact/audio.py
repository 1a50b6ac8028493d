"""A copy of one Opus audio track with intervals silenced, packet by packet.

Every Opus packet that overlaps an interval is replaced by an encoded silent packet of the same duration
(libopus through PyAV, cached per duration and channel count); every other packet is copied unchanged,
with its timestamps, into a new container of the same kind. So outside the intervals the copy is
bit-exact at the packet level; decoded, the first ~20 ms after an interval differ a little (the decoder's
state comes from the silence, not from the speech it replaced), and nothing else differs. Silence covers
at least the interval: whole 20 ms packets. A packet's duration comes from its TOC byte (RFC 6716 3.1)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from recorder.codecs.opus import packet_samples

SILENCE_RATE = 48_000
_CELT_MS = (2.5, 5.0, 10.0, 20.0)


class RedactError(Exception):
    """A track cannot be redacted: the message says why."""


def packet_seconds(data: bytes) -> float:
    """Duration of an Opus packet from its TOC byte (RFC 6716 section 3.1)."""
    if not data:
        return 0.0
    samples = packet_samples(data)
    if samples is None:
        raise RedactError("Opus packet truncated before its frame count")
    return samples / SILENCE_RATE


@lru_cache(maxsize=16)
def silent_packet(milliseconds: float, channels: int) -> bytes:
    """An Opus packet of `milliseconds` of digital silence."""
    if milliseconds not in (*_CELT_MS, 40.0, 60.0):
        # a multi-frame packet of another total (e.g. 3 x 20 ms) has no single-frame equivalent
        raise RedactError(f"no single Opus frame of {milliseconds} ms")
    layout = "stereo" if channels == 2 else "mono"
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = SILENCE_RATE
    ctx.layout = layout
    ctx.format = "s16"
    ctx.options = {"frame_duration": f"{milliseconds:g}", "application": "audio"}
    ctx.open()
    samples = round(SILENCE_RATE * milliseconds / 1000)
    packets: list[bytes] = []
    for k in range(4):
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, samples * channels), np.int16), format="s16", layout=layout
        )
        frame.sample_rate = SILENCE_RATE
        frame.pts = k * samples
        packets += [bytes(p) for p in ctx.encode(frame)]
    if not packets:
        raise RedactError("libopus returned no packet for silence")
    return packets[-1]


def silence_track(src: Path, dst: Path, spans: list[tuple[float, float]]) -> int:
    """Copy `src` to `dst` with the packets that overlap `spans` (seconds of the file's own timeline)
    silenced. Returns how many packets were replaced. `dst` is written beside and renamed into place."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    replaced = 0
    try:
        with av.open(str(src)) as inp:
            if not inp.streams.audio or inp.streams.audio[0].codec_context.name != "opus":
                raise RedactError(f"{src.name}: no Opus audio stream")
            stream = inp.streams.audio[0]
            channels = stream.codec_context.channels
            fmt = "webm" if src.suffix == ".webm" else "matroska"
            with av.open(str(tmp), "w", format=fmt) as out:
                ostream = out.add_stream_from_template(stream)
                for packet in inp.demux(stream):
                    if packet.dts is None or packet.pts is None:
                        continue
                    data = bytes(packet)
                    start = float(packet.pts * packet.time_base)
                    length = packet_seconds(data)
                    if any(start < e and s < start + length for s, e in spans):
                        silent = av.Packet(silent_packet(length * 1000, channels))
                        silent.pts, silent.dts, silent.time_base = packet.pts, packet.dts, packet.time_base
                        silent.duration = packet.duration
                        silent.stream = ostream
                        out.mux(silent)
                        replaced += 1
                    else:
                        packet.stream = ostream
                        out.mux(packet)
        tmp.replace(dst)
    except (av.FFmpegError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise RedactError(f"{src.name}: cannot redact: {exc}") from exc
    except RedactError:
        tmp.unlink(missing_ok=True)
        raise
    return replaced
