"""Per-track segment hash chains (definition in recorder/manifest/model.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from recorder.manifest.model import CHAIN_ALGORITHM, ChainLink, TrackChain
from recorder.models import SegmentInfo


def genesis(recording_id: str, track: str) -> str:
    return hashlib.sha256(f"{CHAIN_ALGORITHM}\n{recording_id}\n{track}".encode()).hexdigest()


def next_link(previous: str, segment_sha256: str) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(segment_sha256)).hexdigest()


class ChainBuilder:
    """Extends a track's chain one closed segment at a time (usable live, as segments close)."""

    def __init__(self, recording_id: str, track: str) -> None:
        self.track = track
        self.genesis = genesis(recording_id, track)
        self.links: list[ChainLink] = []

    @property
    def head(self) -> str:
        return self.links[-1].link if self.links else self.genesis

    def add(self, segment: SegmentInfo) -> ChainLink:
        if segment.index != len(self.links):
            raise ValueError(
                f"track {self.track}: segment {segment.index} out of order, expected {len(self.links)}"
            )
        link = ChainLink(
            index=segment.index,
            path=segment.path,
            sha256=segment.sha256,
            link=next_link(self.head, segment.sha256),
        )
        self.links.append(link)
        return link

    def chain(self) -> TrackChain:
        return TrackChain(track=self.track, genesis=self.genesis, links=list(self.links), head=self.head)


def build_chain(recording_id: str, track: str, segments: Iterable[SegmentInfo]) -> TrackChain:
    builder = ChainBuilder(recording_id, track)
    for segment in sorted(segments, key=lambda s: s.index):
        builder.add(segment)
    return builder.chain()


def chain_problems(recording_id: str, chain: TrackChain) -> list[str]:
    """What is wrong with a chain, one message per problem (empty when it holds)."""
    problems: list[str] = []
    expected = genesis(recording_id, chain.track)
    if chain.genesis != expected:
        problems.append(f"genesis is {chain.genesis[:16]}…, expected {expected[:16]}…")
    previous = expected
    for position, link in enumerate(chain.links):
        if link.index != position:
            problems.append(f"segment {position} missing from the chain (found index {link.index})")
        want = next_link(previous, link.sha256)
        if link.link != want:
            problems.append(f"segment {link.index} ({link.path}): link does not follow from the previous one")
        previous = link.link
    if chain.head != previous:
        problems.append("head is not the last link")
    return problems
