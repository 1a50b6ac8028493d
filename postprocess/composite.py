"""Build a composite: every participant's original tracks decoded onto one wall-clock timeline, tiles
composed into 4:2:0 frames with numpy, audio mixed, encoded with PyAV.

`build_composite(folder, options)` is the library entry point (a worker process pool calls it; see
postprocess.workers). It runs in two kinds of pass at once:

- the audio pass (this thread) decodes and mixes one second of every participant's audio at a time,
  limits and encodes it, and measures each participant's level per output frame, from which the active
  speaker of every frame is chosen (the speaker and pip layouts, the grid's marker);
- video parts: the call's frames split into consecutive runs, each composed and encoded on its own
  thread by its own encoder. On a machine with several cores and an encoder whose parts concatenate (x264
  ultrafast), there is one part per core, each decoded from a keyframe near its start (the keyframes are
  found by one demuxing pass) and encoded single-threaded; otherwise one part, with the encoder's threads.

`postprocess.encode.assemble` then copies the parts into the output file. Video is decoded in full
(inter-frame codecs) but only the frames that are shown are scaled, by swscale (PyAV's VideoReformatter),
straight into the tile size; tiles whose picture did not change are not redrawn; the output frame is one
reused buffer written in place; text is rendered once (postprocess.text) and only blended per frame.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from postprocess.draw import (
    BLACK,
    INSET_EDGE,
    Canvas,
    Overlays,
    Plane,
    blit,
    draw_label,
    fill,
    fill_around,
    outline,
)
from postprocess.encode import AudioOutput, VideoPart, assemble, part_format, plane_views, splittable
from postprocess.inputs import ParticipantInput, RecordingInput, TrackInput, load_recording
from postprocess.layout import LayoutKind, Rect, arrange, fit
from postprocess.mixing import CHANNELS, SAMPLE_RATE, ActiveSpeaker, Limiter, Samples, level_db
from postprocess.options import (
    CompositeError,
    CompositeOptions,
    CompositeResult,
    ParticipantSpan,
)
from postprocess.readers import AudioSource, TrackDecodeError, VideoIndex, VideoSource, index_video
from postprocess.text import Sprite, clock, clock_size, notice, slate
from postprocess.timeline import TrackClock, TrackTiming, track_clocks
from recorder.models import MediaKind, PauseInterval
from recorder.recording import RecordingInfo

log = logging.getLogger(__name__)

Progress = Callable[[float, float], None]
"""progress(seconds done, seconds in total)."""

SCALER = Interpolation.BILINEAR
HOLD = 2.0  # seconds a frame is held after it (a loss, a late frame) before the tile shows a slate
MAX_DURATION = 24 * 3600.0
CHUNK = 1.0  # seconds of audio processed at a time
NOTICE = 3.0  # seconds a 'joined' or 'left' notice stays on screen
MIN_PART = 8.0  # seconds: shorter calls are composed in one part
SEARCH = 0.25  # a part boundary may move this share of a part's length to meet keyframes


@dataclass
class _VideoTrack:
    track: TrackInput
    clock: TrackClock
    end: float  # composite seconds of its last frame's end
    index: VideoIndex | None = None
    keyframes: list[float] = field(default_factory=list)  # composite seconds


@dataclass
class _Participant:
    info: ParticipantInput
    start: float  # composite seconds
    end: float
    video: list[_VideoTrack] = field(default_factory=list)
    audio: list[tuple[TrackInput, TrackClock]] = field(default_factory=list)
    pauses: list[tuple[float, float]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.info.id

    def paused(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.pauses)


@dataclass
class _Call:
    """Everything the passes share (read-only once built)."""

    options: CompositeOptions
    participants: list[_Participant]
    pauses: list[tuple[float, float]]  # the whole recording's
    duration: float
    base: float  # wall clock (Unix seconds) of composite time 0
    fps: int
    total_frames: int


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


# -- the active speaker of every frame, from the audio pass ---------------------------------------------


class _Speakers:
    """The active speaker of each output frame, as the audio pass finds them; video parts wait for the
    frames they compose. Not needed (always None) for the side-by-side layout."""

    def __init__(self, needed: bool) -> None:
        self.needed = needed
        self._values: list[str | None] = []
        self._done = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    def put(self, value: str | None) -> None:
        if self.needed:
            with self._cond:
                self._values.append(value)
                self._cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._done = True
            self._error = error
            self._cond.notify_all()

    def get(self, index: int) -> str | None:
        if not self.needed:
            return None
        with self._cond:
            while len(self._values) <= index and not self._done:
                self._cond.wait()
            if index < len(self._values):
                return self._values[index]
            raise self._error or RuntimeError("the audio pass ended early")


# -- composing frames ---------------------------------------------------------------------------------


def overlay_margin(height: int) -> int:
    return max(2, round(height / 60)) & ~1


def clock_place(width: int, height: int, sprite: Sprite) -> tuple[int, int]:
    """Top left corner of the clock: the frame's top right corner, inside a margin."""
    m = overlay_margin(height)
    return (width - sprite.width - m) & ~1, m


@dataclass
class _Tile:
    """A participant as one video part sees it: their decoders and what their tile shows now."""

    p: _Participant
    video: list[VideoSource]
    reformatter: VideoReformatter = field(default_factory=VideoReformatter)
    drawn: object = None  # what the tile shows now, to skip redrawing the same picture
    letterbox: tuple[Rect, Rect] | None = None  # (tile, picture) whose bars are drawn

    @property
    def id(self) -> str:
        return self.p.id


class _Composer:
    def __init__(self, call: _Call, tiles: list[_Tile]) -> None:
        self.call = call
        self.options = call.options
        self.width, self.height = call.options.profile.size
        self.tiles = tiles
        self.canvas = Canvas(
            np.empty((self.height, self.width), np.uint8),
            np.empty((self.height // 2, self.width // 2), np.uint8),
            np.empty((self.height // 2, self.width // 2), np.uint8),
        )
        fill(self.canvas, Rect(0, 0, self.width, self.height), BLACK)
        self.overlays = Overlays(self.canvas)
        self.margin = overlay_margin(self.height)
        self._layout_key: object = None
        self._rects: dict[str, Rect] = {}
        self._full: object = None

    def compose(self, t: float, active: str | None) -> Canvas:
        self.overlays.restore()
        self._compose(t, active)
        self._overlay(t)
        return self.canvas

    def _compose(self, t: float, active: str | None) -> None:
        whole = Rect(0, 0, self.width, self.height)
        if any(a <= t < b for a, b in self.call.pauses):
            self._show_full(whole, "Recording paused", "nothing was recorded")
            return
        present = [tile for tile in self.tiles if tile.p.start <= t < tile.p.end]
        if not present:
            self._show_full(whole, "Waiting for participants", "")
            return
        self._full = None
        kind = self.options.layout
        key = (tuple(p.id for p in present), active if kind in (LayoutKind.SPEAKER, LayoutKind.PIP) else None)
        if key != self._layout_key:
            self._layout_key = key
            self._rects = arrange(kind, [p.id for p in present], active, self.width, self.height)
            fill(self.canvas, whole, BLACK)
            for tile in self.tiles:
                tile.drawn = tile.letterbox = None
        multi = len(present) > 1
        # Picture-in-picture insets are drawn after the main picture they sit on.
        for tile in sorted(present, key=lambda p: 0 if self._rects.get(p.id) == whole else 1):
            rect = self._rects.get(tile.id)
            if rect is not None:
                self._draw_tile(tile, rect, t, marker=multi and tile.id == active and kind is LayoutKind.GRID)

    def _overlay(self, t: float) -> None:
        """The UTC clock (top right) and join/leave notices (top left), over whatever is shown."""
        options, m = self.options, self.margin
        if options.timestamp:
            sprite = clock(math.floor(self.call.base + t), clock_size(self.height))
            self.overlays.draw(sprite, *clock_place(self.width, self.height, sprite))
        if options.names:
            y = m
            size = clock_size(self.height)
            for tile in self.tiles:
                p = tile.p
                for at, joined in ((p.start, True), (p.end, False)):
                    if (
                        not at <= t < at + NOTICE
                        or (joined and at < 0.5)
                        or (not joined and at > self.call.duration - 0.5)
                    ):
                        continue
                    sprite = notice(p.info.name, p.info.role, joined, size, self.width // 2)
                    self.overlays.draw(sprite, m, y)
                    y += sprite.height + m // 2

    def _show_full(self, whole: Rect, title: str, subtitle: str) -> None:
        if self._full != title:
            blit(self.canvas, whole, slate(whole.w, whole.h, title, subtitle))
            self._full = title
            self._layout_key = None

    def _draw_tile(self, tile: _Tile, rect: Rect, t: float, marker: bool) -> None:
        canvas = self.canvas
        p = tile.p
        frame: av.VideoFrame | None = None
        shown: tuple[str, float] | None = None
        for source, track in zip(tile.video, p.video, strict=True):
            f, ft = source.at(t)
            if f is None or t - ft > HOLD or t > track.end + HOLD:
                continue
            if shown is None or ft > shown[1]:
                frame, shown = f, (source.name, ft)
        if p.paused(t):
            frame, content = None, "Recording paused"
        elif frame is not None:
            content = ""
        else:
            content = "Camera off" if p.video else "Audio only"
        key = (shown if frame is not None else content, rect, marker)
        if key == tile.drawn:
            return  # the same picture in the same place
        if frame is not None:
            inner = fit(frame.width, frame.height, rect)
            if inner.empty:
                return
            if frame.format.name == "yuv420p" and (frame.width, frame.height) == (inner.w, inner.h):
                blit(canvas, inner, _frame_planes(frame))  # the tile is the camera's size: no scaling
            else:
                scaled = tile.reformatter.reformat(
                    frame, width=inner.w, height=inner.h, format="yuv420p", interpolation=SCALER
                )
                blit(canvas, inner, _frame_planes(scaled))
            if tile.letterbox != (rect, inner) or self.options.names:  # the label may lie on the bars
                fill_around(canvas, rect, inner, BLACK)
                tile.letterbox = (rect, inner)
        else:
            blit(canvas, rect, slate(rect.w, rect.h, p.info.name, content, p.info.role, avatar=True))
            tile.letterbox = None
        if self.options.layout is LayoutKind.PIP and (rect.w, rect.h) != (self.width, self.height):
            outline(canvas, rect, INSET_EDGE, max(2, self.height // 360))
        if self.options.names:
            draw_label(canvas, rect, p.info.name, p.info.role, marker)
        tile.drawn = key


# -- parts ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    first: int  # frame indices [first, last)
    last: int


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _decode_waste(call: _Call, t: float) -> float:
    """Seconds of video decoded only to reach time t from the keyframes before it, over every track."""
    waste = 0.0
    for p in call.participants:
        for v in p.video:
            first = v.keyframes[0] if v.keyframes else None
            if first is None or t < first or t >= v.end:
                continue
            waste += t - v.keyframes[bisect.bisect_right(v.keyframes, t) - 1]
    return waste


def _plan_parts(call: _Call, wanted: int) -> list[_Part]:
    """`wanted` runs of frames of about equal length, each boundary moved (within SEARCH of a part's
    length) to where the fewest frames must be decoded before it (right after keyframes)."""
    n, fps = call.total_frames, call.fps
    if wanted <= 1 or call.duration < MIN_PART * 2:
        return [_Part(0, n)]
    wanted = min(wanted, int(call.duration // MIN_PART))
    length = call.duration / wanted
    candidates = sorted({k for p in call.participants for v in p.video for k in v.keyframes})
    cuts = [0]
    for i in range(1, wanted):
        target = i * length
        near = [target] + [k for k in candidates if abs(k - target) <= SEARCH * length]
        best = min(near, key=lambda c: (round(_decode_waste(call, math.ceil(c * fps - 1e-9) / fps), 3),
                                        abs(c - target)))  # fmt: skip
        cut = min(n, max(cuts[-1] + 1, math.ceil(best * fps - 1e-9)))
        cuts.append(cut)
    cuts.append(n)
    return [_Part(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _render_part(
    call: _Call,
    part: _Part,
    path: Path,
    speakers: _Speakers,
    threads: int | None,
    decoder_threads: str,
    stop: threading.Event,
    sources: list[VideoSource],
    composed: list[int],
    number: int,
) -> None:
    """Compose and encode frames part.first.. into `path`; composed[number] counts them."""
    options = call.options
    start = part.first / call.fps
    tiles = []
    for p in call.participants:
        video = []
        for v in p.video:
            skip_to = None
            if part.first > 0 and v.index is not None and v.index.complete and v.keyframes:
                i = bisect.bisect_right(v.keyframes, start) - 1
                if i >= 0:
                    skip_to = v.index.keyframes[i]
            source = VideoSource(v.track, v.clock, call.base, v.index, skip_to, decoder_threads)
            sources.append(source)
            video.append(source)
        tiles.append(_Tile(p, video))
    composer = _Composer(call, tiles)
    output = VideoPart(path, options, options.profile.size, threads)
    try:
        for index in range(part.first, part.last):
            if stop.is_set():
                raise RuntimeError("stopped")
            t = index / call.fps
            output.write(composer.compose(t, speakers.get(index)), index)
            composed[number] += 1
        output.close()
    except BaseException:
        output.abort()
        raise
    finally:
        for tile in tiles:
            for source in tile.video:
                source.close()


# -- the whole composite ------------------------------------------------------------------------------


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

    base = t0 + window_start  # composite time 0
    participants: list[_Participant] = []
    for pin in rec.participants:
        p_spans = [spans[t.name] for t in pin.tracks]
        p = _Participant(pin, min(a for a, _ in p_spans) - base, max(b for _, b in p_spans) - base)
        for track in pin.tracks:
            p.pauses += _intervals(track.summary.pauses, base, t_end)
            if track.kind is MediaKind.VIDEO:
                if not options.audio_only:
                    p.video.append(_VideoTrack(track, clocks[track.name], spans[track.name][1] - base))
            else:
                p.audio.append((track, clocks[track.name]))
        participants.append(p)
    participants.sort(key=lambda p: (p.start, p.id))
    fps = options.fps
    call = _Call(options, participants, _intervals(rec.pauses, base, t_end), duration, base, fps,
                 0 if options.audio_only else math.ceil(duration * fps - 1e-9))  # fmt: skip
    try:
        return _render(folder, call, rec, clocks, warnings, started, progress)
    except TrackDecodeError as exc:
        raise CompositeError(f"{folder}: {exc}") from exc


def _mute(buf: Samples, pauses: list[tuple[float, float]], start: int) -> None:
    """Silence the parts of `buf` (samples from `start`) inside the pause intervals (seconds)."""
    for p_start, p_end in pauses:
        lo = max(start, round(p_start * SAMPLE_RATE))
        hi = min(start + len(buf), round(p_end * SAMPLE_RATE))
        if lo < hi:
            buf[lo - start : hi - start] = 0.0


def _audio_pass(
    call: _Call,
    audio: list[tuple[_Participant, AudioSource]],
    output: AudioOutput,
    speakers: _Speakers,
    stop: threading.Event,
    tick: Callable[[], None],
) -> None:
    """Mix, limit and encode the audio; choose the active speaker of every output frame."""
    limiter = Limiter()
    speaker = ActiveSpeaker()
    fps, total_frames = call.fps, call.total_frames
    total_samples = round(call.duration * SAMPLE_RATE)
    frame_index = 0
    chunk_start = 0
    while chunk_start < total_samples:
        if stop.is_set():
            raise RuntimeError("stopped")
        chunk_end = min(total_samples, chunk_start + round(CHUNK * SAMPLE_RATE))
        n = chunk_end - chunk_start
        mix = np.zeros((n, CHANNELS), np.float32)
        per_participant: dict[str, Samples] = {}
        for p in call.participants:
            sources = [a for q, a in audio if q is p]
            if not sources:
                continue
            buf = np.zeros((n, CHANNELS), np.float32)
            for a in sources:
                a.read_into(buf, chunk_start)
            _mute(buf, p.pauses, chunk_start)
            per_participant[p.id] = buf
            mix += buf
        _mute(mix, call.pauses, chunk_start)
        output.write(limiter.process(mix))
        while frame_index < total_frames:
            t = frame_index / fps
            slot = round(t * SAMPLE_RATE)
            if slot >= chunk_end and chunk_end < total_samples:
                break
            active = None
            if speakers.needed and not any(a <= t < b for a, b in call.pauses):
                present = [p for p in call.participants if p.start <= t < p.end]
                if present:
                    slot_end = min(chunk_end, slot + SAMPLE_RATE // fps)
                    lo, hi = max(0, slot - chunk_start), max(0, slot_end - chunk_start)
                    levels = {pid: level_db(buf[lo:hi]) for pid, buf in per_participant.items()}
                    active = speaker.update({p.id: levels.get(p.id, -90.0) for p in present}, t)
            speakers.put(active)
            frame_index += 1
        chunk_start = chunk_end
        tick()
    output.write(limiter.flush())


def _render(
    folder: Path,
    call: _Call,
    rec: RecordingInput,
    clocks: dict[str, TrackClock],
    warnings: list[str],
    started: float,
    progress: Progress | None,
) -> CompositeResult:
    options = call.options
    out_path = Path(options.out) if options.out else folder / f"composite.{options.extension}"
    tmp = out_path.with_name(out_path.name + ".part")
    size = options.profile.size
    audio_sources = [(p, AudioSource(t, c, call.base)) for p in call.participants for t, c in p.audio]
    video_sources: list[VideoSource] = []
    parts: list[_Part] = []
    part_paths: list[Path] = []
    audio_path = tmp
    futures: list[Future[None]] = []
    stop = threading.Event()
    speakers = _Speakers(options.layout is not LayoutKind.SIDE_BY_SIDE and not options.audio_only)
    pool: ThreadPoolExecutor | None = None
    composed: list[int] = []
    try:
        if not options.audio_only:
            cores = options.parallel or _cores()
            if splittable(options) and cores > 1:
                for p in call.participants:
                    for v in p.video:
                        v.index = index_video(v.track)
                        v.keyframes = [v.clock.wall(k) - call.base for k in v.index.keyframes]
            tracks = [v for p in call.participants for v in p.video]
            indexed = all(v.index is not None and v.index.complete for v in tracks)
            parts = _plan_parts(call, cores if indexed else 1)
            threads = 1 if len(parts) > 1 else None
            decoder_threads = "NONE" if len(parts) > 1 else "AUTO"
            fmt = part_format(options)
            part_paths = [tmp.with_name(f"{tmp.name}.v{i}.{fmt}") for i in range(len(parts))]
            audio_path = tmp.with_name(f"{tmp.name}.a.{fmt}")
            pool = ThreadPoolExecutor(len(parts), thread_name_prefix="composite-part")
            composed = [0] * len(parts)
            futures = [
                pool.submit(
                    _render_part,
                    call,
                    part,
                    path,
                    speakers,
                    threads,
                    decoder_threads,
                    stop,
                    video_sources,
                    composed,
                    i,
                )
                for i, (part, path) in enumerate(zip(parts, part_paths, strict=True))
            ]
        container = ("mp4" if options.format.value == "mp4" else "webm") if options.audio_only else None
        output = AudioOutput(audio_path, options, container or part_format(options))
        last_report = [0.0]

        def tick() -> None:
            if progress is None:
                return
            now = time.monotonic()
            if now - last_report[0] >= 0.25:
                last_report[0] = now
                if call.total_frames:
                    progress(sum(composed) / call.fps, call.duration)
                else:
                    progress(min(call.duration, output.samples / SAMPLE_RATE), call.duration)

        try:
            _audio_pass(call, audio_sources, output, speakers, stop, tick)
            output.close()
            speakers.finish()
        except BaseException as exc:
            speakers.finish(exc)
            output.abort()
            raise
        while futures:
            done, _ = wait(futures, timeout=0.25, return_when=FIRST_EXCEPTION)
            for f in done:
                f.result()  # raises what the part raised
            futures = [f for f in futures if not f.done()]
            tick()
        if part_paths:
            assemble(tmp, options, part_paths, audio_path)
    except BaseException:
        stop.set()
        speakers.finish(RuntimeError("stopped"))
        for f in futures:
            with contextlib.suppress(BaseException):
                f.result()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        for path in part_paths:
            path.unlink(missing_ok=True)
        if audio_path != tmp:
            audio_path.unlink(missing_ok=True)
        for _, a in audio_sources:
            a.close()
    tmp.replace(out_path)
    if progress is not None:
        progress(call.duration, call.duration)
    sources: list[VideoSource | AudioSource] = [*video_sources, *(a for _, a in audio_sources)]
    damaged: dict[str, int] = {}
    for source in sources:
        warnings += [f"track {source.name}: {problem}" for problem in source.problems]
        count = source.errors - len(source.problems)
        if count:
            damaged[source.name] = damaged.get(source.name, 0) + count
    warnings += [f"track {name}: {count} damaged packets skipped" for name, count in damaged.items()]
    return CompositeResult(
        path=out_path,
        format=options.format,
        audio_only=options.audio_only,
        layout=options.layout,
        width=0 if options.audio_only else size[0],
        height=0 if options.audio_only else size[1],
        fps=0 if options.audio_only else call.fps,
        started_at=call.base,
        duration=call.duration,
        video_frames=call.total_frames,
        parts=max(1, len(parts)),
        participants=[
            ParticipantSpan(
                id=p.id,
                name=p.info.name,
                role=p.info.role,
                start=p.start,
                end=p.end,
                video=bool(p.info.video),
            )
            for p in call.participants
        ],
        sync={name: c.source for name, c in clocks.items()},
        warnings=list(dict.fromkeys(warnings)),
        elapsed=time.monotonic() - started,
    )
