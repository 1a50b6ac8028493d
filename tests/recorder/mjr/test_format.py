"""The .mjr parser against hostile files: every malformed header is refused with a message naming what is
wrong; a truncated or torn packet area keeps the whole packets before the damage and says where it
stopped; odd frames are skipped as janus-pp-rec skips them. Real files from Janus 1.1.2 (data/) parse as
janus-pp-rec reads them."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest

from recorder.mjr.format import MjrError, MjrHeader, MjrKind, MjrScan, parse_header, scan

DATA = Path(__file__).parent / "data"
INFO = {"t": "v", "c": "vp8", "s": 1_700_000_000_000_000, "u": 1_700_000_000_100_000}


def rtp(seq: int, ts: int, payload: bytes = b"\x10\x00\x00\x00", pt: int = 96) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, ts, 1234) + payload


def mjr(info: object = INFO, packets: list[tuple[int, bytes]] = (), magic: bytes = b"MJR00002") -> bytes:  # type: ignore[assignment]
    text = info if isinstance(info, bytes) else json.dumps(info).encode()
    out = magic + struct.pack("!H", len(text)) + text
    for ms, data in packets:
        out += b"MEET" + struct.pack("!IH", ms, len(data)) + data
    return out


def read(data: bytes) -> tuple[MjrHeader, list[tuple[int | None, bytes]], MjrScan]:
    header, start = parse_header(data)
    scanned = MjrScan()
    return header, [(p.time_ms, p.data) for p in scan(data, header, start, scanned)], scanned


def test_a_well_formed_file_gives_its_header_and_packets_in_order() -> None:
    packets = [(0, rtp(1, 0)), (33, rtp(2, 3000)), (66, rtp(3, 6000))]
    header, got, scanned = read(mjr(INFO, packets))
    assert header.kind is MjrKind.VIDEO and header.codec == "vp8" and header.version == 2
    assert header.created_us == INFO["s"] and header.first_written_us == INFO["u"]
    assert got == packets and scanned.stopped is None and scanned.packets == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"MJR0000", "too short"),
        (b"RIFF\x00\x10WAVEfmt ", "not a Janus recording"),
        (b"MJR00002\x00\x00", "info header is empty"),
        (b"MJR00002\xff\xff{}", "truncated in the info header"),
        (mjr(b"{not json"), "not JSON"),
        (mjr(b"\xff\xfe"), "not JSON"),
        (mjr([1, 2]), "not a JSON object"),
        (mjr({**INFO, "t": "x"}), "type 't'"),
        (mjr({**INFO, "t": 5}), "type 't'"),
        (mjr({k: v for k, v in INFO.items() if k != "c"}), "codec 'c'"),
        (mjr({**INFO, "c": "x" * 500}), "codec 'c'"),
        (mjr({**INFO, "s": "yesterday"}), "time 's'"),
        (mjr({**INFO, "u": -5}), "time 'u'"),
        (mjr({**INFO, "u": True}), "time 'u'"),
        (mjr({**INFO, "s": 10**30}), "time 's'"),
        (b"MEETECHO\x00\x05movie", "unsupported old-style"),
    ],
)
def test_a_bad_header_is_refused_with_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(MjrError, match=message):
        parse_header(data)


def test_a_file_cut_inside_its_last_packet_keeps_the_whole_packets() -> None:
    packets = [(i * 20, rtp(i, i * 960)) for i in range(5)]
    data = mjr(INFO, packets)
    for cut in range(1, 26):
        _, got, scanned = read(data[:-cut])
        assert got == packets[: len(got)] and len(got) >= 3, cut
        assert scanned.stopped is not None and "truncated at offset" in scanned.stopped


def test_a_frame_length_past_the_end_stops_there() -> None:
    data = mjr(INFO, [(0, rtp(1, 0))]) + b"MEET" + struct.pack("!IH", 20, 65535) + rtp(2, 960)
    _, got, scanned = read(data)
    assert len(got) == 1 and scanned.stopped is not None and "frame says 65535 bytes" in scanned.stopped


def test_garbage_after_the_packets_stops_the_reading_and_says_where() -> None:
    good = mjr(INFO, [(0, rtp(1, 0)), (20, rtp(2, 960))])
    _, got, scanned = read(good + b"\x00garbage-garbage")
    assert (
        len(got) == 2
        and scanned.stopped == f"no frame at offset {len(good)} (found b'\\x00gar'): the rest is not read"
    )


def test_frames_janus_pp_rec_skips_are_skipped_and_counted() -> None:
    packets = [(0, rtp(1, 0)), (5, b"\x80\x60short"), (10, rtp(2, 100, b"\x00" * 1600)), (20, rtp(3, 960))]
    _, got, scanned = read(mjr(INFO, packets))
    assert [d for _, d in got] == [rtp(1, 0), rtp(3, 960)]
    assert (scanned.skipped_short, scanned.skipped_long) == (1, 1) and scanned.stopped is None


def test_older_formats_are_read_without_packet_times() -> None:
    v1 = mjr(INFO, magic=b"MJR00001") + b"MEETECHO" + struct.pack("!H", 16) + rtp(1, 0)
    header, got, _ = read(v1)
    assert header.version == 1 and got == [(None, rtp(1, 0))]
    legacy = b"MEETECHO\x00\x05audio" + b"MEETECHO" + struct.pack("!H", 16) + rtp(1, 0, pt=111)
    header, got, _ = read(legacy)
    assert (header.version, header.kind, header.codec) == (0, MjrKind.AUDIO, "opus") and len(got) == 1


def test_random_corruption_never_escapes_as_anything_but_mjr_error() -> None:
    base = mjr(INFO, [(i * 20, rtp(i, i * 960, bytes(range(40)))) for i in range(20)])
    rng = random.Random(18)
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randint(0, len(data))] if rng.random() < 0.3 else data
        try:
            header, start = parse_header(bytes(data))
        except MjrError:
            continue
        scanned = MjrScan()
        for packet in scan(bytes(data), header, start, scanned):
            assert 12 <= len(packet.data) <= 1500


def test_janus_files_parse_as_janus_pp_rec_reads_them() -> None:
    files = sorted(DATA.glob("*.mjr"))
    assert len(files) == 4
    for path in files:
        data = path.read_bytes()
        header, got, scanned = read(data)
        assert scanned.stopped is None and scanned.packets == len(got) > 50
        assert json.loads(header.raw)["c"] == header.codec
        times = [t for t, _ in got]
        assert times == sorted(times) and times[0] is not None and times[0] < 100
