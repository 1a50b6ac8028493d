"""One track's capture, in two halves: `PacketCapture` on the event loop (the hot path: an RTP packet is
two list appends, its arrival time and its bytes) and `CaptureFile` in a writer thread (builds the
pcapng blocks of what a tick gathered, appends them to the open segment file, closes, hashes and lists
segments). The IPv4 + UDP header and the block's tail depend on the datagram's length only and are
cached per length, so a packet's block costs one struct pack and four list appends.

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
    """Close the open segment (if any) and start the next one."""


@dataclass(frozen=True, slots=True)
class Rtcp:
    time: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Note:
    """A CallVault event (its text is the comment of a zero-byte packet on the events interface)."""

    time: float
    text: str


@dataclass(frozen=True, slots=True)
class Source:
    """A new sender on one of the track's sockets: its packets are wrapped by `encoder` from now on."""

    time: float
    encoder: pcapng.UdpEncoder
    text: str


@dataclass(frozen=True, slots=True)
class Label:
    """What the SFU calls the forwarder (a Janus stream id): noted now and at the start of every segment."""

    time: float
    text: str


NEW_SEGMENT = NewSegment()
Item = float | bytes | NewSegment | Rtcp | Note | Source | Label
"""What the event loop gathers: an RTP packet is two items, its arrival time (a float) then its bytes."""


class PacketCapture:
    """The event-loop half: per RTP packet two list appends (arrival time, bytes), nothing else; the
    blocks are built in the writer thread (`CaptureFile.write`). `take` hands over what was gathered."""

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
        self.segment_seconds = segment_seconds
        self.items: list[Item] = []
        self.paused = False
        self._rotate_at = float("-inf")  # the first packet at or after it starts a new segment
        self._rtp_source: Address | None = None
        self._rtcp_source: Address | None = None

    def rtp(self, data: bytes, addr: Address, now: float) -> None:
        if now >= self._rotate_at:
            self._start_segment(now)
        if addr != self._rtp_source:
            self._new_source(pcapng.IF_RTP, addr, self.local_rtp, "rtp", now)
        items = self.items
        items.append(now)
        items.append(data)

    def rtcp(self, data: bytes, addr: Address, now: float) -> None:
        if self.paused:
            return
        if now >= self._rotate_at:
            self._start_segment(now)
        if addr != self._rtcp_source:
            self._new_source(pcapng.IF_RTCP, addr, self.local_rtcp, "rtcp", now)
        self.items.append(Rtcp(now, data))

    def event(self, now: float, kind: str, **fields: object) -> None:
        if self._rotate_at == float("-inf"):
            self._start_segment(now)
        self.items.append(Note(now, event_text(kind, **fields)))

    def label(self, now: float, **fields: object) -> None:
        """Name the forwarder as the SFU knows it (`callvault sfu-forwarder {...}`), in every segment."""
        if self._rotate_at == float("-inf"):
            self._start_segment(now)
        self.items.append(Label(now, event_text("sfu-forwarder", **fields)))

    def pause(self, now: float, by: str | None, reason: str | None) -> None:
        if not self.paused:
            self.paused = True
            self.event(now, "pause-start", by=by, reason=reason)

    def resume(self, now: float) -> None:
        if self.paused:
            self.paused = False
            self.event(now, "pause-end")

    def take(self) -> list[Item]:
        items, self.items = self.items, []
        return items

    def _start_segment(self, now: float) -> None:
        self.items.append(NEW_SEGMENT)
        self._rotate_at = now + self.segment_seconds

    def _new_source(self, interface: int, source: Address, local: Address, what: str, now: float) -> None:
        """A new sender on a socket (the forwarder, or a new one after it changed): named in an event."""
        local = (_local_host(local[0], source[0]), local[1])
        encoder = pcapng.UdpEncoder(interface, source, local)
        self.items.append(Source(now, encoder, _source_text(what, source, local)))
        if interface == pcapng.IF_RTP:
            self._rtp_source = source
        else:
            self._rtcp_source = source


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
    """The writer-thread half: builds the blocks of what a tick gathered and appends them to the open
    segment file; closed segments are listed in `segments` with their size and SHA-256 (`frames` counts
    the packets, RTP and RTCP; the RTP timestamps are the segment's first and last RTP packet's)."""

    def __init__(self, folder: Path, track: str, header: bytes) -> None:
        self.folder = folder
        self.track = track
        self.header = header
        self.segments: list[SegmentInfo] = []
        self.failed: str | None = None
        self._dir = capture_dir(folder, track)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._next_index = len(list(self._dir.glob(f"*.{EXTENSION}")))
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self._packets = 0
        self._first_rtp: bytes | None = None
        self._last_rtp: bytes | None = None
        self._open = False  # a segment was started (its file is created with its first write)
        self._rtp: pcapng.UdpEncoder | None = None
        self._rtcp: pcapng.UdpEncoder | None = None
        self._sources: dict[int, Source] = {}
        self._labels: list[Label] = []
        self._entries: dict[int, tuple[int, int, bytes, bytes]] = {}

    def write(self, items: list[Item]) -> None:
        if self.failed is not None:
            return
        try:
            self._write(items)
        except OSError as exc:
            self.failed = str(exc)
            log.error("capture of %s: cannot write (%s); the capture stops here", self.track, exc)
            self._close_segment()

    def close(self) -> list[SegmentInfo]:
        """Close the open segment; idempotent."""
        try:
            self._close_segment()
        except OSError as exc:
            log.error("capture of %s: cannot close its last segment: %s", self.track, exc)
        return self.segments

    def _write(self, items: list[Item]) -> None:
        out: list[bytes] = []
        append = out.append
        head = pcapng.EPB_HEAD.pack
        entries = self._entries
        rtp = self._rtp
        interface = pcapng.IF_RTP
        packets = 0
        first, last = self._first_rtp, self._last_rtp
        it = iter(items)
        for item in it:
            if item.__class__ is float:  # the hot path: an RTP packet
                data: bytes = next(it)  # type: ignore[assignment]
                n = len(data)
                entry = entries.get(n)
                if entry is None:
                    assert rtp is not None
                    if rtp.v6:
                        append(rtp.block(int(item * 1e9), data))
                        packets += 1
                        first = first or data
                        last = data
                        continue
                    entry = entries[n] = rtp.ipv4_entry(n)
                total, caplen, ip, tail = entry
                ns = int(item * 1e9)
                append(head(pcapng.EPB_TYPE, total, interface, ns >> 32, ns & 0xFFFFFFFF, caplen, caplen))
                append(ip)
                append(data)
                append(tail)
                packets += 1
                if first is None:
                    first = data
                last = data
            elif isinstance(item, Rtcp):
                if self._rtcp is not None:
                    append(self._rtcp.block(int(item.time * 1e9), item.data))
                    packets += 1
            elif isinstance(item, Note):
                append(pcapng.event(int(item.time * 1e9), item.text))
            elif isinstance(item, Source):
                self._sources[item.encoder.interface] = item
                if item.encoder.interface == pcapng.IF_RTP:
                    rtp = self._rtp = item.encoder
                    entries.clear()
                else:
                    self._rtcp = item.encoder
                append(pcapng.event(int(item.time * 1e9), item.text))
            elif isinstance(item, Label):
                self._labels = [item]
                append(pcapng.event(int(item.time * 1e9), item.text))
            elif isinstance(item, NewSegment):
                self._packets += packets
                self._first_rtp, self._last_rtp = first, last
                self._append(out)
                self._close_segment()
                out = [self.header]
                append = out.append
                notes: list[Source | Label] = [*self._sources.values(), *self._labels]
                for note in notes:  # each segment names its forwarder
                    append(pcapng.event(int(note.time * 1e9), note.text))
                self._open = True
                packets, first, last = 0, None, None
        self._packets += packets
        self._first_rtp, self._last_rtp = first, last
        self._append(out)

    def _append(self, pieces: list[bytes]) -> None:
        if not pieces or not self._open:
            return
        if self._file is None:
            self._path = self._dir / f"{self._next_index:06d}.{EXTENSION}"
            self._file = self._path.open("ab", buffering=0)  # one write(2) per batch, nothing held back
            self._hash = hashlib.sha256()
            self._size = 0
        data = b"".join(pieces)
        view = memoryview(data)
        while view:  # in the kernel's hands once written: survives a SIGKILL
            written = self._file.write(view)
            if not written:
                raise OSError(f"{self._path}: nothing written")
            view = view[written:]
        self._hash.update(data)
        self._size += len(data)

    def _close_segment(self) -> None:
        file, path = self._file, self._path
        self._open = False
        if file is None or path is None:
            return
        self._file = None
        file.close()
        self._next_index += 1
        first, last = self._first_rtp, self._last_rtp
        self.segments.append(
            SegmentInfo(
                index=int(path.stem),
                path=str(path.relative_to(self.folder)),
                first_rtp_timestamp=int.from_bytes(first[4:8], "big") if first else 0,
                last_rtp_timestamp=int.from_bytes(last[4:8], "big") if last else 0,
                frames=self._packets,
                size=self._size,
                sha256=self._hash.hexdigest(),
            )
        )
        self._packets = 0
        self._first_rtp = self._last_rtp = None
