"""The .mjr format of Janus's recorder (janus_recorder in Janus's src/record.c, read back by
src/postprocessing/janus-pp-rec.c), parsed without trusting a byte of it. Pure: bytes in, models out.

Current files (Janus >= 0.9, "MJR00002"):

    "MJR00002"  u16 BE length  JSON info header (length bytes)
    then per packet:  "MEET"  u32 BE milliseconds since the first packet was written  u16 BE length  data

The info header is a JSON object: "t" type ("a" audio, "v" video, "d" data), "c" codec ("vp8", "opus",
...), "s" the recorder's creation and "u" its first write, both Unix microseconds; optional "f" fmtp, "d"
description, "x" RTP header extensions by id, "or" the Opus RED payload type, "e" end-to-end encrypted.
Older files: "MJR00001" (the same without per-packet times: each packet is "MEETECHO" u16 length data), and
the oldest, whose first frame is "MEETECHO" u16 5 "video"/"audio" (VP8 or Opus implied). `data` is one RTP
packet as Janus received it (data-channel recordings prefix an 8-byte time; CallVault imports no data).

What janus-pp-rec does with odd frames, this parser does too: a frame shorter than an RTP header or longer
than 1500 bytes is skipped (counted), and parsing stops at the first frame that does not start with "M"
(what a crash or a torn copy leaves): everything before it is kept and `stopped` says where and why.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Generator
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import Buffer

from recorder.errors import CallVaultError

MAGIC_V2 = b"MJR00002"
MAGIC_V1 = b"MJR00001"
LEGACY = b"MEETECHO"
FRAME_V2 = b"MEET"
RTP_MIN = 12
RTP_MAX = 1500  # janus-pp-rec skips longer frames as "very likely not RTP"
MAX_PACKET_TIME_MS = 0xFFFFFFFF

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class MjrError(CallVaultError, ValueError):
    """A file that is not a readable Janus recording; the message says what and where."""


class MjrKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"
    DATA = "data"


_KINDS = {"a": MjrKind.AUDIO, "v": MjrKind.VIDEO, "d": MjrKind.DATA}


class MjrHeader(BaseModel):
    """The info header of a recording, as Janus wrote it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(description="2 for MJR00002 (per-packet times), 1 for MJR00001, 0 for the oldest.")
    kind: MjrKind
    codec: str = Field(description="Janus's codec name, lower-cased: 'vp8', 'vp9', 'h264', 'opus' ...")
    created_us: int | None = Field(default=None, description="Recorder created (Unix microseconds), 's'.")
    first_written_us: int | None = Field(default=None, description="First packet written (Unix µs), 'u'.")
    fmtp: str | None = None
    description: str | None = None
    extensions: dict[int, str] = Field(default_factory=dict, description="RTP header extensions by id.")
    opus_red_pt: int | None = None
    end_to_end_encrypted: bool = False
    raw: str = Field(default="", description="The info header's JSON text, exactly as stored.")


@dataclass(frozen=True, slots=True)
class MjrPacket:
    """One stored packet: where its frame starts in the file, the recorder's time for it (milliseconds
    since the first packet; None in files before MJR00002) and the packet bytes."""

    offset: int
    time_ms: int | None
    data: bytes


@dataclass(slots=True)
class MjrScan:
    """What `scan` found after the header: counts of frames skipped and where (why) it stopped early."""

    packets: int = 0
    skipped_short: int = 0
    skipped_long: int = 0
    skipped_info: int = 0
    stopped: str | None = None
    """Why the packets end before the end of the file (None when the whole file was read)."""


def parse_header(data: Buffer) -> tuple[MjrHeader, int]:
    """The info header and the offset of the first packet frame; MjrError when the file does not start
    like a Janus recording or its header is unreadable."""
    with memoryview(data) as buf:  # released even when an error is raised (an mmap can then close)
        return _parse_header(buf)


def _parse_header(buf: memoryview) -> tuple[MjrHeader, int]:
    size = len(buf)
    if size < 10:
        raise MjrError(f"not a Janus recording: {size} bytes is too short for a .mjr header")
    magic = bytes(buf[:8])
    (length,) = _U16.unpack_from(buf, 8)
    end = 10 + length
    if magic == LEGACY:
        if length != 5 or end > size:
            raise MjrError("not a Janus recording: an old-style MEETECHO file without its 5-byte type")
        kind = bytes(buf[10:15])
        legacy = {b"video": (MjrKind.VIDEO, "vp8"), b"audio": (MjrKind.AUDIO, "opus")}.get(kind)
        if legacy is None:
            raise MjrError(f"unsupported old-style recording type {kind!r} (only video and audio)")
        return MjrHeader(version=0, kind=legacy[0], codec=legacy[1]), end
    if magic not in (MAGIC_V2, MAGIC_V1):
        raise MjrError(f"not a Janus recording: starts with {magic!r}, not 'MJR00002'")
    if length == 0:
        raise MjrError("the info header is empty")
    if end > size:
        raise MjrError(f"truncated in the info header ({size - 10} of its {length} bytes)")
    text_bytes = bytes(buf[10:end])
    try:
        text = text_bytes.decode("utf-8")
        info = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MjrError(f"the info header is not JSON: {exc}") from None
    if not isinstance(info, dict):
        raise MjrError("the info header is not a JSON object")
    return _header(info, text, 2 if magic == MAGIC_V2 else 1), end


def _header(info: dict[str, object], text: str, version: int) -> MjrHeader:
    kind = _KINDS.get(str(info.get("t")).lower()) if isinstance(info.get("t"), str) else None
    if kind is None:
        raise MjrError(f"the info header's type 't' is {_shown(info.get('t'))}, not 'a', 'v' or 'd'")
    codec = info.get("c")
    if not isinstance(codec, str) or not 0 < len(codec) <= 32:
        raise MjrError(f"the info header's codec 'c' is {_shown(codec)}")
    times: dict[str, int] = {}
    for key in ("s", "u"):
        value = info.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise MjrError(f"the info header's time {key!r} is {_shown(value)}, not Unix microseconds")
        times[key] = value
    extensions: dict[int, str] = {}
    x = info.get("x")
    if isinstance(x, dict):
        for key, value in x.items():
            if isinstance(key, str) and key.isdigit() and 0 < int(key) < 256 and isinstance(value, str):
                extensions[int(key)] = value[:256]
    red = info.get("or")
    return MjrHeader(
        version=version,
        kind=kind,
        codec=codec.lower(),
        created_us=times["s"],
        first_written_us=times["u"],
        fmtp=_text(info.get("f")),
        description=_text(info.get("d")),
        extensions=extensions,
        opus_red_pt=red if isinstance(red, int) and not isinstance(red, bool) and 0 < red < 128 else None,
        end_to_end_encrypted=info.get("e") is True,
        raw=text,
    )


def scan(data: Buffer, header: MjrHeader, start: int, scanned: MjrScan) -> Generator[MjrPacket, None, None]:
    """The packets of a recording from `start` (the offset `parse_header` gave), in file order; counts and
    the reason it stopped early go into `scanned`."""
    with memoryview(data) as buf:
        size = len(buf)
        offset = start
        timed = header.version == 2
        while offset < size:
            if size - offset < 10:
                scanned.stopped = (
                    f"truncated at offset {offset}: {size - offset} bytes left, a frame header is 10"
                )
                return
            prefix = bytes(buf[offset : offset + 8])
            if prefix[:1] != b"M":
                scanned.stopped = f"no frame at offset {offset} (found {prefix[:4]!r}): the rest is not read"
                return
            (length,) = _U16.unpack_from(buf, offset + 8)
            body = offset + 10
            following = body + length
            if prefix[:4] == b"MJR0" or (prefix == LEGACY and header.version == 0 and length == 5):
                scanned.skipped_info += 1  # another info header (a recorder that restarted), not a packet
                offset = following
                continue
            if (timed and prefix[:4] != FRAME_V2) or (not timed and prefix != LEGACY):
                scanned.stopped = f"no frame at offset {offset} (found {prefix!r}): the rest is not read"
                return
            if following > size:
                left = size - body
                scanned.stopped = (
                    f"truncated at offset {offset}: its frame says {length} bytes, {left} are left"
                )
                return
            offset = following
            if length < RTP_MIN:
                scanned.skipped_short += 1
                continue
            if length > RTP_MAX and header.kind is not MjrKind.DATA:
                scanned.skipped_long += 1
                continue
            time_ms = _U32.unpack_from(buf, body - 6)[0] if timed else None
            scanned.packets += 1
            yield MjrPacket(offset=body - 10, time_ms=time_ms, data=bytes(buf[body:following]))


def _text(value: object) -> str | None:
    return value[:1024] if isinstance(value, str) else None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
