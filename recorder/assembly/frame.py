"""`Frame`: what frame assembly hands the muxer, one complete encoded frame.

Created for every media frame and read field by field on the hot path, so it lives in a module compiled
with mypyc (recorder/native.py: HOT_MODULES) as a native class: made and read by the compiled pipeline
and muxer without a Python-level constructor or attribute lookups. The same source runs as a slotted
dataclass when the sources run (CALLVAULT_NATIVE=0).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Frame:
    """One complete encoded frame, exactly as the sender encoded it.

    `rtp_timestamp` is unwrapped (64-bit, monotonic across 32-bit wraparound). `arrival_time` is the
    wall-clock time (time.time()) the frame's last packet arrived. `dropped_packets` counts the packets
    lost or discarded since the previous frame handed out for this stream.
    """

    data: bytes
    keyframe: bool
    rtp_timestamp: int
    arrival_time: float
    dropped_packets: int = 0
    packets: int = 1
    pts: int = 0
    """Presentation time on the track's timeline, in clock-rate units from the track's first frame.
    Equals rtp_timestamp minus the first frame's, except across sender restarts (a new RTP timestamp
    base), where the timeline is re-anchored on the wall clock so the gap stays visible."""
