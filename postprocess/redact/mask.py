"""A transcript with the words inside redacted intervals replaced by a mask. Pure."""

from __future__ import annotations

from postprocess.redact.cards import merge
from postprocess.transcribe.models import MASK, RedactionInterval, Segment, Transcript, Word


def _inside(start: float, end: float, spans: list[tuple[float, float]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def mask_transcript(transcript: Transcript, intervals: list[RedactionInterval]) -> Transcript:
    """A copy in which every word whose middle is inside an interval (the intervals are padded beyond the
    words found, so a neighbour's edge may fall inside) reads MASK (consecutive masks as one), and a
    segment without word times that overlaps one is masked whole; the intervals are listed in it."""
    spans = merge(intervals)
    segments: list[Segment] = []
    for seg in transcript.segments:
        if not seg.words:
            text = MASK if _inside(seg.start, seg.end, spans) else seg.text
            segments.append(seg.model_copy(update={"text": text}))
            continue
        words: list[Word] = []
        for w in seg.words:
            middle = (w.start + w.end) / 2
            if _inside(middle, middle + 1e-6, spans):
                if words and words[-1].text == MASK:
                    words[-1] = words[-1].model_copy(update={"end": w.end})
                else:
                    words.append(w.model_copy(update={"text": MASK}))
            else:
                words.append(w)
        changed = any(w.text == MASK for w in words)
        text = " ".join(w.text for w in words) if changed else seg.text
        segments.append(seg.model_copy(update={"words": words, "text": text}))
    return transcript.model_copy(
        update={
            "segments": segments,
            "redactions": sorted([*transcript.redactions, *intervals], key=lambda r: r.start),
        }
    )
