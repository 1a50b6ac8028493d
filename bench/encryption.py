"""Encryption benchmark (archive.encryption, age through pyrage), side by side with the standard tool.

    .venv/bin/python bench/encryption.py --mb 64 --streams 100 --seconds 15

1. Throughput: CallVault's `encrypt_file` (streamed, hashing plaintext and ciphertext on the way) and
   `decrypt_file` on a file of --mb MiB, next to the `age` command-line tool doing the same, in MB per
   CPU-second (= MB/s on one core).
2. Share of the ingest cost: --streams audio+video calls (VP8 ~1 Mbit/s + Opus, bench/ingest.py's media)
   replayed at real rate into one `callvault record-rtp`; then every file those calls left (segments,
   joined tracks, summaries: what the archive encrypts) is encrypted as the archive does it. Prints the
   recorder's CPU per call without encryption, the encryption CPU per call, and how much encryption adds.

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

    rows = [
        ("callvault encrypt (pyrage, 2 hashes)", cpu_of(lambda: encrypt_file(plain, work / "cv.age", recipients))),
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
        f"  ratio callvault/age: encrypt {rows[1][1] / rows[0][1]:.2f}x, decrypt {rows[3][1] / rows[2][1]:.2f}x"
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
    c0 = time.process_time()
    for i, path in enumerate(files):
        encrypt_file(path, sealed / f"{i}.age", recipients, durable=False)  # as the archive does
    enc = time.process_time() - c0
    # What the archive does with the same files when it does not encrypt: hash the files not hashed when
    # they were written (joined tracks, summaries; segments are hashed as they close, in the ingest).
    c0 = time.process_time()
    for path in files:
        if ".segments" not in path.parent.name:
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
