"""`callvault public-key`: the key serve signs with, read from the same settings, printed so that
`callvault verify --public-key` checks a real signed manifest with it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder.manifest.signing import write_private_key

if TYPE_CHECKING:
    from conftest import Recording

CLI = Path(sys.executable).with_name("callvault")


def callvault(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "recorder.cli"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    return subprocess.run(
        [*command, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **(env or {})},
    )


def write_config(tmp_path: Path, key_file: str = "keys/signing.pem") -> Path:
    config = tmp_path / "callvault.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        "[janus]\nenabled = false\n"
        '[archive.storage]\nbackend = "local"\n'
        '[archive.storage.local]\nroot = "store"\n'
        f'[archive.signing]\nkey_file = "{key_file}"\n'
    )
    return config


def test_printed_key_verifies_a_signed_manifest(tmp_path: Path, recording: Recording) -> None:
    config = write_config(tmp_path)
    write_private_key(recording.key, tmp_path / "data" / "keys" / "signing.pem")  # relative to data_dir

    pem = callvault("public-key", "--config", str(config))
    assert pem.returncode == 0, pem.stderr
    assert pem.stdout.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert pem.stdout.endswith("-----END PUBLIC KEY-----\n")
    public = tmp_path / "signing.pub"
    public.write_text(pem.stdout)

    verified = callvault("verify", str(recording.folder), "--public-key", str(public))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK ")
    assert "pass --public-key" not in verified.stderr  # the key was pinned

    signer = json.loads((recording.folder / "manifest.json").read_bytes())["signer"]
    raw = callvault("public-key", "--config", str(config), "--format", "base64")
    assert raw.stdout == signer["public_key"] + "\n"
    assert len(base64.b64decode(raw.stdout)) == 32
    kid = callvault("public-key", "--config", str(config), "--format", "key-id")
    assert kid.stdout == signer["key_id"] + "\n"


def test_another_key_fails_verification(tmp_path: Path, recording: Recording) -> None:
    config = write_config(tmp_path)
    write_private_key(Ed25519PrivateKey.generate(), tmp_path / "data" / "keys" / "signing.pem")
    pem = callvault("public-key", "--config", str(config))
    assert pem.returncode == 0, pem.stderr
    public = tmp_path / "other.pub"
    public.write_text(pem.stdout)
    verified = callvault("verify", str(recording.folder), "--public-key", str(public))
    assert verified.returncode == 1
    assert "bad-signature: manifest.json: " in verified.stdout


def test_the_environment_variable_wins_as_for_serve(tmp_path: Path, recording: Recording) -> None:
    config = write_config(tmp_path)
    write_private_key(Ed25519PrivateKey.generate(), tmp_path / "data" / "keys" / "signing.pem")
    seed = recording.key.private_bytes_raw()
    pem = callvault(
        "public-key", "--config", str(config), env={"CALLVAULT_SIGNING_KEY": base64.b64encode(seed).decode()}
    )
    assert pem.returncode == 0, pem.stderr
    assert pem.stdout == recording.public_key_file.read_text()


def test_no_key_yet_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = callvault("public-key", "--config", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no signing key yet" in result.stderr and "signing.pem" in result.stderr
    assert not (tmp_path / "data" / "keys").exists()
