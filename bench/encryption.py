"""Encryption benchmark (archive.encryption, age through pyrage), side by side with the standard tool.

    .venv/bin/python bench/encryption.py --mb 64 --streams 100 --seconds 15

1. Throughput: CallVault's `encrypt_file` (hashing plaintext and ciphertext) and `decrypt_file` on a
   file of --mb MiB, next to the `age` command-line tool doing the same, in MB per CPU-second (= MB/s on
   one core); and the parts: pyrage's encryption alone, one SHA-256 pass (hashlib, OpenSSL), and, for
   reference only, OpenSSL's ChaCha20-Poly1305 (cryptography) on 64 KiB chunks, age's chunk size.
2. Share of the ingest cost: --streams audio+video calls (VP8 ~1 Mbit/s + Opus, bench/ingest.py's media)
   replayed at real rate into one `callvault record-rtp`; then every file those calls left (segments,
   joined tracks, summaries: what the archive encrypts) is encrypted as the archive does it: a segment
   with the plaintext hash taken when it closed (part of the ingest cost) and no ciphertext hash (the
   uploader hashes what it sends, encrypted or not), a track file or summary hashing both. Prints the
   recorder's CPU per call without encryption, the encryption CPU per call, how much encryption adds
   (net of what the unencrypted archive does with the same files: hash the track files and summaries),
   and the same if the joined track files of encrypted recordings were not stored (segments only).

Bounded: one replay of --seconds to 127.0.0.1, files in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import pyrage  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402
from ingest import make_media, run_callvault  # noqa: E402

from recorder.crypto.age import decrypt_file, encrypt_file, parse_recipient, read_identities  # noqa: E402
from recorder.storage.base import sha256_file  # noqa: E402


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def throughput(mb: int, work: Path) -> None:
    key = work / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True)
    recipients = [parse_recipient(recipient.stdout.strip())]
    identities = read_identities(key)
    plain = work / "plain.bin"
    with plain.open("wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))
    size_mb = mb * 1.048576

    def cpu_of(run: object) -> float:
        c0, t0 = time.process_time(), children_cpu()
        run()  # type: ignore[operator]
        return (time.process_time() - c0) + (children_cpu() - t0)

    chacha = ChaCha20Poly1305(os.urandom(32))
    nonce = os.urandom(12)

    def openssl_chacha() -> None:
        with plain.open("rb") as f:
            while chunk := f.read(1 << 16):
                chacha.encrypt(nonce, chunk, None)

    rows = [
        ("callvault encrypt (pyrage, 2 hashes)", cpu_of(lambda: encrypt_file(plain, work / "cv.age", recipients))),
        ("pyrage encrypt_file alone", cpu_of(lambda: pyrage.encrypt_file(str(plain), str(work / "py.age"), recipients))),
        ("SHA-256 of the file (hashlib, OpenSSL)", cpu_of(lambda: sha256_file(plain))),
        ("ChaCha20-Poly1305 (OpenSSL), reference", cpu_of(openssl_chacha)),
        ("age -r (Go, age 1.1)", cpu_of(lambda: subprocess.run(
            ["age", "-r", recipient.stdout.strip(), "-o", str(work / "cli.age"), str(plain)], check=True))),
        ("callvault decrypt (pyrage, 1 hash)", cpu_of(lambda: decrypt_file(work / "cv.age", work / "cv.out", identities))),
        ("age -d (Go, age 1.1)", cpu_of(lambda: subprocess.run(
            ["age", "-d", "-i", str(key), "-o", str(work / "cli.out"), str(work / "cli.age")], check=True))),
    ]  # fmt: skip
    print(f"throughput on a {mb} MiB file (MB per CPU-second):")
    for name, cpu in rows:
        print(f"  {name:40} {size_mb / cpu:8.0f} MB/s   ({cpu:.3f} CPU s)")
    print(
        f"  ratio callvault/age: encrypt {rows[4][1] / rows[0][1]:.2f}x, decrypt {rows[6][1] / rows[5][1]:.2f}x"
    )


def share(streams: int, seconds: float, work: Path) -> None:
    video, audio = make_media(seconds)
    result = run_callvault(video, audio, streams, seconds, work)
    out = work / "cv-out" / "r"
    files = [p for p in out.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    key = work / "key2.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True)
    recipients = [parse_recipient(recipient.stdout.strip())]
    sealed = work / "sealed"
    segments = [p for p in files if p.parent.name.endswith(".segments")]
    closed = {p: sha256_file(p) for p in segments}  # taken at each segment's close, in the ingest
    others = [p for p in files if p not in closed]
    c0 = time.process_time()
    for i, path in enumerate(files):  # as the archive did until 2026-12-01: every file hashed twice
        encrypt_file(path, sealed / f"b{i}.age", recipients, durable=False)
    enc_before = time.process_time() - c0
    c0 = time.process_time()
    for i, path in enumerate(segments):  # as the archive does
        encrypt_file(path, sealed / f"s{i}.age", recipients, durable=False, plain_sha256=closed[path],
                     hash_ciphertext=False)  # fmt: skip
    enc_segments = time.process_time() - c0
    c0 = time.process_time()
    joined = 0.0
    for i, path in enumerate(others):
        t0 = time.process_time()
        encrypt_file(path, sealed / f"o{i}.age", recipients, durable=False)
        if path.suffix != ".json":
            joined += time.process_time() - t0
    enc = enc_segments + time.process_time() - c0
    # What the archive does with the same files when it does not encrypt: hash the files not hashed when
    # they were written (joined tracks, summaries; segments are hashed as they close, in the ingest).
    c0 = time.process_time()
    for path in others:
        sha256_file(path)
    plain_archive = time.process_time() - c0
    ingest_pct = 100 * result.cpu_seconds / seconds / streams
    enc_pct = 100 * enc / seconds / streams
    print(f"{streams} calls for {seconds:.0f} s: {len(files)} files, {total / 1e6:.1f} MB to encrypt")
    print(f"  ingest (callvault record-rtp)  {ingest_pct:7.3f} % of a core per call  (frames {result.frames}/"
          f"{result.expected_frames}, lost packets {result.lost_packets})")  # fmt: skip
    print(
        f"  encryption of what it wrote    {enc_pct:7.3f} % of a core per call  ({total / 1e6 / enc:.0f} MB/s)"
    )
    print(f"  encryption adds {100 * enc / result.cpu_seconds:.1f} % to the ingest cost per call"
          f" ({100 * (enc - plain_archive) / result.cpu_seconds:.1f} % more than the unencrypted archive's"
          " hashing of the same files)")  # fmt: skip
    print(f"  before (every file hashed on both sides): {100 * enc_before / result.cpu_seconds:.1f} %"
          f" ({100 * (enc_before - plain_archive) / result.cpu_seconds:.1f} % more than the unencrypted archive);"
          f" now/before CPU {enc / enc_before:.2f}")  # fmt: skip
    print(f"  of which the joined track files {100 * joined / result.cpu_seconds:.1f} %; without them (segments"
          f" and summaries only) encryption would add {100 * (enc - joined - plain_archive) / result.cpu_seconds:.1f} %")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=64, help="size of the throughput test file in MiB")
    ap.add_argument("--streams", type=int, default=100, help="concurrent audio+video calls")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--skip-share", action="store_true", help="only the throughput test")
    args = ap.parse_args()
    if shutil.which("age") is None or shutil.which("ffmpeg") is None:
        print("needs age and ffmpeg (make system-deps)", file=sys.stderr)
        return 2
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        throughput(args.mb, Path(tmp))
    if not args.skip_share:
        with tempfile.TemporaryDirectory() as tmp:
            share(args.streams, args.seconds, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
