"""`callvault export` on the host: the catalog and key `callvault serve` would use, bundles in --out that
verify offline; bad options are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vault import T0

from recorder.api.db import Database
from recorder.lifecycle.bundle_verify import verify_bundle
from recorder.lifecycle.service import KEY_FILE
from recorder.manifest.signing import SigningSettings, load_signing_key


def callvault(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_export_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "callvault.toml"
    config.write_text(f'data_dir = "{data}"\n\n[janus]\nenabled = false\n')
    folder = data / "recordings" / "cli-1"
    folder.mkdir(parents=True)
    (folder / "1001-video-0.webm").write_bytes(b"v" * 5000)
    db = Database(data / "catalog.sqlite3")
    db.submit(
        lambda: db.connection.execute(
            "INSERT INTO recordings (recording_id, room_id, folder, status, started_at, finished_at,"
            " updated_at) VALUES ('cli-1', 'billing', ?, 'finished', ?, ?, ?)",
            (str(folder), T0, T0 + 60, T0),
        )
    ).result()
    db.close()
    out = tmp_path / "handover"

    done = callvault("export", "--config", str(config), "--out", str(out), "--room", "billing")
    assert done.returncode == 0, done.stderr
    (job,) = [p for p in out.iterdir() if p.is_dir()]
    bundle = job / "cli-1.zip"
    assert str(bundle) in done.stdout and (job / "export.json.sig").is_file()
    key = load_signing_key(SigningSettings(key_file=data / KEY_FILE, generate_if_missing=False))
    report = verify_bundle(bundle, key.public_key())
    assert report.ok, report.problems

    bad = callvault("export", "--config", str(config), "--out", str(out), "--started-after", "yesterday")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "started_after" in bad.stderr
