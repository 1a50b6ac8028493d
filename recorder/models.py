"""Typed messages passed between the recorder's parts.

`StreamSpec` is what every producer (SDP file, Janus bridge, mediasoup) hands the recorder: the codec,
payload type, clock rate and ports of one RTP stream. (What frame assembly hands the muxer, `Frame`, is
in recorder/assembly/frame.py: a compiled hot-path class, not a pydantic model.)
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class MediaKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


class Codec(StrEnum):
    """Codecs recorded without transcoding. Values are the RTP encoding names, upper-cased."""

    VP8 = "VP8"
    VP9 = "VP9"
    H264 = "H264"
    OPUS = "OPUS"

    @property
    def kind(self) -> MediaKind:
        return MediaKind.AUDIO if self is Codec.OPUS else MediaKind.VIDEO


class StreamSpec(BaseModel):
    """One RTP stream to record, as described by SDP or by an SFU's forwarder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Stable name of the stream inside its recording, e.g. 'video-1'.")
    codec: Codec
    payload_type: int = Field(ge=0, le=127)
    clock_rate: int = Field(gt=0)
    channels: int = Field(default=1, ge=1, le=8)
    port: int = Field(ge=0, le=65535, description="Local UDP port RTP arrives on (0: pick a free one).")
    rtcp_port: int | None = Field(default=None, ge=0, le=65535)
    ssrc: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    address: str = Field(default="0.0.0.0", description="Local address to bind.")
    sprop_parameter_sets: tuple[bytes, ...] = Field(
        default=(), description="H.264 SPS/PPS announced out of band (SDP fmtp sprop-parameter-sets)."
    )
    rtx_payload_type: int | None = Field(
        default=None, ge=0, le=127, description="RTX (RFC 4588) payload type: lost packets are NACKed."
    )
    rtx_ssrc: int | None = Field(default=None, ge=0, le=0xFFFFFFFF, description="The RTX stream's SSRC.")

    @property
    def kind(self) -> MediaKind:
        return self.codec.kind


class Gap(BaseModel):
    """An interval of a track with no recorded media (loss, waiting for a keyframe, SFU restart)."""

    model_config = ConfigDict(extra="forbid")

    start_time: float = Field(description="Wall-clock (Unix seconds) of the last frame before the gap.")
    end_time: float = Field(description="Wall-clock (Unix seconds) of the first frame after the gap.")
    packets_lost: int = Field(ge=0)
    reason: str = Field(description="'loss', 'keyframe-wait', 'restart' ...")


class PauseInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_time: float
    end_time: float | None = None
    by: str | None = None
    reason: str | None = None


class LayerInterval(BaseModel):
    """A stretch of a video track with one picture size. For a simulcast publisher it tells which layer
    (substream) the SFU forwarded: sizes change only at keyframes, where the SFU switched layers."""

    model_config = ConfigDict(extra="forbid")

    start_time: float = Field(description="Wall-clock (Unix seconds) of its first frame (a keyframe).")
    end_time: float = Field(description="Wall-clock (Unix seconds) of the interval's last frame.")
    width: int | None = Field(default=None, description="Picture width from the keyframe (None: not stated).")
    height: int | None = None
    frames: int = Field(default=0, ge=0, description="Frames recorded in the interval.")


class SegmentInfo(BaseModel):
    """One closed, independently playable segment file of a track."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    path: str = Field(description="Path relative to the recording folder.")
    first_rtp_timestamp: int
    last_rtp_timestamp: int
    frames: int = Field(ge=0)
    size: int = Field(ge=0)
    sha256: str


class TrackSummary(BaseModel):
    """What a recorded track holds and what it lost. Written beside the track file as <name>.json."""

    model_config = ConfigDict(extra="forbid")
    _file_sha256: str | None = PrivateAttr(default=None)
    """SHA-256 of `file`, taken while the join wrote it (None when FFmpeg wrote it): handed in process to
    the archive, which then does not read the file again to hash it. Never in the JSON or the manifest
    schema (the manifest holds every file's hash); see `file_sha256`."""

    name: str
    state: str = Field(
        default="recording",
        description="'recording' while open (a checkpoint, rewritten every few seconds), 'complete' after a"
        " clean finish, 'recovered' when a crash left the track open and `callvault finalize` (or the next"
        " start-up) joined its segments (see counters_incomplete), 'failed' when writing or muxing failed"
        " (see error).",
    )
    error: str | None = Field(
        default=None, description="Why the track failed (state 'failed'), e.g. 'disk full (ENOSPC): ...'."
    )
    kind: MediaKind
    codec: Codec
    clock_rate: int
    payload_type: int
    ssrc: int | None = None
    file: str | None = Field(default=None, description="Joined track file, relative to the recording folder.")
    container: str = Field(description="'webm', 'matroska' or 'mp4'.")
    first_rtp_timestamp: int | None = None
    last_rtp_timestamp: int | None = None
    first_wallclock: float | None = None
    last_wallclock: float | None = None
    frames: int = 0
    keyframes: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    packets_duplicate: int = 0
    packets_late: int = 0
    packets_malformed: int = 0
    packets_paused: int = Field(default=0, description="Packets dropped unread while recording was paused.")
    packets_foreign: int = Field(
        default=0,
        description="Packets refused at the socket: from another sender than the one the track locked to,"
        " with another payload type, or another SSRC while the track's own was still sending.",
    )
    packets_unauthenticated: int = Field(
        default=0,
        description="SRTP on the forward leg: packets dropped because they failed authentication (sent with"
        " another key, forged, or corrupted on the way).",
    )
    packets_replayed: int = Field(
        default=0,
        description="SRTP on the forward leg: packets dropped by the replay check (an index already received:"
        " a duplicate or a replay; or one older than the replay window of 1,024 packets).",
    )
    frames_dropped: int = 0
    frames_unwritten: int = Field(
        default=0,
        description="Frames received but in no segment: a write failed (disk full) or a crash came before"
        " their cluster was written. After a crash only those the last live summary counted: a lower bound.",
    )
    keyframe_requests: int = 0
    duration: float | None = Field(
        default=None,
        description="Seconds of media in the joined file, from the start of its first frame to the end of its"
        " last (ffprobe's format duration); None without a joined file.",
    )
    media_seconds: float | None = Field(
        default=None,
        description="Media clock (RTP timestamps): where the last frame starts on the track's timeline, in"
        " seconds from the first, as the file's timestamps say. Compare file times with this.",
    )
    arrival_seconds: float | None = Field(
        default=None,
        description="Wall clock: seconds between the first and the last frame's arrival. Differs from"
        " media_seconds when the sender ran slower or faster than real time, or paused.",
    )
    counters_incomplete: bool = Field(
        default=False,
        description="True after recovery from a crash: what only the live pipeline knew (packets_*,"
        " frames_dropped, frames_unwritten, keyframe_requests, gaps, pauses, rtcp_sender_reports) is from the"
        " last summary written while recording and misses what came after it. frames, keyframes, duration,"
        " segments and the first and last timestamps are recounted from the files.",
    )
    estimated: list[str] = Field(
        default_factory=list,
        description="Fields recovery derived from the files' millisecond timestamps and the last live summary"
        " instead of reading them from RTP, e.g. 'last_rtp_timestamp', 'last_wallclock',"
        " 'segments[2].first_rtp_timestamp'.",
    )
    width: int | None = None
    height: int | None = None
    gaps: list[Gap] = Field(default_factory=list)
    pauses: list[PauseInterval] = Field(default_factory=list)
    layers: list[LayerInterval] = Field(
        default_factory=list,
        description="Video: the intervals of one picture size, in order; for a simulcast publisher, which"
        " layer each part of the recording came from (empty for audio).",
    )
    segments: list[SegmentInfo] = Field(default_factory=list)
    rtcp_sender_reports: list[tuple[int, int]] = Field(
        default_factory=list,
        description="(NTP timestamp 64-bit, unwrapped RTP timestamp) pairs from RTCP SR, for sync.",
    )

    @property
    def file_sha256(self) -> str | None:
        """SHA-256 of `file` as the join wrote it, when known (in process only)."""
        return self._file_sha256

    @file_sha256.setter
    def file_sha256(self, value: str | None) -> None:
        self._file_sha256 = value
