"""Import Janus recordings (.mjr) as CallVault recordings.

Each file is checked first (format.py): one that is not a readable recording of a codec CallVault stores
without transcoding is refused with one line saying why, and the others go on. The readable files are
grouped into recordings (naming.py); each recording gets its folder, one track per file replayed through
the recording pipeline (replay.py) with the times Janus stored, `janus-import.json` (where every track
came from: the source file's name, size, SHA-256 and info header, the packets read and skipped), and a
signed manifest (recorder/manifest). A recording whose folder exists already is refused (imported
before); nothing is ever overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from recorder import __version__
from recorder.config import RecorderSettings
from recorder.manifest import Participant, build_manifest, write_atomically, write_signed_manifest
from recorder.mjr.format import MjrError, MjrHeader, MjrKind, MjrScan, parse_header, scan
from recorder.mjr.naming import PlannedRecording, TrackSource, identify, plan
from recorder.mjr.replay import replay_track
from recorder.models import Codec, StreamSpec, TrackSummary
from recorder.names import child
from recorder.recording import ParticipantInfo, RecordingInfo

log = logging.getLogger(__name__)

IMPORT_RECORD = "janus-import.json"
CODECS = {"vp8": Codec.VP8, "vp9": Codec.VP9, "h264": Codec.H264, "opus": Codec.OPUS}
_RTP_FIXED = struct.Struct("!BBHII")


class SourceRecord(BaseModel):
    """Where one imported track came from."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="The .mjr file's name (not its path).")
    size: int
    sha256: str
    header: str = Field(description="Its info header, exactly as Janus wrote it.")
    track: str
    participant_id: str | None = None
    packets_read: int
    frames_skipped_short: int = 0
    frames_skipped_long: int = 0
    stopped: str | None = Field(default=None, description="Why reading stopped before the end of the file.")


class ImportRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = "callvault.janus-import/1"
    software: str = f"callvault {__version__}"
    imported_at: datetime
    sources: list[SourceRecord]


@dataclass
class MjrSource:
    """A readable .mjr file: its header, where its packets start, and what a first pass found."""

    path: Path
    header: MjrHeader
    codec: Codec
    start_offset: int
    size: int
    sha256: str
    payload_type: int
    first_time: float
    last_time: float
    scanned: MjrScan


@dataclass
class ImportedRecording:
    planned: PlannedRecording
    folder: Path
    tracks: list[TrackSummary]
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.state == "complete" for t in self.tracks)


@dataclass
class ImportOutcome:
    recordings: list[ImportedRecording] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    """(file, why) for every file not imported because it is unreadable or unsupported."""
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """(file, why) for files left out on purpose (data-channel recordings)."""


class SkippedFile(Exception):
    """A file that is readable but not for CallVault (a data-channel recording)."""


def _mapped(path: Path) -> tuple[mmap.mmap | bytes, int]:
    with path.open("rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            return b"", 0
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), size


def open_source(path: Path) -> MjrSource:
    """Read and check one file (one pass over its packets); MjrError says why it cannot be imported,
    SkippedFile why it is left out."""
    try:
        data, size = _mapped(path)
    except OSError as exc:
        raise MjrError(f"cannot read: {exc.strerror or exc}") from None
    try:
        header, start = parse_header(data)
        if header.kind is MjrKind.DATA:
            raise SkippedFile("a data-channel recording: CallVault imports audio and video")
        codec = CODECS.get(header.codec)
        if codec is None or (codec is Codec.OPUS) != (header.kind is MjrKind.AUDIO):
            raise MjrError(
                f"{header.kind.value} codec {header.codec!r} cannot be stored without transcoding"
                " (CallVault stores VP8, VP9, H.264 and Opus)"
            )
        if header.end_to_end_encrypted:
            raise MjrError("end-to-end encrypted media (the header's 'e'): its frames would not play")
        scanned = MjrScan()
        payload_type: int | None = None
        first = last = 0
        digest = hashlib.sha256(data)
        packets = scan(data, header, start, scanned)
        try:
            for packet in packets:
                if payload_type is None and len(packet.data) >= 12:
                    pt = packet.data[1] & 0x7F
                    if packet.data[0] >> 6 == 2 and pt != header.opus_red_pt:
                        payload_type, first = pt, packet.time_ms or 0
                last = packet.time_ms or last
        finally:
            packets.close()
        if payload_type is None:
            raise MjrError(scanned.stopped or "no RTP packet in the file")
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
    base = (header.first_written_us or header.created_us or 0) / 1e6 or path.stat().st_mtime
    return MjrSource(
        path=path,
        header=header,
        codec=codec,
        start_offset=start,
        size=size,
        sha256=digest.hexdigest(),
        payload_type=payload_type,
        first_time=base + first / 1000,
        last_time=base + last / 1000,
        scanned=scanned,
    )


def packets_of(source: MjrSource, clock_rate: int) -> Iterator[tuple[float, bytes]]:
    """(arrival Unix time, RTP bytes) of every packet, in file order. Files before MJR00002 store no
    times: the RTP timestamps (unwrapped) stand in for them."""
    data, _ = _mapped(source.path)
    base = (source.header.first_written_us or source.header.created_us or 0) / 1e6 or source.first_time
    packets = scan(data, source.header, source.start_offset, MjrScan())
    try:
        first_rtp: int | None = None
        unwrapped, previous = 0, 0
        for packet in packets:
            if packet.time_ms is not None:
                yield base + packet.time_ms / 1000, packet.data
                continue
            ts = _RTP_FIXED.unpack_from(packet.data)[4]
            if first_rtp is None:
                first_rtp, previous = ts, ts
            delta = (ts - previous) & 0xFFFFFFFF
            if delta >= 1 << 31:
                delta -= 1 << 32
            previous = ts
            unwrapped += delta
            yield base + max(0, unwrapped) / clock_rate, packet.data
    finally:
        packets.close()
        if isinstance(data, mmap.mmap):
            data.close()


def import_files(
    paths: Sequence[Path],
    out: Path,
    key: Ed25519PrivateKey,
    settings: RecorderSettings | None = None,
    on_recording: Callable[[RecordingInfo, list[TrackSummary]], None] | None = None,
) -> ImportOutcome:
    """Import `paths` into recordings under `out` (see the module documentation). `on_recording` hears
    each recording made (to put it in a catalog)."""
    outcome = ImportOutcome()
    sources: list[MjrSource] = []
    identities: list[TrackSource] = []
    seen: set[Path] = set()
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            source = open_source(path)
        except SkippedFile as exc:
            outcome.skipped.append((path, str(exc)))
            continue
        except MjrError as exc:
            outcome.failed.append((path, str(exc)))
            continue
        kind = "audio" if source.codec is Codec.OPUS else "video"
        identities.append(identify(len(sources), path.stem, kind, source.first_time, source.last_time))
        sources.append(source)
    for planned in plan(identities):
        try:
            folder = child(out, planned.recording_id)
        except ValueError as exc:
            for t in planned.tracks:
                outcome.failed.append((sources[t.file_index].path, str(exc)))
            continue
        if folder.exists():
            for t in planned.tracks:
                outcome.failed.append(
                    (sources[t.file_index].path, f"recording {folder} exists already (imported before?)")
                )
            continue
        outcome.recordings.append(_import_one(planned, folder, sources, key, settings, on_recording))
    return outcome


def _import_one(
    planned: PlannedRecording,
    folder: Path,
    sources: list[MjrSource],
    key: Ed25519PrivateKey,
    settings: RecorderSettings | None,
    on_recording: Callable[[RecordingInfo, list[TrackSummary]], None] | None,
) -> ImportedRecording:
    folder.mkdir(parents=True)
    summaries: list[TrackSummary] = []
    records: list[SourceRecord] = []
    warnings: list[str] = []
    for t in planned.tracks:
        source = sources[t.file_index]
        clock, channels = (48000, 2) if source.codec is Codec.OPUS else (90000, 1)
        spec = StreamSpec(
            name=t.track,
            codec=source.codec,
            payload_type=source.payload_type,
            clock_rate=clock,
            channels=channels,
            port=0,
        )
        log.info("importing %s as track %s of %s", source.path.name, t.track, planned.recording_id)
        summaries.append(replay_track(folder, spec, packets_of(source, clock), settings))
        s = source.scanned
        if s.stopped:
            warnings.append(f"{source.path}: {s.stopped}")
        records.append(
            SourceRecord(
                file=source.path.name,
                size=source.size,
                sha256=source.sha256,
                header=source.header.raw,
                track=t.track,
                participant_id=t.participant_id,
                packets_read=s.packets,
                frames_skipped_short=s.skipped_short,
                frames_skipped_long=s.skipped_long,
                stopped=s.stopped,
            )
        )
    now = datetime.now(UTC)
    record = ImportRecord(imported_at=now, sources=records)
    write_atomically(folder / IMPORT_RECORD, record.model_dump_json(indent=1).encode() + b"\n")
    owners = {t.track: t.participant_id for t in planned.tracks if t.participant_id is not None}
    people = sorted(set(owners.values()))
    manifest = build_manifest(
        folder,
        planned.recording_id,
        tracks=summaries,
        created_at=datetime.fromtimestamp(planned.start, UTC),
        finished_at=datetime.fromtimestamp(planned.end, UTC),
        room_id=planned.room_id,
        participants=[Participant(id=p, metadata={"source": "janus-mjr"}) for p in people],
        track_participants=owners,
    )
    write_signed_manifest(folder, manifest, key)
    if on_recording is not None:
        spans = {p: [t for t in planned.tracks if t.participant_id == p] for p in people}
        info = RecordingInfo(
            recording_id=planned.recording_id,
            folder=folder,
            room_id=planned.room_id,
            started_at=planned.start,
            finished_at=planned.end,
            participants=[
                ParticipantInfo(
                    id=p,
                    joined_at=min(t.start for t in spans[p]),
                    left_at=max(t.end for t in spans[p]),
                )
                for p in people
            ],
            track_participants=owners,
            metadata={"source": "janus-mjr"},
        )
        on_recording(info, summaries)
    return ImportedRecording(planned, folder, summaries, warnings)
