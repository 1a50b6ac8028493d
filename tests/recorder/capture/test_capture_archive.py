"""Capture segments take the media's way through the archive: announced through `segment_closed`, they
are spooled, stored, listed in the signed manifest with their SHA-256 and, when the recording is
encrypted, stored as age ciphertext that the real `age` tool decrypts to the capture, bit for bit."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
from age_kit import age_decrypt, keygen
from archive_kit import FakeTrack, Receiver, local_settings, new_info

from recorder.archive import Archive
from recorder.capture.reader import parse
from recorder.capture.writer import CaptureFile, PacketCapture, capture_track
from recorder.manifest import MANIFEST_NAME, Manifest
from recorder.models import Codec, SegmentInfo, StreamSpec

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is installed by make")


def capture_segments(folder: Path, track: str) -> list[SegmentInfo]:
    spec = StreamSpec(name=track, codec=Codec.VP8, payload_type=96, clock_rate=90000, port=20000)
    capture = PacketCapture(spec, 1.0, ("127.0.0.1", 20000), None)
    file = CaptureFile(folder, track, capture.header)
    for seq in range(60):
        packet = bytes([0x80, 96]) + seq.to_bytes(2, "big") + (seq * 3000).to_bytes(4, "big") + bytes(100)
        capture.rtp(packet, ("10.0.0.5", 40000), 1_764_540_000 + seq / 30)
    file.write(capture.take())
    return file.close()


async def test_encrypted_recording_stores_its_captures_as_age_ciphertext(
    tmp_path: Path, receiver: Receiver
) -> None:
    recipient = keygen(tmp_path / "key.txt")
    archive = Archive(local_settings(receiver, encryption={"recipients": [recipient]}), tmp_path)
    info = new_info(tmp_path / "recordings" / "rec-cap-1", "rec-cap-1")
    await archive.start()
    try:
        archive.recording_started(info)
        media = FakeTrack(info.folder, "video-0", Codec.VP8)
        segments = capture_segments(info.folder, "video-0")
        for index, segment in enumerate(segments):
            archive.segment_closed(info.folder, "video-0", media.segment(index))
            archive.segment_closed(info.folder, capture_track("video-0"), segment)
        plain = {s.path: (info.folder / s.path).read_bytes() for s in segments}
        summary = media.finish()
        archive.track_finished(info.folder, summary)
        info.finished_at = time.time()
        await archive.recording_finished(info, [summary])
        assert await archive.dispatcher.wait_idle(10)
    finally:
        await archive.stop()
    assert len(segments) == 2
    store = tmp_path / "recordings-store"
    manifest = Manifest.model_validate_json(next(store.rglob(MANIFEST_NAME)).read_bytes())
    by_name = {o.name: o for o in manifest.objects}
    for path, data in plain.items():
        obj = by_name[path]
        assert obj.encryption == "age" and obj.content_sha256 == hashlib.sha256(data).hexdigest()
        stored = (store / obj.key).read_bytes()
        assert data not in stored
        decrypted = age_decrypt(tmp_path / "key.txt", stored)
        assert decrypted == data and parse(decrypted).datagrams
