"""A Transcript as WebVTT (https://www.w3.org/TR/webvtt1/): one cue per segment, the speaker as a voice
span (`<v alice>`), so a player shows who said what."""

from __future__ import annotations

from postprocess.transcribe.models import Transcript


def timestamp(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _escape(text: str) -> str:
    # "-->" may not appear in a cue's text; & < > are markup
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def to_webvtt(transcript: Transcript) -> str:
    lines = ["WEBVTT", ""]
    for i, seg in enumerate(transcript.segments, 1):
        end = max(seg.end, seg.start + 0.001)
        lines += [str(i), f"{timestamp(seg.start)} --> {timestamp(end)}"]
        lines += [f"<v {_escape(seg.speaker)}>{_escape(seg.text)}", ""]
    return "\n".join(lines)
