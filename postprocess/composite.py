"""Build a composite: every participant's original tracks decoded onto one wall-clock timeline, tiles
composed into 4:2:0 frames with numpy, audio mixed, encoded with PyAV.

`build_composite(folder, options)` is the library entry point (a worker process pool calls it; see
postprocess.workers). It works one second of call at a time: audio of every participant is decoded and
mixed for that second (levels per output frame feed the active-speaker choice), then each output frame is
composed and encoded. Video is decoded in full (inter-frame codecs) but only the frames that are shown
are scaled, by swscale (PyAV's VideoReformatter), straight into the tile size; tiles whose picture did not
change are not redrawn; the output frame is one reused buffer written in place.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from postprocess.draw import BLACK, Canvas, Plane, blit, draw_label, fill, fill_around, slate
from postprocess.encode import Output, plane_views
from postprocess.inputs import ParticipantInput, RecordingInput, load_recording
from postprocess.layout import LayoutKind, Rect, arrange, fit
from postprocess.mixing import CHANNELS, SAMPLE_RATE, ActiveSpeaker, Limiter, Samples, level_db
from postprocess.options import (
    CompositeError,
    CompositeOptions,
    CompositeResult,
    ParticipantSpan,
)
from postprocess.readers import AudioSource, TrackDecodeError, VideoSource
from postprocess.timeline import TrackClock, TrackTiming, track_clocks
from recorder.models import MediaKind, PauseInterval
from recorder.recording import RecordingInfo

log = logging.getLogger(__name__)

Progress = Callable[[float, float], None]
"""progress(seconds done, seconds in total)."""

SCALER = Interpolation.BILINEAR
HOLD = 2.0  # seconds a frame is held after it (a loss, a late frame) before the tile shows a slate
MAX_DURATION = 24 * 3600.0
CHUNK = 1.0  # seconds of call processed at a time


@dataclass
class _Participant:
    info: ParticipantInput
    start: float  # composite seconds
    end: float
    video: list[VideoSource] = field(default_factory=list)
    video_ends: list[float] = field(default_factory=list)
    audio: list[AudioSource] = field(default_factory=list)
    pauses: list[tuple[float, float]] = field(default_factory=list)
    reformatter: VideoReformatter = field(default_factory=VideoReformatter)
    drawn: object = None  # what the tile shows now, to skip redrawing the same picture
    letterbox: tuple[Rect, Rect] | None = None  # (tile, picture) whose bars are drawn

    @property
    def id(self) -> str:
        return self.info.id

    def paused(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.pauses)


def _intervals(pauses: list[PauseInterval], t0: float, end: float) -> list[tuple[float, float]]:
    return [(p.start_time - t0, (p.end_time if p.end_time is not None else end + t0) - t0) for p in pauses]


def _timing(rec: RecordingInput) -> list[TrackTiming]:
    return [
        TrackTiming(
            name=t.name,
            participant=t.participant,
            clock_rate=t.summary.clock_rate,
            first_wallclock=t.summary.first_wallclock or 0.0,
            sender_reports=tuple(t.summary.rtcp_sender_reports),
            restarts=tuple(g.end_time for g in t.summary.gaps if g.reason == "restart"),
        )
        for t in rec.tracks
    ]


def _track_span(clock: TrackClock, first: float, last: float, kind: MediaKind) -> tuple[float, float]:
    """Wall-clock span of a track: its first frame through its last frame's end."""
    shift = clock.pieces[0].offset - first
    return clock.wall(0.0), last + shift + (0.02 if kind is MediaKind.AUDIO else 0.04)


def _frame_planes(frame: av.VideoFrame) -> tuple[Plane, Plane, Plane]:
    c = plane_views(frame)
    return c.y, c.u, c.v


class _Composer:
    def __init__(
        self, options: CompositeOptions, participants: list[_Participant], pauses: list[tuple[float, float]]
    ) -> None:
        self.options = options
        self.width, self.height = options.profile.size
        self.participants = participants
        self.pauses = pauses
        self.canvas = Canvas(
            np.empty((self.height, self.width), np.uint8),
            np.empty((self.height // 2, self.width // 2), np.uint8),
            np.empty((self.height // 2, self.width // 2), np.uint8),
        )
        fill(self.canvas, Rect(0, 0, self.width, self.height), BLACK)
        self.speaker = ActiveSpeaker()
        self._layout_key: object = None
        self._tiles: dict[str, Rect] = {}
        self._full: object = None

    def compose(self, t: float, levels: dict[str, float]) -> Canvas:
        canvas = self.canvas
        whole = Rect(0, 0, self.width, self.height)
        if any(a <= t < b for a, b in self.pauses):
            self._show_full(whole, "Recording paused", "nothing was recorded")
            return canvas
        present = [p for p in self.participants if p.start <= t < p.end]
        if not present:
            self._show_full(whole, "Waiting for participants", "")
            return canvas
        self._full = None
        active = self.speaker.update({p.id: levels.get(p.id, -90.0) for p in present}, t)
        kind = self.options.layout
        key = (tuple(p.id for p in present), active if kind in (LayoutKind.SPEAKER, LayoutKind.PIP) else None)
        if key != self._layout_key:
            self._layout_key = key
            self._tiles = arrange(kind, [p.id for p in present], active, self.width, self.height)
            fill(canvas, whole, BLACK)
            for p in self.participants:
                p.drawn = p.letterbox = None
        multi = len(present) > 1
        # Picture-in-picture insets are drawn after the main picture they sit on.
        for p in sorted(present, key=lambda p: 0 if self._tiles.get(p.id) == whole else 1):
            tile = self._tiles.get(p.id)
            if tile is not None:
                self._draw_tile(p, tile, t, marker=multi and p.id == active and kind is LayoutKind.GRID)
        return canvas

    def _show_full(self, whole: Rect, title: str, subtitle: str) -> None:
        if self._full != title:
            blit(self.canvas, whole, slate(whole.w, whole.h, title, subtitle))
            self._full = title
            self._layout_key = None

    def _draw_tile(self, p: _Participant, tile: Rect, t: float, marker: bool) -> None:
        canvas = self.canvas
        frame: av.VideoFrame | None = None
        shown: tuple[str, float] | None = None
        for source, end in zip(p.video, p.video_ends, strict=True):
            f, ft = source.at(t)
            if f is not None and t - ft <= HOLD and t <= end + HOLD and (shown is None or ft > shown[1]):
                frame, shown = f, (source.name, ft)
        if p.paused(t):
            frame, content = None, "Recording paused"
        elif frame is not None:
            content = ""
        else:
            content = "Camera off" if p.video else "Audio only"
        key = (shown if frame is not None else content, tile, marker)
        if key == p.drawn:
            return  # the same picture in the same place
        if frame is not None:
            inner = fit(frame.width, frame.height, tile)
            if inner.empty:
                return
            if frame.format.name == "yuv420p" and (frame.width, frame.height) == (inner.w, inner.h):
                blit(canvas, inner, _frame_planes(frame))  # the tile is the camera's size: no scaling
            else:
                scaled = p.reformatter.reformat(
                    frame,
                    width=inner.w,
                    height=inner.h,
                    format="yuv420p",
                    interpolation=Interpolation.BILINEAR,
                )
                blit(canvas, inner, _frame_planes(scaled))
            if p.letterbox != (tile, inner):
                fill_around(canvas, tile, inner, BLACK)
                p.letterbox = (tile, inner)
        else:
            blit(canvas, tile, slate(tile.w, tile.h, p.info.name, content))
            p.letterbox = None
        if self.options.names:
            draw_label(canvas, tile, p.info.name, marker)
        p.drawn = key


def build_composite(
    folder: Path,
    options: CompositeOptions | None = None,
    info: RecordingInfo | None = None,
    progress: Progress | None = None,
) -> CompositeResult:
    """Compose the recording in `folder` into one file. Raises CompositeError for unusable input."""
    started = time.monotonic()
    options = options or CompositeOptions()
    folder = Path(folder)
    rec = load_recording(folder, info)
    clocks, warnings = track_clocks(_timing(rec))
    warnings = rec.warnings + warnings

    spans: dict[str, tuple[float, float]] = {}
    for track in rec.tracks:
        s = track.summary
        assert s.first_wallclock is not None
        spans[track.name] = _track_span(
            clocks[track.name], s.first_wallclock, s.last_wallclock or s.first_wallclock, s.kind
        )
    t0 = min(a for a, _ in spans.values())
    t_end = max(b for _, b in spans.values())
    window_start = options.start or 0.0
    window_end = min(t_end - t0, options.end) if options.end is not None else t_end - t0
    duration = window_end - window_start
    if duration <= 0:
        raise CompositeError(
            f"{folder}: nothing to compose between {window_start:.3f} s and {window_end:.3f} s"
        )
    if duration > MAX_DURATION:
        raise CompositeError(
            f"{folder}: the track timings span {duration:.0f} s, more than {MAX_DURATION:.0f} s"
        )

    participants: list[_Participant] = []
    base = t0 + window_start  # composite time 0
    try:
        for pin in rec.participants:
            p_spans = [spans[t.name] for t in pin.tracks]
            p = _Participant(pin, min(a for a, _ in p_spans) - base, max(b for _, b in p_spans) - base)
            for track in pin.tracks:
                p.pauses += _intervals(track.summary.pauses, base, t_end)
                if track.kind is MediaKind.VIDEO:
                    if not options.audio_only:
                        p.video.append(VideoSource(track, clocks[track.name], base))
                        p.video_ends.append(spans[track.name][1] - base)
                else:
                    p.audio.append(AudioSource(track, clocks[track.name], base))
            participants.append(p)
        participants.sort(key=lambda p: (p.start, p.id))
        return _render(folder, options, rec, participants, _intervals(rec.pauses, base, t_end), duration,
                       base, clocks, warnings, started, progress)  # fmt: skip
    except TrackDecodeError as exc:
        raise CompositeError(f"{folder}: {exc}") from exc
    finally:
        for p in participants:
            for v in p.video:
                v.close()
            for a in p.audio:
                a.close()


def _mute(buf: Samples, pauses: list[tuple[float, float]], start: int) -> None:
    """Silence the parts of `buf` (samples from `start`) inside the pause intervals (seconds)."""
    for p_start, p_end in pauses:
        lo = max(start, round(p_start * SAMPLE_RATE))
        hi = min(start + len(buf), round(p_end * SAMPLE_RATE))
        if lo < hi:
            buf[lo - start : hi - start] = 0.0


def _render(
    folder: Path,
    options: CompositeOptions,
    rec: RecordingInput,
    participants: list[_Participant],
    pauses: list[tuple[float, float]],
    duration: float,
    base: float,
    clocks: dict[str, TrackClock],
    warnings: list[str],
    started: float,
    progress: Progress | None,
) -> CompositeResult:
    out_path = Path(options.out) if options.out else folder / f"composite.{options.extension}"
    tmp = out_path.with_name(out_path.name + ".part")
    size = options.profile.size
    output = Output(tmp, options, size)
    composer = None if options.audio_only else _Composer(options, participants, pauses)
    limiter = Limiter()
    fps = options.fps
    total_frames = math.ceil(duration * fps - 1e-9)
    total_samples = round(duration * SAMPLE_RATE)
    frame_index = 0
    try:
        chunk_start = 0
        while chunk_start < total_samples:
            chunk_end = min(total_samples, chunk_start + round(CHUNK * SAMPLE_RATE))
            n = chunk_end - chunk_start
            mix = np.zeros((n, CHANNELS), np.float32)
            per_participant: dict[str, Samples] = {}
            for p in participants:
                if not p.audio:
                    continue
                buf = np.zeros((n, CHANNELS), np.float32)
                for a in p.audio:
                    a.read_into(buf, chunk_start)
                _mute(buf, p.pauses, chunk_start)
                per_participant[p.id] = buf
                mix += buf
            _mute(mix, pauses, chunk_start)
            output.write_audio(limiter.process(mix))
            if composer is not None:
                while frame_index < total_frames:
                    t = frame_index / fps
                    slot = round(t * SAMPLE_RATE)
                    if slot >= chunk_end and chunk_end < total_samples:
                        break
                    slot_end = min(chunk_end, slot + SAMPLE_RATE // fps)
                    levels = {
                        pid: level_db(buf[max(0, slot - chunk_start) : max(0, slot_end - chunk_start)])
                        for pid, buf in per_participant.items()
                    }
                    output.write_video(composer.compose(t, levels), frame_index)
                    frame_index += 1
            chunk_start = chunk_end
            if progress is not None:
                progress(chunk_end / SAMPLE_RATE, duration)
        output.write_audio(limiter.flush())
        output.close()
    except BaseException:
        output.abort()
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out_path)
    for p in participants:
        sources: list[VideoSource | AudioSource] = [*p.video, *p.audio]
        for source in sources:
            warnings += [f"track {source.name}: {problem}" for problem in source.problems]
            damaged = source.errors - len(source.problems)
            if damaged:
                warnings.append(f"track {source.name}: {damaged} damaged packets skipped")
    return CompositeResult(
        path=out_path,
        format=options.format,
        audio_only=options.audio_only,
        layout=options.layout,
        width=0 if options.audio_only else size[0],
        height=0 if options.audio_only else size[1],
        fps=0 if options.audio_only else fps,
        started_at=base,
        duration=duration,
        video_frames=frame_index,
        participants=[
            ParticipantSpan(id=p.id, name=p.info.name, start=p.start, end=p.end, video=bool(p.info.video))
            for p in participants
        ],
        sync={name: c.source for name, c in clocks.items()},
        warnings=warnings,
        elapsed=time.monotonic() - started,
    )
