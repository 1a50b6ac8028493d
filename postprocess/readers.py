"""Decoding one recorded track onto the composite's timeline (PyAV).

A reader opens the track's joined file, or, when that is incomplete or cannot be opened, its segment
files one after the other (each segment plays on its own). Damaged packets are skipped and counted, never
fatal: what decodes is placed by its own timestamp, so a loss shows as a held frame or silence, not as a
shift.
Times are seconds from the composite's start (`t0`), through the track's clock (postprocess.timeline).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

from postprocess.inputs import TrackInput
from postprocess.mixing import CHANNELS, SAMPLE_RATE, Samples
from postprocess.timeline import TrackClock
from recorder.mux.track_writer import sha256_file

log = logging.getLogger(__name__)

# Contiguous audio: a frame placed within this many samples of where the previous one ended follows it
# without a gap or overlap; further off (loss, pause, clock drift built up) it goes where its time says.
AUDIO_SNAP = 480
# A joined file that ends this much before the summary's last frame is truncated: segments take over.
TRUNCATION_SLACK = 1.0


class TrackDecodeError(Exception):
    """Nothing of a track could be opened."""


def _media_end(track: TrackInput) -> float:
    """Media time of the track's last frame, as its summary tells: on the media clock, as the file's
    timestamps are (a summary written before media_seconds existed: the arrival span)."""
    s = track.summary
    if s.media_seconds is not None:
        return s.media_seconds
    return (s.last_wallclock or 0.0) - (s.first_wallclock or 0.0)


def _open(path: Path) -> av.container.InputContainer:
    return av.open(str(path), metadata_errors="ignore")


class _Decoded:
    """Frames of one kind from a track's files, with media time, tolerating damage.

    The joined file is used when it holds as many packets as the summary says were recorded and opens;
    otherwise the segment files are (their SHA-256 is checked against the summary; a mismatch is
    reported, and what decodes is still used). A joined file that ends early is read on from the
    segments.
    """

    def __init__(
        self,
        track: TrackInput,
        kind: str,
        joined_ok: bool | None = None,
        skip_to: float | None = None,
        threads: str = "AUTO",
    ) -> None:
        self.name = track.name
        self.track = track
        self.kind = kind
        self.joined_ok = joined_ok  # None: check the joined file here; else what an index found
        self.skip_to = skip_to  # media seconds of the keyframe to start decoding at (joined file only)
        self.threads = threads
        self.errors = 0
        self.problems: list[str] = []
        self.opened = False

    def _problem(self, message: str) -> None:
        # Not logged here: the composite returns it among its warnings, which its caller reports once.
        log.debug("track %s: %s", self.name, message)
        self.problems.append(message)
        self.errors += 1

    def _joined_complete(self, path: Path) -> bool:
        """Whether the joined file holds every frame the summary counts (demuxing only: cheap)."""
        expected = self.track.summary.frames
        count = 0
        try:
            with _open(path) as container:
                streams = container.streams.video if self.kind == "video" else container.streams.audio
                if not streams:
                    return False
                for packet in container.demux(streams[0]):
                    count += packet.size > 0
        except (av.error.FFmpegError, OSError) as exc:
            self._problem(f"{path.name} is unreadable ({exc})")
            return False
        if count < expected:
            self._problem(f"{path.name} holds {count} of {expected} frames")
            return False
        return True

    def frames(self) -> Generator[tuple[float, av.VideoFrame | av.AudioFrame]]:
        """(media seconds, frame), in order."""
        last = float("-inf")
        joined = self.track.file
        if self.joined_ok is not None:
            complete = self.joined_ok
        else:
            complete = joined is not None and self._joined_complete(joined)
        if joined is not None and complete:
            before = self.errors
            try:
                container = _open(joined)
            except (av.error.FFmpegError, OSError) as exc:
                self._problem(f"cannot open {joined.name} ({exc})")
            else:
                self.opened = True
                with container:
                    for media, frame in self._from(container, self.skip_to):
                        last = media
                        yield media, frame
                expected_end = _media_end(self.track)
                if self.errors == before and last >= expected_end - TRUNCATION_SLACK:
                    return
                if self.errors == before:
                    self._problem(f"{joined.name} ends at {last:.1f} s of {expected_end:.1f} s")
        if self.track.segments:
            log.debug("track %s: reading its segments", self.name)
        for path, sha256 in self.track.segments:
            if sha256 is not None and sha256_file(path) != sha256:
                self._problem(f"segment {path.name} does not match its SHA-256")
            try:
                container = _open(path)
            except (av.error.FFmpegError, OSError) as exc:
                self._problem(f"cannot open segment {path.name} ({exc})")
                continue
            self.opened = True
            with container:
                for media, frame in self._from(container):
                    if media > last:
                        last = media
                        yield media, frame
        if not self.opened:
            raise TrackDecodeError(f"track {self.name}: none of its files can be read")

    def _from(
        self, container: av.container.InputContainer, skip_to: float | None = None
    ) -> Iterator[tuple[float, av.VideoFrame | av.AudioFrame]]:
        """Decoded frames of the container's stream; with `skip_to`, packets before the keyframe at that
        media time are demuxed only (a part of the call that starts later, decoded from a keyframe)."""
        streams = container.streams.video if self.kind == "video" else container.streams.audio
        if not streams:
            self.errors += 1
            return
        stream = streams[0]
        if isinstance(stream, av.VideoStream):
            stream.thread_type = self.threads
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                self._problem(f"demuxing stopped early ({exc})")
                break
            if skip_to is not None:
                if packet.pts is None or packet.time_base is None:
                    continue
                if not packet.is_keyframe or float(packet.pts * packet.time_base) < skip_to - 1e-6:
                    continue
                skip_to = None
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                self.errors += 1
                continue
            for frame in decoded:
                if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                    continue
                if frame.pts is None or frame.time_base is None:
                    continue
                yield float(frame.pts * frame.time_base), frame


@dataclass(frozen=True, slots=True)
class VideoIndex:
    """What one demuxing pass over a video track's joined file found."""

    complete: bool
    """The joined file opens and holds every frame the summary counts: it is read, not the segments."""
    keyframes: tuple[float, ...] = ()
    """Media seconds of its keyframes, where decoding can start."""
    problem: str | None = None


def index_video(track: TrackInput) -> VideoIndex:
    """Count the joined file's frames and find its keyframes (demuxing only: cheap)."""
    path = track.file
    if path is None:
        return VideoIndex(False)
    count, keyframes = 0, []
    try:
        with _open(path) as container:
            if not container.streams.video:
                return VideoIndex(False, (), f"{path.name} has no video stream")
            for packet in container.demux(container.streams.video[0]):
                if packet.size <= 0:
                    continue
                count += 1
                if packet.is_keyframe and packet.pts is not None and packet.time_base is not None:
                    keyframes.append(float(packet.pts * packet.time_base))
    except (av.error.FFmpegError, OSError) as exc:
        return VideoIndex(False, (), f"{path.name} is unreadable ({exc})")
    if count < track.summary.frames:
        return VideoIndex(False, (), f"{path.name} holds {count} of {track.summary.frames} frames")
    return VideoIndex(True, tuple(keyframes))


class VideoSource:
    """The frame of a video track to show at each output instant (the latest one not after it).

    With an `index` (index_video) the joined file is not checked again; with `skip_to` as well, decoding
    starts at that keyframe (media seconds) of the joined file."""

    def __init__(
        self,
        track: TrackInput,
        clock: TrackClock,
        t0: float,
        index: VideoIndex | None = None,
        skip_to: float | None = None,
        threads: str = "AUTO",
    ) -> None:
        self.name = track.name
        problem = index.problem if index is not None and not index.complete else None
        self._decoded = _Decoded(
            track, "video", None if index is None else index.complete, skip_to if index else None, threads
        )
        if problem is not None:
            self._decoded._problem(problem)
        self._frames = self._decoded.frames()
        self._clock = clock
        self._t0 = t0
        self.current: av.VideoFrame | None = None
        self.current_time = float("-inf")
        self._next: tuple[float, av.VideoFrame] | None = None
        self.done = False
        self.frames_decoded = 0

    @property
    def errors(self) -> int:
        return self._decoded.errors

    @property
    def problems(self) -> list[str]:
        return self._decoded.problems

    def _pull(self) -> tuple[float, av.VideoFrame] | None:
        try:
            media, frame = next(self._frames)
        except StopIteration:
            self.done = True
            return None
        self.frames_decoded += 1
        assert isinstance(frame, av.VideoFrame)
        return self._clock.wall(media) - self._t0, frame

    def at(self, t: float) -> tuple[av.VideoFrame | None, float]:
        """(frame shown at t, its time); (None, -inf) before the first frame."""
        while not self.done:
            if self._next is None:
                self._next = self._pull()
                if self._next is None:
                    break
            if self._next[0] > t:
                break
            self.current_time, self.current = self._next
            self._next = None
        return self.current, self.current_time

    def close(self) -> None:
        self._frames.close()


class AudioSource:
    """A track's audio as 48 kHz stereo float32, placed on the output sample timeline."""

    def __init__(self, track: TrackInput, clock: TrackClock, t0: float) -> None:
        self.name = track.name
        self._decoded = _Decoded(track, "audio")
        self._frames = self._decoded.frames()
        self._clock = clock
        self._t0 = t0
        self._resampler = av.AudioResampler(format="flt", layout="stereo", rate=SAMPLE_RATE)
        self._queue: list[tuple[int, Samples]] = []
        self._next_index: int | None = None
        self.done = False

    @property
    def errors(self) -> int:
        return self._decoded.errors

    @property
    def problems(self) -> list[str]:
        return self._decoded.problems

    def _pull(self) -> bool:
        try:
            media, frame = next(self._frames)
        except StopIteration:
            self.done = True
            return False
        assert isinstance(frame, av.AudioFrame)
        index = round((self._clock.wall(media) - self._t0) * SAMPLE_RATE)
        if self._next_index is not None and abs(index - self._next_index) <= AUDIO_SNAP:
            index = self._next_index
        frame.pts = None  # the resampler must not re-time anything: placement is ours
        for out in self._resampler.resample(frame):
            samples = np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1, CHANNELS)
            self._queue.append((index, samples))
            index += len(samples)
        self._next_index = index
        return True

    def read_into(self, out: Samples, start: int) -> None:
        """Add this track's samples for [start, start + len(out)) into `out`."""
        end = start + len(out)
        while not self.done and (not self._queue or self._queue[-1][0] + len(self._queue[-1][1]) < end):
            self._pull()
        keep: list[tuple[int, Samples]] = []
        for index, samples in self._queue:
            s_end = index + len(samples)
            if s_end > end:
                keep.append((index, samples))
            lo, hi = max(index, start), min(s_end, end)
            if lo < hi:
                out[lo - start : hi - start] += samples[lo - index : hi - index]
        self._queue = keep

    def close(self) -> None:
        self._frames.close()


def silence(n: int) -> Samples:
    return np.zeros((n, CHANNELS), np.float32)
