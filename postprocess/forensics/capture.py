"""A recording's raw captures (pcapng, recorder/capture/) as per-track packet samples for stats.py.

Every `*.pcapng` under the recording folder is read (recorder/capture/reader.py; a file cut short by a
crash is read up to its last whole block). A capture names its track in its stream description; without
one, its RTP packets go to the track whose summary has their SSRC. RTP on the RTP interface becomes
`RtpSample`s (keyframe starts found from the payload, per codec); RTCP sender reports are kept with
their arrival times; CallVault's event packets (pauses) are kept as comments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from postprocess.forensics.stats import RtpSample
from recorder.errors import MalformedPacketError
from recorder.models import Codec, TrackSummary
from recorder.rtp.packet import RtpPacket
from recorder.rtp.rtcp import SenderReport, parse_rtcp


@dataclass
class TrackCapture:
    name: str
    rtp: list[RtpSample] = field(default_factory=list)
    sender_reports: list[tuple[float, int, int]] = field(default_factory=list)
    """(arrival Unix seconds, NTP64, RTP timestamp) of each RTCP SR."""
    events: list[tuple[float, str]] = field(default_factory=list)
    files: int = 0


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
    """Per track name, what its captures hold; and one line per capture that could not be read."""
    # Imported here: recorder/capture/ lands beside this module (issue 18, items 1-3); a recording without
    # captures never needs it.
    paths = sorted(folder.rglob("*.pcapng"))
    if not paths:
        return {}, []
    from recorder.capture.reader import CaptureError, complete_length, parse  # noqa: PLC0415

    by_name = {t.name: t for t in tracks}
    by_ssrc = {t.ssrc: t.name for t in tracks if t.ssrc is not None}
    out: dict[str, TrackCapture] = {}
    problems: list[str] = []
    for path in paths:
        try:
            data = path.read_bytes()
            capture = parse(data[: complete_length(data)])
        except (OSError, CaptureError) as exc:
            problems.append(f"{path.relative_to(folder)}: {exc}")
            continue
        stream = capture.stream or {}
        value = stream.get("name")
        named = value if isinstance(value, str) else None
        for datagram in capture.datagrams:
            payload = datagram.payload
            arrival = datagram.time_ns / 1e9
            if len(payload) > 1 and 192 <= payload[1] <= 223:
                try:
                    reports = parse_rtcp(payload)
                except MalformedPacketError:
                    continue
                for report in reports:
                    if isinstance(report, SenderReport):
                        name = named or by_ssrc.get(report.ssrc)
                        if name in by_name:
                            track = out.setdefault(name, TrackCapture(name))
                            track.sender_reports.append((arrival, report.ntp_timestamp, report.rtp_timestamp))
                continue
            try:
                packet = RtpPacket.parse(payload)
            except MalformedPacketError:
                continue
            name = named or by_ssrc.get(packet.ssrc)
            summary = by_name.get(name) if name is not None else None
            if summary is None or packet.payload_type != summary.payload_type:
                continue
            track = out.setdefault(summary.name, TrackCapture(summary.name))
            track.rtp.append(
                RtpSample(
                    arrival=arrival,
                    seq=packet.sequence_number,
                    timestamp=packet.timestamp,
                    size=len(payload),
                    marker=packet.marker,
                    keyframe_start=keyframe_start(summary.codec, packet.payload),
                )
            )
        if named in by_name:
            track = out.setdefault(named, TrackCapture(named))
            track.files += 1
            track.events.extend((e.time_ns / 1e9, e.comment) for e in capture.events)
    for track in out.values():
        track.rtp.sort(key=lambda s: s.arrival)  # segments may be read out of order; arrival order is kept
    return out, problems
