"""Frame assembly: in-order RTP packets (and Loss markers) in, complete encoded frames out.

Pure logic over any `Depacketizer`. Rules:
- A video frame is the run of packets sharing one RTP timestamp, starting with a packet the payload
  format calls a frame start and ending with the marker bit (or a timestamp change).
- A frame with a missing packet is never handed out. After any loss the stream waits for the next
  keyframe and raises `keyframe_needed`, which the caller turns into a PLI and clears.
- Every packet that does not end up in a handed-out frame is counted in the next frame's
  `dropped_packets`, so losses are visible frame by frame.
- Audio frames are single packets; a loss is counted but needs no keyframe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from recorder.assembly.frame import Frame
from recorder.assembly.reorder import Loss
from recorder.codecs.base import Depacketizer
from recorder.errors import MalformedPacketError
from recorder.models import MediaKind
from recorder.rtp.seqnum import TimestampUnwrapper

# A frame larger than this many packets is garbage or an attack; it is dropped.
MAX_PACKETS_PER_FRAME = 4096


class MediaPacket(Protocol):
    @property
    def marker(self) -> bool: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def payload(self) -> bytes: ...


@dataclass(slots=True)
class AssemblyStats:
    frames: int = 0
    keyframes: int = 0
    frames_dropped: int = 0
    packets_dropped: int = 0
    packets_lost: int = 0
    malformed_frames: int = 0
    discontinuities: int = 0


class FrameAssembler:
    def __init__(self, depacketizer: Depacketizer, kind: MediaKind) -> None:
        self.depacketizer = depacketizer
        self.kind = kind
        self.stats = AssemblyStats()
        self.keyframe_needed = kind is MediaKind.VIDEO
        self.width: int | None = None
        self.height: int | None = None
        self.discontinuity = False
        """True once a sender restart was seen; cleared by the caller after re-anchoring timing."""
        self._video = kind is MediaKind.VIDEO
        self._waiting_keyframe = self._video
        self._ts = TimestampUnwrapper()
        self._payloads: list[bytes] = []
        self._frame_ts = -1
        self._frame_broken = False
        self._dropped = 0

    def push(self, item: MediaPacket | Loss, arrival: float, out: list[Frame]) -> None:
        """Feed one released packet or loss marker; append completed frames to `out`."""
        if isinstance(item, Loss):
            self._on_loss(item)
            return
        if not self._video:
            self._emit([item.payload], self._ts.unwrap(item.timestamp), arrival, out)
            return
        ts = item.timestamp
        payloads = self._payloads
        if payloads and ts != self._frame_ts:
            # The previous frame never saw its marker: hand it out only if nothing was missing.
            self._close(arrival, out)
        if not payloads:
            self._frame_ts = ts
            if not self.depacketizer.is_frame_start(item.payload):
                self._frame_broken = True
        payloads.append(item.payload)
        if item.marker or len(payloads) >= MAX_PACKETS_PER_FRAME:
            if not item.marker:
                self._frame_broken = True
            self._close(arrival, out)

    def finish(self, arrival: float, out: list[Frame]) -> None:
        """End of stream: a frame still open never got its marker and is dropped."""
        if self._payloads:
            self._frame_broken = True
            self._close(arrival, out)

    def interrupt(self) -> None:
        """Media was deliberately cut (a pause): drop the open frame and start again at a keyframe,
        without counting anything as lost."""
        if self._payloads:
            self._payloads = []
            self._frame_broken = False
            self.stats.frames_dropped += 1
        if self._video:
            self._waiting_keyframe = True
            self.keyframe_needed = True

    def _on_loss(self, loss: Loss) -> None:
        self.stats.packets_lost += loss.count
        self._dropped += loss.count
        if loss.reset:
            self.stats.discontinuities += 1
            self.discontinuity = True
            self._ts = TimestampUnwrapper()
        if self._video:
            if self._payloads:
                self._frame_broken = True
            self._waiting_keyframe = True
            self.keyframe_needed = True

    def _close(self, arrival: float, out: list[Frame]) -> None:
        payloads = self._payloads
        self._payloads = []
        if self._frame_broken:
            self._frame_broken = False
            self._drop(len(payloads))
            return
        self._emit(payloads, self._ts.unwrap(self._frame_ts), arrival, out)

    def _emit(self, payloads: list[bytes], timestamp: int, arrival: float, out: list[Frame]) -> None:
        try:
            frame = self.depacketizer.depacketize(payloads)
        except MalformedPacketError:
            self.stats.malformed_frames += 1
            self._drop(len(payloads))
            return
        if self._waiting_keyframe:
            if not frame.keyframe:
                self._drop(len(payloads))
                return
            self._waiting_keyframe = False
        stats = self.stats
        keyframe = frame.keyframe
        if keyframe:
            stats.keyframes += 1
            if frame.width is not None:
                self.width, self.height = frame.width, frame.height
        stats.frames += 1
        # Frame(data, keyframe, rtp_timestamp, arrival_time, dropped_packets, packets), positional: per frame
        out.append(Frame(frame.data, keyframe, timestamp, arrival, self._dropped, len(payloads)))
        self._dropped = 0

    def _drop(self, packets: int) -> None:
        self.stats.frames_dropped += 1
        self.stats.packets_dropped += packets
        self._dropped += packets
        if self._video:
            self._waiting_keyframe = True
            self.keyframe_needed = True
