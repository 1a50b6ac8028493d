"""One track's capture, in two halves: `PacketCapture` on the event loop (the hot path: each datagram
becomes one Enhanced Packet Block appended to a list, nothing else) and `CaptureFile` in a writer
thread (appends what a tick gathered to the open segment file, closes, hashes and lists segments).

A new segment starts, with its own Section Header and Interface Descriptions so each one opens alone in
Wireshark, at the first packet `segment_seconds` after the segment's first. The writes are whole blocks,
so after a SIGKILL a segment is valid pcapng up to its last whole block (recovery cuts off a partial
one: `recorder.capture.recovery`).

Pauses: the receiver drops a paused track's RTP before it reaches the capture, `PacketCapture` drops its
RTCP, and events (zero-byte packets on interface 2 with a comment) mark where each pause started and
ended, by whom and why.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from recorder import __version__
from recorder.capture import pcapng
from recorder.capture.reader import EVENT_PREFIX, SPEC_PREFIX
from recorder.models import SegmentInfo, StreamSpec

log = logging.getLogger(__name__)

Address = tuple[str, int]

CAPTURE_SUFFIX = ".capture"
"""`<track>.capture/NNNNNN.pcapng`: a track's capture segments, beside its `<track>.segments/`."""
EXTENSION = "pcapng"
MAX_COMMENT = 4096


def capture_dir(folder: Path, track: str) -> Path:
    return folder / f"{track}{CAPTURE_SUFFIX}"


def capture_track(track: str) -> str:
    """The name a track's capture segments are announced (and chained in the manifest) under."""
    return f"{track}{CAPTURE_SUFFIX}"


def stream_description(spec: StreamSpec) -> str:
    """The Section Header comment that lets `record-pcap` rebuild the track: its StreamSpec as JSON."""
    data = spec.model_dump(mode="python", exclude={"sprop_parameter_sets"})
    data["sprop_parameter_sets"] = [base64.b64encode(p).decode() for p in spec.sprop_parameter_sets]
    return SPEC_PREFIX + json.dumps(data, default=str, sort_keys=True)


def event_text(kind: str, **fields: object) -> str:
    text = EVENT_PREFIX + kind + " " + json.dumps({k: v for k, v in fields.items() if v is not None})
    return text[:MAX_COMMENT]


def segment_header(spec: StreamSpec, rtp_port: int, rtcp_port: int | None, context: list[str]) -> bytes:
    """Section Header and the three Interface Descriptions every segment of the track starts with."""
    comments = [
        f"CallVault capture of track {spec.name}: every RTP and RTCP packet as received (after SRTP"
        " decryption), with its arrival time and source; paused intervals are absent",
        *context,
        stream_description(spec),
    ]
    rtcp = f"UDP port {rtcp_port}" if rtcp_port is not None else "none (RTCP shares the RTP port)"
    return b"".join(
        (
            pcapng.section_header(comments, f"CallVault {__version__}"),
            pcapng.interface_description(
                pcapng.LINKTYPE_RAW, f"{spec.name}-rtp", f"RTP of track {spec.name}, UDP port {rtp_port}"
            ),
            pcapng.interface_description(
                pcapng.LINKTYPE_RAW, f"{spec.name}-rtcp", f"RTCP of track {spec.name}, {rtcp}"
            ),
            pcapng.interface_description(
                pcapng.LINKTYPE_USER0, "callvault-events", "CallVault events (the packet comment says what)"
            ),
        )
    )


@dataclass(frozen=True, slots=True)
class NewSegment:
    """Close the open segment; what follows goes to the next one."""


NEW_SEGMENT = NewSegment()
Chunk = bytes | NewSegment


class PacketCapture:
    """The event-loop half: blocks gathered between two ticks (`take`)."""

    def __init__(
        self,
        spec: StreamSpec,
        segment_seconds: float,
        local_rtp: Address,
        local_rtcp: Address | None,
        context: list[str] | None = None,
    ) -> None:
        self.spec = spec
        self.local_rtp = local_rtp
        self.local_rtcp = local_rtcp or local_rtp
        self.header = segment_header(spec, local_rtp[1], local_rtcp[1] if local_rtcp else None, context or [])
        self.segment_ns = int(segment_seconds * 1e9)
        self.chunks: list[Chunk] = []
        self.packets = 0
        self.paused = False
        self._rotate_at: int | None = None  # when the next packet starts a new segment (None: none open)
        self._rtp: pcapng.UdpEncoder | None = None
        self._rtp_source: Address | None = None
        self._rtcp: pcapng.UdpEncoder | None = None
        self._rtcp_source: Address | None = None

    def rtp(self, data: bytes, addr: Address, now: float) -> None:
        time_ns = int(now * 1e9)
        rotate = self._rotate_at
        if rotate is None or time_ns >= rotate:
            self._start_segment(time_ns)
        encoder = self._rtp
        if encoder is None or addr != self._rtp_source:
            encoder = self._rtp = self._encoder(pcapng.IF_RTP, addr, self.local_rtp, "rtp", time_ns)
            self._rtp_source = addr
        self.chunks.append(encoder.block(time_ns, data))
        self.packets += 1

    def rtcp(self, data: bytes, addr: Address, now: float) -> None:
        if self.paused:
            return
        time_ns = int(now * 1e9)
        rotate = self._rotate_at
        if rotate is None or time_ns >= rotate:
            self._start_segment(time_ns)
        encoder = self._rtcp
        if encoder is None or addr != self._rtcp_source:
            encoder = self._rtcp = self._encoder(pcapng.IF_RTCP, addr, self.local_rtcp, "rtcp", time_ns)
            self._rtcp_source = addr
        self.chunks.append(encoder.block(time_ns, data))
        self.packets += 1

    def event(self, now: float, kind: str, **fields: object) -> None:
        time_ns = int(now * 1e9)
        if self._rotate_at is None:
            self._start_segment(time_ns)
        self.chunks.append(pcapng.event(time_ns, event_text(kind, **fields)))

    def pause(self, now: float, by: str | None, reason: str | None) -> None:
        if not self.paused:
            self.paused = True
            self.event(now, "pause-start", by=by, reason=reason)

    def resume(self, now: float) -> None:
        if self.paused:
            self.paused = False
            self.event(now, "pause-end")

    def take(self) -> list[Chunk]:
        chunks, self.chunks = self.chunks, []
        return chunks

    def _start_segment(self, time_ns: int) -> None:
        if self._rotate_at is not None:
            self.chunks.append(NEW_SEGMENT)
        self._rotate_at = time_ns + self.segment_ns
        self.chunks.append(self.header)
        for source, local, what in (
            (self._rtp_source, self.local_rtp, "rtp"),
            (self._rtcp_source, self.local_rtcp, "rtcp"),
        ):
            if source is not None:
                self.chunks.append(pcapng.event(time_ns, _source_text(what, source, local)))

    def _encoder(
        self, interface: int, source: Address, local: Address, what: str, time_ns: int
    ) -> pcapng.UdpEncoder:
        """A new sender on a socket (the forwarder, or a new one after it changed): named in an event."""
        local = (_local_host(local[0], source[0]), local[1])
        self.chunks.append(pcapng.event(time_ns, _source_text(what, source, local)))
        return pcapng.UdpEncoder(interface, source, local)


def _local_host(bound: str, source: str) -> str:
    """The socket's own address for this sender: the bound one, or for a wildcard bind the address the
    kernel routes replies to `source` from (a UDP connect sends nothing)."""
    if bound not in ("", "0.0.0.0", "::"):
        return bound
    host = source.split("%", 1)[0]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            local: str = probe.getsockname()[0]
            return local
    except OSError:
        return bound or "0.0.0.0"


def _source_text(what: str, source: Address, local: Address) -> str:
    return event_text(
        "forwarder",
        socket=what,
        source=f"{source[0]}:{source[1]}",
        local=f"{local[0]}:{local[1]}",
    )


class CaptureFile:
    """The writer-thread half: appends chunks to the open segment file; closed segments are listed in
    `segments` with their size and SHA-256 (`frames` counts packets and events, the RTP timestamps are
    the segment's first and last RTP packet's)."""

    def __init__(self, folder: Path, track: str) -> None:
        self.folder = folder
        self.track = track
        self.segments: list[SegmentInfo] = []
        self._dir = capture_dir(folder, track)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._next_index = len(list(self._dir.glob(f"*.{EXTENSION}")))
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self._blocks = 0
        self._first_rtp: int | None = None
        self._last_rtp = 0
        self.failed: str | None = None

    def write(self, chunks: list[Chunk]) -> None:
        if self.failed is not None:
            return
        try:
            pending: list[bytes] = []
            for chunk in chunks:
                if isinstance(chunk, NewSegment):
                    self._append(pending)
                    pending = []
                    self._close_segment()
                else:
                    pending.append(chunk)
            self._append(pending)
        except OSError as exc:
            self.failed = str(exc)
            log.error("capture of %s: cannot write (%s); the capture stops here", self.track, exc)
            self._close_segment(keep=True)

    def close(self) -> list[SegmentInfo]:
        """Close the open segment; idempotent."""
        try:
            self._close_segment()
        except OSError as exc:
            log.error("capture of %s: cannot close its last segment: %s", self.track, exc)
        return self.segments

    def _append(self, blocks: list[bytes]) -> None:
        if not blocks:
            return
        if self._file is None:
            self._path = self._dir / f"{self._next_index:06d}.{EXTENSION}"
            self._file = self._path.open("ab")
            self._hash = hashlib.sha256()
            self._size = 0
            self._blocks = 0
            self._first_rtp = None
        data = b"".join(blocks)
        self._file.write(data)
        self._file.flush()  # in the kernel's hands: survives a SIGKILL
        self._hash.update(data)
        self._size += len(data)
        for block in blocks:
            if len(block) >= 68 and int.from_bytes(block[8:12], "little") == pcapng.IF_RTP:
                ts = _rtp_timestamp(block)
                if ts is not None:
                    if self._first_rtp is None:
                        self._first_rtp = ts
                    self._last_rtp = ts
            if int.from_bytes(block[:4], "little") == pcapng.EPB_TYPE:
                self._blocks += 1

    def _close_segment(self, keep: bool = True) -> None:
        file, path = self._file, self._path
        if file is None or path is None:
            return
        self._file = None
        file.close()
        self._next_index += 1
        self.segments.append(
            SegmentInfo(
                index=int(path.stem),
                path=str(path.relative_to(self.folder)),
                first_rtp_timestamp=self._first_rtp or 0,
                last_rtp_timestamp=self._last_rtp,
                frames=self._blocks,
                size=self._size,
                sha256=self._hash.hexdigest(),
            )
        )


def _rtp_timestamp(block: bytes) -> int | None:
    """The RTP timestamp of an Enhanced Packet Block of UDP over IPv4 or IPv6 on the RTP interface."""
    ip = block[28:]
    header = 28 if ip[0] >> 4 == 4 else 48
    rtp = ip[header:]
    if len(rtp) < 12 or rtp[0] >> 6 != 2 or 192 <= rtp[1] <= 223:
        return None
    return int.from_bytes(rtp[4:8], "big")
