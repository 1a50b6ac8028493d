"""The composite's output: container, encoders, and an encoder thread.

Video encoding runs on its own thread, fed through a short queue, so composing frame n+1 overlaps encoding
frame n (PyAV releases the GIL while the encoders work; x264/libvpx use their own threads too). Audio is
encoded on the composing thread, which otherwise waits for the video encoder; muxing takes a lock. Video
frames come from a small pool: the composer copies its canvas into the next free pool frame, and the queue
is short enough that a pool frame is never rewritten while the encoder may still read it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from postprocess.draw import Canvas
from postprocess.mixing import SAMPLE_RATE, Samples
from postprocess.options import CompositeOptions, OutputFormat

QUEUE = 4  # items waiting for the encoder thread
POOL = QUEUE + 3  # video frames: queued, being encoded, being filled, one spare


def encoder_threads(options: CompositeOptions) -> str:
    """Thread type for the video encoder. PyAV opens encoders with slice threads; x264's frame threads give
    more throughput from veryfast on (about 12% here), slice threads at ultrafast (about 6%)."""
    return "SLICE" if options.format is OutputFormat.MP4 and options.preset == "ultrafast" else "FRAME"


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


def _video_codec(options: CompositeOptions) -> tuple[str, dict[str, str]]:
    threads = str(options.threads or os.cpu_count() or 1)
    if options.format is OutputFormat.MP4:
        return "libx264", {
            "preset": options.preset,
            "threads": str(options.threads),  # 0: x264 picks (1.5 threads per core)
            "maxrate": str(options.bitrate * 3 // 2),
            "bufsize": str(options.bitrate * 2),
        }
    if options.webm_codec == "vp9":
        return "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "threads": threads,
                              "tile-columns": "2"}  # fmt: skip
    return "libvpx", {"deadline": "realtime", "cpu-used": "8", "threads": threads}


class Output:
    def __init__(self, path: Path, options: CompositeOptions, size: tuple[int, int]) -> None:
        self.path = path
        fmt = "mp4" if options.format is OutputFormat.MP4 else "webm"
        container_options = {"movflags": "+faststart"} if fmt == "mp4" else {}
        self.container = av.open(str(path), "w", format=fmt, options=container_options)
        self.video: av.VideoStream | None = None
        self._pool: list[tuple[av.VideoFrame, Canvas]] = []
        self._next = 0
        if not options.audio_only:
            codec, codec_options = _video_codec(options)
            video = self.container.add_stream(codec, rate=options.fps, options=codec_options)
            assert isinstance(video, av.VideoStream)
            video.width, video.height = size
            video.pix_fmt = "yuv420p"
            video.bit_rate = options.bitrate
            video.codec_context.gop_size = options.fps * 2
            video.codec_context.thread_type = encoder_threads(options)
            self.video = video
            for _ in range(POOL):
                frame = av.VideoFrame(size[0], size[1], "yuv420p")
                self._pool.append((frame, plane_views(frame)))
        audio = self.container.add_stream(
            "aac" if fmt == "mp4" else "libopus", rate=SAMPLE_RATE, layout="stereo"
        )
        assert isinstance(audio, av.AudioStream)
        audio.bit_rate = options.audio_bitrate
        self.audio = audio
        self.audio_samples = 0
        self._queue: queue.Queue[object] = queue.Queue(QUEUE)
        self._mux_lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="composite-encoder", daemon=True)
        self._thread.start()

    # -- producer side (the composer's thread) -------------------------------------------------------

    def write_audio(self, samples: Samples) -> None:
        if len(samples) == 0:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples).reshape(1, -1), format="flt", layout="stereo"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self.audio_samples
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self.audio_samples += len(samples)
        packets = self.audio.encode(frame)  # here: the encoder thread is kept for video
        if packets:
            with self._mux_lock:
                self.container.mux(packets)

    def write_video(self, canvas: Canvas, index: int) -> None:
        """Copy the canvas into the next pool frame and queue it as frame `index`."""
        frame, views = self._pool[self._next]
        self._next = (self._next + 1) % len(self._pool)
        np.copyto(views.y, canvas.y)
        np.copyto(views.u, canvas.u)
        np.copyto(views.v, canvas.v)
        frame.pts = index
        self._put(frame)

    def close(self) -> None:
        """Flush the encoders and finish the file; raises what the encoder thread hit."""
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

    # -- the encoder thread --------------------------------------------------------------------------

    def _mux(self, packets: list[av.Packet]) -> None:  # type: ignore[type-arg]
        if packets:
            with self._mux_lock:
                self.container.mux(packets)

    def _run(self) -> None:
        mux = self._mux
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    if self._error is None:
                        if self.video is not None:
                            mux(self.video.encode(None))
                        mux(self.audio.encode(None))
                    return
                if self._error is not None:
                    continue  # aborting: drain without encoding
                assert isinstance(item, av.VideoFrame) and self.video is not None
                mux(self.video.encode(item))
        except BaseException as exc:
            self._error = exc
