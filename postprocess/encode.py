"""The composite's output: encoders writing parts, and the final file assembled from them.

The video of a composite is encoded in one or more parts (consecutive runs of frames, each starting with a
keyframe), each by its own encoder into its own file, and the audio mix into another; `assemble` then
copies their packets, interleaved by time, into the output container (no re-encoding). Parts of an H.264
stream without frame reordering (x264 ultrafast: no B-frames) concatenate into one valid stream when their
encoders share settings, so parts can be encoded at the same time, each by a single-threaded x264: that
keeps every core busy with less overhead than x264's own threads (postprocess/composite.py decides).

Video encoding runs on its own thread per part, fed through a short queue, so composing frame n+1 overlaps
encoding frame n (PyAV releases the GIL while the encoders work). Video frames come from a small pool: the
composer copies its canvas into the next free pool frame, and the queue is short enough that a pool frame
is never rewritten while the encoder may still read it.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from postprocess.draw import Canvas
from postprocess.mixing import SAMPLE_RATE, Samples
from postprocess.options import CompositeOptions, OutputFormat

QUEUE = 4  # items waiting for the encoder thread
POOL = QUEUE + 3  # video frames: queued, being encoded, being filled, one spare


def encoder_threads(options: CompositeOptions) -> str:
    """Thread type for a video encoder that has the machine to itself. PyAV opens encoders with slice
    threads; x264's frame threads give more throughput from veryfast on (about 12% here), slice threads
    at ultrafast (about 6%)."""
    return "SLICE" if options.format is OutputFormat.MP4 and options.preset == "ultrafast" else "FRAME"


def splittable(options: CompositeOptions) -> bool:
    """Whether the video can be encoded in parts at once: H.264 from x264 without B-frames (ultrafast)."""
    return options.format is OutputFormat.MP4 and options.preset == "ultrafast" and not options.audio_only


def part_format(options: CompositeOptions) -> str:
    """Container of the parts: NUT keeps every stream's own time base (exact timestamps), Matroska is what
    WebM is."""
    return "nut" if options.format is OutputFormat.MP4 else "matroska"


_STOP = object()


def plane_views(frame: av.VideoFrame) -> Canvas:
    """Writable numpy views of a yuv420p frame's planes (line padding cut off)."""
    views = []
    for i, plane in enumerate(frame.planes):
        w = frame.width if i == 0 else frame.width // 2
        h = frame.height if i == 0 else frame.height // 2
        buf = np.frombuffer(plane, np.uint8)  # type: ignore[call-overload]
        views.append(buf.reshape(-1, plane.line_size)[:h, :w])
    return Canvas(views[0], views[1], views[2])


def _video_codec(options: CompositeOptions, threads: int) -> tuple[str, dict[str, str]]:
    if options.format is OutputFormat.MP4:
        return "libx264", {
            "preset": options.preset,
            "threads": str(threads),  # 0: x264 picks (1.5 threads per core)
            "maxrate": str(options.bitrate * 3 // 2),
            "bufsize": str(options.bitrate * 2),
        }
    n = str(threads or os.cpu_count() or 1)
    if options.webm_codec == "vp9":
        return "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "threads": n,
                              "tile-columns": "2"}  # fmt: skip
    return "libvpx", {"deadline": "realtime", "cpu-used": "8", "threads": n}


class VideoPart:
    """Frames `first`.. of the composite's video, encoded into `path` on the part's own encoder thread.
    `threads`: the encoder's threads (0: its choice; 1: single-threaded, for parts encoded at once)."""

    def __init__(
        self, path: Path, options: CompositeOptions, size: tuple[int, int], threads: int | None = None
    ) -> None:
        self.path = path
        self.container = av.open(str(path), "w", format=part_format(options))
        threads = options.threads if threads is None else threads
        codec, codec_options = _video_codec(options, threads)
        video = self.container.add_stream(codec, rate=options.fps, options=codec_options)
        assert isinstance(video, av.VideoStream)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.bit_rate = options.bitrate
        video.codec_context.gop_size = options.fps * 2
        if threads != 1:
            video.codec_context.thread_type = encoder_threads(options)
        self.video = video
        self.frames = 0  # encoded so far (progress)
        self._pool: list[tuple[av.VideoFrame, Canvas]] = []
        for _ in range(POOL):
            frame = av.VideoFrame(size[0], size[1], "yuv420p")
            self._pool.append((frame, plane_views(frame)))
        self._next = 0
        self._queue: queue.Queue[object] = queue.Queue(QUEUE)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"composite-encoder {path.name}", daemon=True)
        self._thread.start()

    def write(self, canvas: Canvas, index: int) -> None:
        """Copy the canvas into the next pool frame and queue it as frame `index` of the composite."""
        frame, views = self._pool[self._next]
        self._next = (self._next + 1) % len(self._pool)
        np.copyto(views.y, canvas.y)
        np.copyto(views.u, canvas.u)
        np.copyto(views.v, canvas.v)
        frame.pts = index
        self._put(frame)

    def close(self) -> None:
        """Flush the encoder and finish the file; raises what the encoder thread hit."""
        self._put(_STOP)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self.container.close()

    def abort(self) -> None:
        """Stop without finishing the file (after an error)."""
        self._error = self._error or RuntimeError("aborted")
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join(timeout=30)
        with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
            self.container.close()

    def _put(self, item: object) -> None:
        while True:
            if self._error is not None and item is not _STOP:
                raise self._error
            if not self._thread.is_alive():
                return
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        mux = self.container.mux
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    if self._error is None:
                        mux(self.video.encode(None))
                    return
                if self._error is not None:
                    continue  # aborting: drain without encoding
                assert isinstance(item, av.VideoFrame)
                mux(self.video.encode(item))
                self.frames += 1
        except BaseException as exc:
            self._error = exc


class AudioOutput:
    """The audio mix, encoded into `path`: a part (`container` the part format) or, for an audio-only
    composite, the output itself."""

    def __init__(self, path: Path, options: CompositeOptions, container: str) -> None:
        self.path = path
        mp4 = options.format is OutputFormat.MP4
        container_options = {"movflags": "+faststart"} if container == "mp4" else {}
        self.container = av.open(str(path), "w", format=container, options=container_options)
        audio = self.container.add_stream("aac" if mp4 else "libopus", rate=SAMPLE_RATE, layout="stereo")
        assert isinstance(audio, av.AudioStream)
        audio.bit_rate = options.audio_bitrate
        self.audio = audio
        self.samples = 0

    def write(self, samples: Samples) -> None:
        if len(samples) == 0:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples).reshape(1, -1), format="flt", layout="stereo"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self.samples
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self.samples += len(samples)
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        self.container.mux(self.audio.encode(None))
        self.container.close()

    def abort(self) -> None:
        with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
            self.container.close()


def _packets(paths: Sequence[Path], kind: str) -> Iterator[tuple[float, int, av.Packet]]:  # type: ignore[type-arg]
    """(decode time in seconds, order, packet) of the first stream of `kind` in each file, in turn."""
    order = 0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
            for packet in container.demux(stream):
                if packet.dts is None or packet.time_base is None:
                    continue  # the demuxer's end-of-stream marker
                order += 1
                yield float(packet.dts * packet.time_base), order, packet


def assemble(
    out: Path, options: CompositeOptions, video_parts: Sequence[Path], audio_part: Path | None
) -> None:
    """Copy the parts' packets, interleaved by time, into `out` (MP4 with fast start, or WebM)."""
    fmt = "mp4" if options.format is OutputFormat.MP4 else "webm"
    container_options = {"movflags": "+faststart"} if fmt == "mp4" else {}
    with contextlib.ExitStack() as stack:
        inputs = [stack.enter_context(av.open(str(p))) for p in video_parts]
        first = inputs[0].streams.video[0]
        for other in inputs[1:]:  # one stream: every part must carry the same codec parameters
            if bytes(other.streams.video[0].codec_context.extradata or b"") != bytes(
                first.codec_context.extradata or b""
            ):
                raise RuntimeError(f"{out}: the video parts were encoded with different parameters")
        audio_in = stack.enter_context(av.open(str(audio_part))) if audio_part is not None else None
        output = stack.enter_context(av.open(str(out), "w", format=fmt, options=container_options))
        video = output.add_stream_from_template(first)
        audio = output.add_stream_from_template(audio_in.streams.audio[0]) if audio_in is not None else None
        streams = [_packets(video_parts, "video")]
        if audio_part is not None:
            streams.append(_packets([audio_part], "audio"))
        for _, _, packet in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            packet.stream = audio if packet.stream.type == "audio" else video
            output.mux(packet)
