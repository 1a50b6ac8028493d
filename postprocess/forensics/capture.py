"""A recording's raw captures (pcapng, recorder/capture/) as per-track packet samples for stats.py.

Every `*.pcapng` under the recording folder is read (pcapng.py; a file cut short by a crash is read up
to its last whole block). A capture names its track in its stream description; without
one, its RTP packets go to the track whose summary has their SSRC. RTP on the RTP interface becomes
packet columns (keyframe starts found from the payload, per codec); RTCP sender reports are kept with
their arrival times; CallVault's event packets (pauses) are kept as comments.
"""

from __future__ import annotations

import json
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from postprocess.forensics.pcapng import Scan, scan
from postprocess.forensics.stats import Columns, RtpSample
from recorder.errors import MalformedPacketError
from recorder.models import Codec, MediaKind, TrackSummary
from recorder.rtp.rtcp import SenderReport, parse_rtcp

SPEC_PREFIX = "callvault-stream "
"""The Section Header comment holding a capture's stream description (recorder/capture/reader.py)."""
_RTP = struct.Struct("!BBHII")


@dataclass
class TrackCapture:
    """What the captures hold of one track: its RTP packets as columns (no object per packet), the
    RTCP sender reports and the events."""

    name: str
    arrival: array[float] = field(default_factory=lambda: array("d"))
    seq: array[int] = field(default_factory=lambda: array("q"))
    timestamp: array[int] = field(default_factory=lambda: array("q"))
    size: array[int] = field(default_factory=lambda: array("q"))
    keyframe: array[int] = field(default_factory=lambda: array("b"))
    sender_reports: list[tuple[float, int, int]] = field(default_factory=list)
    """(arrival Unix seconds, NTP64, RTP timestamp) of each RTCP SR."""
    events: list[tuple[float, str]] = field(default_factory=list)
    files: int = 0

    @property
    def count(self) -> int:
        return len(self.arrival)

    def add(self, sample: RtpSample) -> None:
        self.arrival.append(sample.arrival)
        self.seq.append(sample.seq)
        self.timestamp.append(sample.timestamp)
        self.size.append(sample.size)
        self.keyframe.append(sample.keyframe_start)

    def columns(self) -> Columns:
        """The packets in arrival order (segments may have been read out of order; a stable sort keeps
        the order of packets that arrived at the same instant)."""
        arrival = np.frombuffer(self.arrival, dtype=np.float64)
        order = np.argsort(arrival, kind="stable")
        return Columns(
            arrival=arrival[order],
            seq=np.frombuffer(self.seq, dtype=np.int64)[order],
            timestamp=np.frombuffer(self.timestamp, dtype=np.int64)[order],
            size=np.frombuffer(self.size, dtype=np.int64)[order].astype(np.float64),
            keyframe=np.frombuffer(self.keyframe, dtype=np.int8)[order].astype(bool),
        )


def keyframe_start(codec: Codec, payload: bytes) -> bool:
    """Whether an RTP payload starts a keyframe (VP8 RFC 7741 §4.3, VP9 draft §4.2 P bit, H.264 RFC 6184
    IDR/SPS in single NAL, STAP-A or the first FU-A fragment)."""
    if not payload:
        return False
    b0 = payload[0]
    if codec is Codec.VP8:
        if not b0 & 0x10 or b0 & 0x07:
            return False
        pos = 1
        if b0 & 0x80 and len(payload) > 1:
            ext = payload[1]
            pos = 2
            if ext & 0x80 and len(payload) > pos:
                pos += 2 if payload[pos] & 0x80 else 1
            pos += bool(ext & 0x40) + bool(ext & 0x30)
        return len(payload) > pos and not payload[pos] & 0x01
    if codec is Codec.VP9:
        return bool(b0 & 0x08) and not b0 & 0x40
    if codec is Codec.H264:
        kind = b0 & 0x1F
        if kind in (5, 7):
            return True
        if kind == 24:  # STAP-A
            pos = 1
            while pos + 2 < len(payload):
                size = int.from_bytes(payload[pos : pos + 2], "big")
                if payload[pos + 2] & 0x1F in (5, 7):
                    return True
                pos += 2 + size
            return False
        if kind == 28 and len(payload) > 1:  # FU-A
            return bool(payload[1] & 0x80) and payload[1] & 0x1F == 5
    return False


def load_captures(folder: Path, tracks: Sequence[TrackSummary]) -> tuple[dict[str, TrackCapture], list[str]]:
    """Per track name, what its captures hold; and one line per capture that could not be (fully) read."""
    by_name = {t.name: t for t in tracks}
    by_ssrc = {t.ssrc: t.name for t in tracks if t.ssrc is not None}
    out: dict[str, TrackCapture] = {}
    problems: list[str] = []
    for path in sorted(folder.rglob("*.pcapng")):
        try:
            data = path.read_bytes()
            found = scan(data)
        except OSError as exc:
            problems.append(f"{path.relative_to(folder)}: {exc.strerror or exc}")
            continue
        if found.stopped:
            problems.append(f"{path.relative_to(folder)}: {found.stopped} (read up to there)")
        named = _stream_name(found.comments)
        _read(data, found, named, by_name, by_ssrc, out)
        if named in by_name:
            track = out.setdefault(named, TrackCapture(named))
            track.files += 1
            track.events.extend((t / 1e9, c) for t, c in found.events)
    return out, problems


def _stream_name(comments: list[str]) -> str | None:
    for comment in comments:
        if comment.startswith(SPEC_PREFIX):
            try:
                value = json.loads(comment[len(SPEC_PREFIX) :])
            except ValueError:
                return None
            name = value.get("name") if isinstance(value, dict) else None
            return name if isinstance(name, str) else None
    return None


def _read(
    data: bytes,
    found: Scan,
    named: str | None,
    by_name: dict[str, TrackSummary],
    by_ssrc: dict[int, str],
    out: dict[str, TrackCapture],
) -> None:
    """The RTP and RTCP of one scanned capture into `out` (the hot loop: one pass, nothing copied but the
    first bytes of video payloads)."""
    unpack = _RTP.unpack_from
    targets: dict[int, tuple[TrackCapture, TrackSummary] | None] = {}
    for time_ns, start, end in zip(found.times, found.starts, found.ends, strict=True):
        if end - start < 12:
            continue
        first, second, seq, timestamp, ssrc = unpack(data, start)
        if first >> 6 != 2:
            continue
        if 192 <= second <= 223:
            _rtcp(data[start:end], time_ns / 1e9, named, by_name, by_ssrc, out)
            continue
        if ssrc in targets:
            target = targets[ssrc]
        else:
            name = named or by_ssrc.get(ssrc)
            summary = by_name.get(name) if name is not None else None
            target = (
                None
                if summary is None
                else (out.setdefault(summary.name, TrackCapture(summary.name)), summary)
            )
            targets[ssrc] = target
        if target is None or second & 0x7F != target[1].payload_type:
            continue
        track, summary = target
        track.arrival.append(time_ns / 1e9)
        track.seq.append(seq)
        track.timestamp.append(timestamp)
        track.size.append(end - start)
        if summary.kind is MediaKind.VIDEO:
            head = start + 12 + 4 * (first & 0x0F)
            if first & 0x10 and end >= head + 4:
                head += 4 + 4 * int.from_bytes(data[head + 2 : head + 4], "big")
            track.keyframe.append(keyframe_start(summary.codec, data[head : min(end, head + 64)]))
        else:
            track.keyframe.append(False)


def _rtcp(
    payload: bytes,
    arrival: float,
    named: str | None,
    by_name: dict[str, TrackSummary],
    by_ssrc: dict[int, str],
    out: dict[str, TrackCapture],
) -> None:
    try:
        reports = parse_rtcp(payload)
    except MalformedPacketError:
        return
    for report in reports:
        if isinstance(report, SenderReport):
            name = named or by_ssrc.get(report.ssrc)
            if name is not None and name in by_name:
                track = out.setdefault(name, TrackCapture(name))
                track.sender_reports.append((arrival, report.ntp_timestamp, report.rtp_timestamp))
