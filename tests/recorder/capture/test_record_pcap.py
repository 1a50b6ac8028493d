"""`callvault record-pcap`: bad captures are refused with one line naming the file and what is wrong,
exit 2, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recorder.capture import pcapng
from recorder.capture.writer import CaptureFile, PacketCapture, stream_description
from recorder.cli import main
from recorder.models import Codec, StreamSpec

SPEC = StreamSpec(name="alice-audio-0", codec=Codec.OPUS, payload_type=111, clock_rate=48000, port=20000)


def good_capture(folder: Path) -> Path:
    capture = PacketCapture(SPEC, 60.0, ("127.0.0.1", 20000), None)
    for seq in range(50):
        packet = (
            bytes([0x80, 111]) + seq.to_bytes(2, "big") + (seq * 960).to_bytes(4, "big") + b"\0\0\0\7\xfc"
        )
        capture.rtp(packet, ("127.0.0.1", 40000), 1_764_540_000 + seq * 0.02)
    file = CaptureFile(folder, SPEC.name, capture.header)
    file.write(capture.take())
    (segment,) = file.close()
    return folder / segment.path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = main(["record-pcap", *args])
    return status, capsys.readouterr().err.splitlines()


def test_a_good_capture_is_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = good_capture(tmp_path / "rec")
    status, err = run(capsys, str(capture), "--out", str(tmp_path / "out"))
    assert status == 0 and err == []
    summary = json.loads((tmp_path / "out" / "alice-audio-0.json").read_text())
    assert summary["state"] == "complete" and summary["packets_received"] == 50 and summary["frames"] == 50
    # Into a folder that already holds the track: refused, the track left as it was.
    status, err = run(capsys, str(capture), "--out", str(tmp_path / "out"))
    assert status == 2 and len(err) == 1 and "already holds track alice-audio-0" in err[0]


def _hostile(data: bytes) -> bytes:
    offset = len(data) - 200
    while int.from_bytes(data[offset : offset + 4], "little") != pcapng.EPB_TYPE:
        offset -= 4
    return data[: offset + 4] + (0x7FFFFFF0).to_bytes(4, "little") + data[offset + 8 :]


def _without_stream(data: bytes) -> bytes:
    shb = pcapng.section_header(["captured elsewhere"], "tcpdump")
    return shb + data[int.from_bytes(data[4:8], "little") :]


def _unsafe_name(data: bytes) -> bytes:
    spec = stream_description(SPEC).replace("alice-audio-0", "../../etc")
    shb = pcapng.section_header([spec], "forged")
    return shb + data[int.from_bytes(data[4:8], "little") :]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: b"this is not a capture\n", "not a pcapng file"),
        (lambda d: d[:-10], "truncated block at offset"),
        (_hostile, "claims 2147483632 bytes"),
        (_without_stream, "no CallVault stream description"),
        (_unsafe_name, "not a safe name"),
        (
            lambda d: d.replace(b'"clock_rate": 48000', b'"clock_rate": -4800'),
            "stream description is invalid",
        ),
    ],
)
def test_bad_captures_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object, message: str
) -> None:
    good = good_capture(tmp_path / "rec")
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(damage(good.read_bytes()))  # type: ignore[operator]
    out = tmp_path / "out"
    status, err = run(capsys, str(good), str(bad), "--out", str(out))
    assert status == 2
    assert len(err) == 1 and err[0].startswith(f"callvault: error: {bad}: ") and message in err[0], err
    assert not out.exists()  # nothing written, not even the good capture's track


def test_a_missing_capture_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(capsys, str(tmp_path / "nope.pcapng"), "--out", str(tmp_path / "out"))
    assert status == 2 and len(err) == 1 and "cannot read" in err[0]
