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
    """Media time of the track's last frame, as far as its summary tells (arrival-based)."""
    s = track.summary
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

    def __init__(self, track: TrackInput, kind: str) -> None:
        self.name = track.name
        self.track = track
        self.kind = kind
        self.errors = 0
        self.problems: list[str] = []
        self.opened = False

    def _problem(self, message: str) -> None:
        log.warning("track %s: %s", self.name, message)
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
        if joined is not None and self._joined_complete(joined):
            before = self.errors
            try:
                container = _open(joined)
            except (av.error.FFmpegError, OSError) as exc:
                self._problem(f"cannot open {joined.name} ({exc})")
            else:
                self.opened = True
                with container:
                    for media, frame in self._from(container):
                        last = media
                        yield media, frame
                expected_end = _media_end(self.track)
                if self.errors == before and last >= expected_end - TRUNCATION_SLACK:
                    return
                if self.errors == before:
                    self._problem(f"{joined.name} ends at {last:.1f} s of {expected_end:.1f} s")
        if self.track.segments:
            log.info("track %s: reading its segments", self.name)
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
        self, container: av.container.InputContainer
    ) -> Iterator[tuple[float, av.VideoFrame | av.AudioFrame]]:
        streams = container.streams.video if self.kind == "video" else container.streams.audio
        if not streams:
            self.errors += 1
            return
        stream = streams[0]
        if isinstance(stream, av.VideoStream):
            stream.thread_type = "AUTO"
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                self._problem(f"demuxing stopped early ({exc})")
                break
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


class VideoSource:
    """The frame of a video track to show at each output instant (the latest one not after it)."""

    def __init__(self, track: TrackInput, clock: TrackClock, t0: float) -> None:
        self.name = track.name
        self._decoded = _Decoded(track, "video")
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
