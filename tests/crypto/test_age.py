"""recorder/crypto/age.py against the real `age` command-line tool (Debian package `age`): what CallVault
encrypts, `age -d` decrypts bit for bit, and what `age` encrypts, CallVault decrypts."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from age_kit import keygen

from recorder.crypto.age import (
    CryptoError,
    decrypt_chunks,
    decrypt_file,
    encrypt_file,
    parse_recipient,
    parse_recipients,
    read_identities,
)

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is installed by make")


def test_age_decrypts_what_callvault_encrypted_for_two_recipients(tmp_path: Path) -> None:
    customer, escrow = keygen(tmp_path / "customer.txt"), keygen(tmp_path / "escrow.txt")
    plain = tmp_path / "seg.mkv"
    plain.write_bytes(os.urandom(300_000) + b"tail")  # several 64 KiB chunks and a partial one
    sealed = encrypt_file(plain, tmp_path / "out" / "seg.mkv.age", parse_recipients([customer, escrow]))
    cipher = (tmp_path / "out" / "seg.mkv.age").read_bytes()
    assert sealed.plain_sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()
    assert sealed.plain_size == plain.stat().st_size
    assert sealed.sha256 == hashlib.sha256(cipher).hexdigest() and sealed.size == len(cipher)
    assert plain.read_bytes()[:4096] not in cipher
    for key in ("customer.txt", "escrow.txt"):
        out = subprocess.run(
            ["age", "-d", "-i", str(tmp_path / key), str(tmp_path / "out" / "seg.mkv.age")],
            check=True,
            capture_output=True,
        ).stdout
        assert out == plain.read_bytes()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_callvault_decrypts_what_age_encrypted(tmp_path: Path) -> None:
    recipient = keygen(tmp_path / "key.txt")
    plain = tmp_path / "a.bin"
    plain.write_bytes(os.urandom(100_000))
    subprocess.run(["age", "-r", recipient, "-o", str(tmp_path / "a.age"), str(plain)], check=True)
    identities = read_identities(tmp_path / "key.txt")
    digest, size = decrypt_file(tmp_path / "a.age", tmp_path / "a.out", identities)
    assert (tmp_path / "a.out").read_bytes() == plain.read_bytes()
    assert (digest, size) == (hashlib.sha256(plain.read_bytes()).hexdigest(), 100_000)
    data = (tmp_path / "a.age").read_bytes()
    pieces = (data[i : i + 7000] for i in range(0, len(data), 7000))
    assert b"".join(decrypt_chunks(pieces, identities, "a.age")) == plain.read_bytes()


def test_wrong_identity_damaged_and_truncated_ciphertext_are_clear_errors(tmp_path: Path) -> None:
    recipient = keygen(tmp_path / "right.txt")
    keygen(tmp_path / "wrong.txt")
    plain = tmp_path / "p"
    plain.write_bytes(os.urandom(200_000))
    encrypt_file(plain, tmp_path / "p.age", [parse_recipient(recipient)])
    with pytest.raises(CryptoError, match="wrong key"):
        decrypt_file(tmp_path / "p.age", tmp_path / "x", read_identities(tmp_path / "wrong.txt"))
    assert not (tmp_path / "x").exists()
    data = bytearray((tmp_path / "p.age").read_bytes())
    data[-100] ^= 1
    (tmp_path / "bad.age").write_bytes(bytes(data))
    right = read_identities(tmp_path / "right.txt")
    with pytest.raises(CryptoError, match="damaged"):
        decrypt_file(tmp_path / "bad.age", tmp_path / "x", right)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.tmp"))
    cut = (tmp_path / "p.age").read_bytes()[:100_000]
    with pytest.raises(CryptoError):
        b"".join(decrypt_chunks(iter([cut]), right, "cut"))


def test_bad_recipients_and_identity_files_name_the_problem_not_the_secret(tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match="not a valid age recipient"):
        parse_recipient("age1notreally")
    with pytest.raises(CryptoError, match="expected 'age1"):
        parse_recipient("hello")
    with pytest.raises(CryptoError, match="no recipients"):
        parse_recipients([])
    with pytest.raises(CryptoError, match="cannot read it"):
        read_identities(tmp_path / "missing.txt")
    secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    (tmp_path / "bad.txt").write_text(f"# comment\n{secret}\n")
    with pytest.raises(CryptoError) as info:
        read_identities(tmp_path / "bad.txt")
    assert "line 2" in str(info.value) and secret not in str(info.value)
    (tmp_path / "junk.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(CryptoError, match="not ASCII"):
        read_identities(tmp_path / "junk.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(CryptoError, match="holds no identity"):
        read_identities(tmp_path / "empty.txt")


def test_ssh_keys_work_as_recipient_and_identity(tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True)
    public = (tmp_path / "id.pub").read_text()
    (tmp_path / "p").write_bytes(b"hello" * 1000)
    encrypt_file(tmp_path / "p", tmp_path / "p.age", [parse_recipient(public)])
    decrypt_file(tmp_path / "p.age", tmp_path / "q", read_identities(tmp_path / "id"))
    assert (tmp_path / "q").read_bytes() == b"hello" * 1000
