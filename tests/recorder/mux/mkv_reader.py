"""A small, independent Matroska reader for the tests: walks the EBML tree of a segment file and lists
its Clusters and SimpleBlocks with their byte offsets, so tests can check the layout (cluster rules,
block timestamps) and know exactly which frames a file cut at some offset still holds whole."""

from __future__ import annotations

from dataclasses import dataclass, field

SEGMENT, CLUSTER, TIMESTAMP, SIMPLE_BLOCK = 0x18538067, 0x1F43B675, 0xE7, 0xA3
INFO, TRACKS, EBML = 0x1549A966, 0x1654AE6B, 0x1A45DFA3
TIMESTAMP_SCALE = 0x2AD7B1


def read_vint(buf: bytes, pos: int, keep_marker: bool) -> tuple[int, int, bool]:
    """(value, octets, unknown) of the VINT at `pos` (RFC 8794 §4)."""
    first = buf[pos]
    if first == 0:
        raise ValueError(f"VINT longer than 8 octets at {pos}")
    length = 9 - first.bit_length()
    raw = int.from_bytes(buf[pos : pos + length], "big")
    if len(buf) < pos + length:
        raise ValueError(f"VINT cut short at {pos}")
    if keep_marker:
        return raw, length, False
    value = raw & ((1 << (7 * length)) - 1)
    return value, length, value == (1 << (7 * length)) - 1


def children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(id, data start, data end) of the elements between start and end; an element cut short by the
    end of the buffer ends the list."""
    out = []
    pos = start
    while pos < end:
        element_id, id_len, _ = read_vint(buf, pos, True)
        size, size_len, unknown = read_vint(buf, pos + id_len, False)
        data = pos + id_len + size_len
        data_end = end if unknown else data + size
        if data_end > end:
            break
        out.append((element_id, data, data_end))
        pos = data_end
    return out


@dataclass
class Block:
    timestamp_ms: int
    relative: int
    keyframe: bool
    data: bytes
    end: int  # offset just past the block


@dataclass
class Cluster:
    timestamp_ms: int
    start: int
    end: int
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Layout:
    segment_unknown_size: bool
    timestamp_scale: int
    clusters: list[Cluster]

    @property
    def blocks(self) -> list[Block]:
        return [b for c in self.clusters for b in c.blocks]


def read_layout(buf: bytes) -> Layout:
    top = children(buf, 0, len(buf))
    assert [t[0] for t in top] == [EBML, SEGMENT], [hex(t[0]) for t in top]
    _, seg_start, seg_end = top[1]
    # The Segment's size field: 8 octets of all-ones data after the 4-octet ID.
    _, _, unknown = read_vint(buf, seg_start - 8, False)
    scale = 0
    clusters = []
    for element_id, start, end in children(buf, seg_start, seg_end):
        if element_id == INFO:
            for cid, cs, ce in children(buf, start, end):
                if cid == TIMESTAMP_SCALE:
                    scale = int.from_bytes(buf[cs:ce], "big")
        elif element_id == CLUSTER:
            inner = children(buf, start, end)
            assert inner[0][0] == TIMESTAMP, "a Cluster starts with its Timestamp"
            cluster = Cluster(int.from_bytes(buf[inner[0][1] : inner[0][2]], "big"), start, end)
            for cid, cs, ce in inner[1:]:
                assert cid == SIMPLE_BLOCK
                track, tlen, _ = read_vint(buf, cs, False)
                assert track == 1
                rel = int.from_bytes(buf[cs + tlen : cs + tlen + 2], "big", signed=True)
                flags = buf[cs + tlen + 2]
                assert flags & 0x06 == 0, "no lacing"
                cluster.blocks.append(
                    Block(cluster.timestamp_ms + rel, rel, bool(flags & 0x80), buf[cs + tlen + 3 : ce], ce)
                )
            clusters.append(cluster)
    return Layout(unknown, scale, clusters)
