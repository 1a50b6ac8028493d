"""A report from the track summaries and manifest alone (a recording without a raw capture: here one
imported from Janus's .mjr files): it says which plots need a capture, and its integrity verdict follows
the files: VERIFIED as made, FAILED naming the file once a byte of it changed."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from postprocess.forensics.report import make_report
from recorder.mjr.importer import import_files

MJR = sorted((Path(__file__).parents[2] / "recorder" / "mjr" / "data").glob("*.mjr"))


def test_report_without_a_capture_and_the_integrity_verdict(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (recording,) = import_files(MJR, tmp_path / "vault", key).recordings
    report = make_report(recording.folder, tmp_path / "out", key.public_key())
    data = report.data
    assert not data.has_capture and all(t.stats is None for t in data.tracks)
    assert any("no raw packet capture" in n and "jitter" in n for n in data.unavailable)
    assert data.facts.integrity.ok and data.facts.integrity.key_pinned
    html = report.html.read_text()
    assert "Integrity VERIFIED" in html and "by the pinned key" in html
    assert "from 2 participants" in data.summary[0] and "imported from Janus .mjr files" in data.summary[0]
    assert not list(recording.folder.glob("*report*"))  # never written into the recording

    video = next(recording.folder.glob("*-video-1.webm"))
    damaged = bytearray(video.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    video.write_bytes(bytes(damaged))
    data = make_report(recording.folder, tmp_path / "out2", key.public_key(), pdf=False).data
    assert not data.facts.integrity.ok
    assert any(p.startswith(f"changed: {video.name}") for p in data.facts.integrity.problems)
    assert data.summary[1].startswith("Integrity: FAILED")
