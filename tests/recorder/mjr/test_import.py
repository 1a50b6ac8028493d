"""`callvault import-mjr` on recordings Janus 1.1.2 made (data/: a VideoRoom call of two publishers, VP8 +
Opus and H.264 + Opus, recorded by the VideoRoom's `record: true`; tests/e2e_webrtc/test_import_mjr.py
makes them anew): one recording whose every frame is the frame `janus-pp-rec` extracts, a signed manifest
that `callvault verify` accepts, a catalog entry in the service's data folder; unreadable files are
reported one per line while the others are imported."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from media import ffprobe_errors
from mjr_compare import janus_pp_rec_frames, our_frames

from recorder.cli import main

DATA = Path(__file__).parent / "data"
FILES = sorted(DATA.glob("*.mjr"))


def only_recording(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder


def test_janus_recordings_become_one_recording_with_janus_pp_rec_s_frames(tmp_path: Path) -> None:
    if shutil.which("janus-pp-rec") is None:
        pytest.skip("janus-pp-rec (Debian's janus-tools) is not installed")
    out, key = tmp_path / "vault", tmp_path / "key.pem"
    assert main(["import-mjr", "--out", str(out), "--signing-key", str(key), *map(str, FILES)]) == 0
    folder = only_recording(out)
    assert folder.name == "janus-1234-20261130T221622Z"
    for mjr in FILES:
        ours = our_frames(folder, mjr)
        assert ours == janus_pp_rec_frames(mjr, tmp_path / "pp"), mjr.name
        assert len(ours) >= 60
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["room_id"] == "1234"
    assert sorted(p["id"] for p in manifest["participants"]) == ["4794631378007279", "7039266702745857"]
    tracks = {t["name"]: t for t in manifest["tracks"]}
    assert sorted(tracks) == [
        "4794631378007279-audio-0",
        "4794631378007279-video-1",
        "7039266702745857-audio-0",
        "7039266702745857-video-1",
    ]
    assert {t["codec"] for t in tracks.values()} == {"VP8", "H264", "OPUS"}
    assert all(t["state"] == "complete" and t["packets_lost"] == 0 for t in tracks.values())
    assert tracks["4794631378007279-video-1"]["participant_id"] == "4794631378007279"
    assert (tracks["4794631378007279-video-1"]["width"], tracks["4794631378007279-video-1"]["height"]) == (
        160,
        120,
    )
    record = json.loads((folder / "janus-import.json").read_text())
    assert sorted(s["file"] for s in record["sources"]) == [f.name for f in FILES]
    assert "janus-import.json" in {o["name"] for o in manifest["objects"]}
    assert main(["verify", str(folder), "--public-key", str(key)]) == 0
    for media in folder.glob("*.webm"):
        assert ffprobe_errors(media) == ""


def test_bad_files_are_reported_one_per_line_and_the_rest_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    video = next(f for f in FILES if f.name.endswith("-video-1.mjr") and "4794631378007279" in f.name)
    good = src / video.name
    shutil.copy(video, good)
    (src / "empty.mjr").write_bytes(b"")
    (src / "notes.mjr").write_text("hello, this is not a recording")
    bad_json = src / "videoroom-1-user-2-3-video-1.mjr"
    bad_json.write_bytes(b"MJR00002\x00\x05{bad}")
    g711 = src / "videoroom-1-user-9-3-audio-0.mjr"
    info = b'{"t":"a","c":"pcmu","s":1,"u":2}'
    g711.write_bytes(b"MJR00002" + len(info).to_bytes(2, "big") + info)
    data = video.read_bytes()
    cut = src / "videoroom-5678-user-1-1-video-1.mjr"  # another room: its own recording
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "vault"
    status = main(["import-mjr", "--out", str(out), *map(str, sorted(src.iterdir()))])
    err = capsys.readouterr().err
    assert status == 1
    assert f"callvault: error: {src / 'empty.mjr'}: not a Janus recording: 0 bytes is too short" in err
    assert f"callvault: error: {src / 'notes.mjr'}: not a Janus recording: starts with b'hello, t'" in err
    assert f"callvault: error: {bad_json}: the info header is not JSON" in err
    assert f"callvault: error: {g711}: audio codec 'pcmu' cannot be stored without transcoding" in err
    assert f"callvault: warning: {cut}: truncated at offset" in err
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2
    full = json.loads((out / folders[0] / "4794631378007279-video-1.json").read_text())
    partial = json.loads((out / next(f for f in folders if "5678" in f) / "1-video-1.json").read_text())
    assert full["frames"] == 60 and 30 <= partial["frames"] < 60 and partial["state"] == "complete"
    # importing again refuses: nothing is overwritten
    assert main(["import-mjr", "--out", str(out), str(good)]) == 1
    assert "exists already" in capsys.readouterr().err


def test_into_the_data_folder_with_a_catalog_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLVAULT_SIGNING_KEY", raising=False)
    data_dir = tmp_path / "data"
    assert main(["import-mjr", "--data-dir", str(data_dir), *map(str, FILES)]) == 0
    folder = only_recording(data_dir / "recordings")
    assert (data_dir / "callvault-signing-key.pem").exists()
    assert main(["verify", str(folder), "--public-key", str(data_dir / "callvault-signing-key.pem")]) == 0
    db = sqlite3.connect(data_dir / "catalog.sqlite3")
    (row,) = db.execute("SELECT recording_id, room_id, status, tracks, folder FROM recordings").fetchall()
    assert row == (folder.name, "1234", "finished", 4, str(folder))
    people = db.execute("SELECT participant_id FROM participants ORDER BY participant_id").fetchall()
    assert people == [("4794631378007279",), ("7039266702745857",)]


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-mjr", "--out", str(tmp_path), "--data-dir", str(tmp_path), str(FILES[0])]) == 2
    assert main(["import-mjr", "--signing-key", str(tmp_path / "k"), str(FILES[0])]) == 2
    assert main(["import-mjr", "--out", str(tmp_path / "v"), str(tmp_path / "missing.mjr")]) == 1
    assert "missing.mjr: cannot read" in capsys.readouterr().err


def test_an_unreadable_catalog_imports_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "catalog.sqlite3").write_text("not a database")
    assert main(["import-mjr", "--data-dir", str(data_dir), *map(str, FILES)]) == 2
    assert "cannot open the catalog" in capsys.readouterr().err
    assert not (data_dir / "recordings").exists() or not any((data_dir / "recordings").iterdir())
