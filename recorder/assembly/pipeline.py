"""One stream's pure media pipeline: RTP packets in, muxer commands out.

reorder buffer -> frame assembly -> track timeline (pts) -> segment boundaries, plus the facts a
manifest needs (TrackSummary). No sockets, no files, no asyncio: the ingest edge feeds packets and
timer ticks, sends a keyframe request when `take_keyframe_request()` says so, and hands `take_output()`
to a mux worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from recorder.assembly.frame import Frame
from recorder.assembly.frames import FrameAssembler
from recorder.assembly.reorder import Loss, ReorderBuffer
from recorder.codecs import depacketizer_for
from recorder.models import Gap, LayerInterval, MediaKind, PauseInterval, StreamSpec, TrackSummary
from recorder.rtp.packet import RtpPacket

MAX_GAPS = 10_000
MAX_SENDER_REPORTS = 2_000
SENDER_REPORT_INTERVAL = 5.0  # seconds of media between sender reports kept for sync
KEYFRAME_REQUEST_INTERVAL = 0.5  # seconds between two keyframe requests
# A video track stalls when no frame came for STALL_MIN seconds and STALL_INTERVALS times its usual frame
# interval (a screen share at 1 fps is slow, not stalled). Then a keyframe is asked for: an SFU's
# simulcast context (Janus) switches to a lower layer only at one of its keyframes, and Janus never asks
# for one on behalf of an RTP forwarder. Janus gives up on a layer after 0.25 s and then alternates its
# target every 0.25 s: the first request comes after that, the next ones STALL_RETRY apart (not a
# multiple of that cycle), the later ones less and less often (a publisher whose video is off).
STALL_MIN = 0.3
STALL_INTERVALS = 4
STALL_RETRY = 0.75
STALL_FAST_RETRIES = 3
STALL_RETRY_MAX = 8.0
FRAME_INTERVAL_WEIGHT = 0.25  # of each new sample in the usual frame interval (moving average)
FRAME_INTERVAL_SAMPLE_MAX = 5.0
LAYER_PROBE_DELAY = 1.0
"""After a stall ended on a smaller picture, one more keyframe is asked for this much later: the SFU may
have switched to the lowest layer first while a better one is being sent."""
MAX_LAYERS = 10_000


@dataclass(slots=True, frozen=True)
class SegmentStart:
    """Close the open segment (if any) and start the next one with these codec parameters."""

    width: int | None
    height: int | None
    extradata: bytes


MuxItem = Frame | SegmentStart


class StreamPipeline:
    def __init__(
        self,
        spec: StreamSpec,
        container: str,
        segment_seconds: float = 4.0,
        reorder_packets: int = 128,
        reorder_delay: float = 0.15,
    ) -> None:
        self.spec = spec
        self.clock_rate = spec.clock_rate
        self.segment_ticks = round(segment_seconds * spec.clock_rate)
        self._video = spec.kind is MediaKind.VIDEO
        self.reorder: ReorderBuffer[RtpPacket] = ReorderBuffer(reorder_packets, reorder_delay)
        self.assembler = FrameAssembler(
            depacketizer_for(
                spec.codec, sprop_parameter_sets=spec.sprop_parameter_sets, channels=spec.channels
            ),
            spec.kind,
        )
        self.summary = TrackSummary(
            name=spec.name,
            kind=spec.kind,
            codec=spec.codec,
            clock_rate=spec.clock_rate,
            payload_type=spec.payload_type,
            ssrc=spec.ssrc,
            container=container,
        )
        self.malformed = 0
        self.paused = False
        """While true, the ingest edge drops every packet before parsing it: nothing is recorded."""
        self.paused_packets = 0
        self.foreign_packets = 0
        self.unauthenticated_packets = 0
        self.replayed_packets = 0
        """SRTP packets the ingest edge dropped (failed authentication / the replay check)."""
        self._released: list[RtpPacket | Loss] = []
        self._frames: list[Frame] = []
        self._output: list[MuxItem] = []
        self._anchor = 0  # pts = unwrapped rtp timestamp + anchor
        self._first_wall = 0.0
        self._last_pts = -1
        self._last_wall = 0.0
        self._last_rtp: int | None = None
        self._segment_start_pts = 0
        self._segment_keyframe_asked = False
        self._last_keyframe_request = float("-inf")
        self._last_sr_pts = -1
        self._frame_interval = 0.0  # usual seconds between video frames (moving average)
        self._stall_requests = 0  # keyframe requests made during the current stall
        self._next_stall_request = float("-inf")
        self._probe_at = float("inf")
        self._waiting_since: float | None = None  # first tick, while no frame has come yet
        self._layer_size: tuple[int | None, int | None] | None = None  # picture size of the open interval
        self._layer_frames = 0
        self._layer_end = 0.0
        self._keyframe_requests = 0

    # -- input -------------------------------------------------------------------------------------

    def push(self, packet: RtpPacket, now: float) -> None:
        released = self._released
        self.reorder.push(packet, now, released)
        if released:  # _assemble and _place_frames, inlined: this runs for every packet
            frames = self._frames
            assemble = self.assembler.push
            for item in released:
                assemble(item, now, frames)
            released.clear()
            if frames:
                place = self._place
                for frame in frames:
                    place(frame)
                frames.clear()

    def tick(self, now: float) -> None:
        """Timer: give up on overdue holes, and ask for a keyframe when a segment is overdue or the
        video stalled."""
        self.reorder.flush_due(now, self._released)
        if self._released:
            self._assemble(now)
        if self._video and not self.paused:
            self._check_stall(now)

    def finish(self, now: float) -> None:
        """End of stream: everything buffered is released and the last partial frame dropped."""
        self.reorder.drain(self._released)
        self._assemble(now)
        self.assembler.finish(now, self._frames)
        self._place_frames()
        self._update_counters()

    def pause(self, now: float, by: str | None = None, reason: str | None = None) -> None:
        """Stop recording this stream from now on (PCI DSS: nothing of the paused interval is kept)."""
        if self.paused:
            return
        self.paused = True
        self.summary.pauses.append(PauseInterval(start_time=now, by=by, reason=reason))

    def resume(self, now: float) -> None:
        """Record again: the next frame written is a keyframe (one is asked for at once); the packets
        dropped while paused are not losses."""
        if not self.paused:
            return
        self.paused = False
        self.summary.pauses[-1].end_time = now
        self.reorder.drain(self._released)
        self._assemble(now)
        self.reorder = ReorderBuffer(self.reorder.max_packets, self.reorder.max_delay, self.reorder.stats)
        self.assembler.interrupt()
        self._last_keyframe_request = float("-inf")

    def sender_report(self, ntp_time: int, rtp_timestamp: int) -> None:
        """Keep an RTCP SR's NTP<->RTP pair, mapped onto the track timeline, for cross-track sync."""
        if self._last_pts < 0:
            return
        last_rtp = self._last_pts - self._anchor
        delta = (rtp_timestamp - last_rtp) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        pts = self._last_pts + delta
        srs = self.summary.rtcp_sender_reports
        if len(srs) >= MAX_SENDER_REPORTS:
            return
        if self._last_sr_pts < 0 or pts - self._last_sr_pts >= SENDER_REPORT_INTERVAL * self.clock_rate:
            srs.append((ntp_time, pts))
            self._last_sr_pts = pts

    # -- output ------------------------------------------------------------------------------------

    def take_output(self) -> list[MuxItem]:
        out = self._output
        self._output = []
        return out

    def take_keyframe_request(self, now: float) -> bool:
        """True when the caller should send a PLI now (rate-limited)."""
        if (
            not self.assembler.keyframe_needed
            or now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL
        ):
            return False
        self.assembler.keyframe_needed = False
        self._last_keyframe_request = now
        self._keyframe_requests += 1  # into the summary by counters(): no model write per tick
        return True

    def keyframe_request_failed(self) -> None:
        """The request could not be sent (no sender address or SSRC yet): ask again at the next tick."""
        self.assembler.keyframe_needed = True
        self._last_keyframe_request = float("-inf")
        self._keyframe_requests -= 1

    def counters(self) -> TrackSummary:
        self._update_counters()
        return self.summary

    # -- internals ---------------------------------------------------------------------------------

    def _assemble(self, now: float) -> None:
        assembler = self.assembler
        frames = self._frames
        for item in self._released:
            assembler.push(item, now, frames)
        self._released.clear()
        if frames:
            self._place_frames()

    def _place_frames(self) -> None:
        for frame in self._frames:
            self._place(frame)
        self._frames.clear()

    def _place(self, frame: Frame) -> None:
        """Put one frame on the track timeline and decide where segments begin."""
        summary = self.summary
        clock = self.clock_rate
        restarted = self.assembler.discontinuity
        if self._last_pts < 0:
            self._anchor = -frame.rtp_timestamp
            self._first_wall = frame.arrival_time
            summary.first_rtp_timestamp = frame.rtp_timestamp
            summary.first_wallclock = frame.arrival_time
        elif restarted:
            self.assembler.discontinuity = False
            target = max(self._last_pts + 1, round((frame.arrival_time - self._first_wall) * clock))
            self._anchor = target - frame.rtp_timestamp
            self._gap(frame, "restart")
        elif frame.dropped_packets:
            self._gap(frame, "loss")
        pts = frame.rtp_timestamp + self._anchor
        if pts <= self._last_pts:
            pts = self._last_pts + 1  # a sender that reuses or rewinds timestamps; keep order
        frame.pts = pts

        new_segment = self._last_pts < 0 or restarted
        if self._video:
            self._video_frame(frame)
            if frame.keyframe:
                size_changed = self.assembler.width is not None and (
                    summary.width != self.assembler.width or summary.height != self.assembler.height
                )
                if size_changed:
                    summary.width, summary.height = self.assembler.width, self.assembler.height
                if size_changed or pts - self._segment_start_pts >= self.segment_ticks:
                    new_segment = True
            elif pts - self._segment_start_pts >= self.segment_ticks and not self._segment_keyframe_asked:
                # The segment is due but the sender has not sent a keyframe: ask for one.
                self.assembler.keyframe_needed = True
                self._segment_keyframe_asked = True
        elif pts - self._segment_start_pts >= self.segment_ticks:
            new_segment = True
        if new_segment:
            self._segment_start_pts = pts
            self._segment_keyframe_asked = False
            self._output.append(
                SegmentStart(summary.width, summary.height, self.assembler.depacketizer.codec_extradata())
            )

        self._last_pts = pts
        self._last_wall = frame.arrival_time
        self._last_rtp = frame.rtp_timestamp  # into the summary by counters(): no model write per frame
        self._output.append(frame)

    def _video_frame(self, frame: Frame) -> None:
        """A video frame arrived: the usual frame interval, the end of a stall, the picture-size intervals
        (the summary's `layers`; sizes change only at keyframes)."""
        wall = frame.arrival_time
        if self._last_pts >= 0:
            sample = min(wall - self._last_wall, FRAME_INTERVAL_SAMPLE_MAX)
            self._frame_interval += (sample - self._frame_interval) * FRAME_INTERVAL_WEIGHT
        stalled = self._stall_requests > 0
        self._stall_requests = 0
        self._next_stall_request = float("-inf")
        size = (self.assembler.width, self.assembler.height)
        if frame.keyframe and size != self._layer_size:
            layers = self.summary.layers
            if self._layer_size is not None and layers:
                layers[-1].end_time, layers[-1].frames = self._layer_end, self._layer_frames
                if stalled and 0 < _area(size) < _area(self._layer_size):
                    self._probe_at = wall + LAYER_PROBE_DELAY
            if len(layers) < MAX_LAYERS:
                layers.append(LayerInterval(start_time=wall, end_time=wall, width=size[0], height=size[1]))
                self._layer_size, self._layer_frames = size, 0
            else:
                self._layer_size = None  # no room: what follows is not listed
        self._layer_frames += 1
        self._layer_end = wall

    def _check_stall(self, now: float) -> None:
        """Ask for a keyframe when the video stalled (see STALL_MIN) or has not started, or for the probe
        after a stall."""
        if now >= self._probe_at:
            self._probe_at = float("inf")
            self.assembler.keyframe_needed = True
        if self._last_pts < 0:
            # Nothing yet: the sender may not be up, or may have sent its first keyframe before the SFU
            # forwarded to us (Janus's simulcast context then forwards nothing until the next one).
            if self._waiting_since is None:
                self._waiting_since = now
            silent = now - self._waiting_since
        else:
            silent = now - self._last_wall
        if silent < STALL_MIN or silent < STALL_INTERVALS * self._frame_interval:
            return
        if now < self._next_stall_request:
            return
        self.assembler.keyframe_needed = True
        retries = self._stall_requests - STALL_FAST_RETRIES + 1
        self._stall_requests += 1
        delay = STALL_RETRY if retries <= 0 else min(STALL_RETRY_MAX, STALL_RETRY * 2**retries)
        self._next_stall_request = now + delay

    def _gap(self, frame: Frame, reason: str) -> None:
        gaps = self.summary.gaps
        if len(gaps) < MAX_GAPS:
            gaps.append(
                Gap(
                    start_time=self._last_wall,
                    end_time=frame.arrival_time,
                    packets_lost=frame.dropped_packets,
                    reason=reason,
                )
            )

    def _update_counters(self) -> None:
        s = self.summary
        r = self.reorder.stats
        a = self.assembler.stats
        s.packets_received = r.received
        s.packets_lost = r.lost
        s.packets_duplicate = r.duplicates
        s.packets_late = r.late
        s.packets_malformed = self.malformed
        s.packets_paused = self.paused_packets
        s.packets_foreign = self.foreign_packets
        s.packets_unauthenticated = self.unauthenticated_packets
        s.packets_replayed = self.replayed_packets
        s.keyframe_requests = self._keyframe_requests
        if self._last_rtp is not None:
            s.last_rtp_timestamp = self._last_rtp
            s.last_wallclock = self._last_wall
            s.media_seconds = self._last_pts / self.clock_rate
            s.arrival_seconds = self._last_wall - self._first_wall
        s.frames = a.frames
        s.keyframes = a.keyframes
        s.frames_dropped = a.frames_dropped
        if self._layer_size is not None and s.layers:
            s.layers[-1].end_time, s.layers[-1].frames = self._layer_end, self._layer_frames


def _area(size: tuple[int | None, int | None]) -> int:
    return (size[0] or 0) * (size[1] or 0)
