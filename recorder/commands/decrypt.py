"""`callvault decrypt TARGET --identity KEYFILE --out DIR`: restore an encrypted recording's original files.

TARGET is what `callvault verify` takes: a folder holding a stored recording (manifest.json and its
`.age` objects), `s3://BUCKET/PREFIX` (endpoint and credentials as for verify), or a recording id under
--root. Every object the manifest lists is decrypted (or copied, when stored readable) into DIR under its
original name and checked against the plaintext hash the signed manifest lists, so the files are the
recorded ones bit for bit; manifest.json and its signature are copied beside them. Nothing in DIR is
overwritten. Check the manifest's signature first with `callvault verify TARGET --identity KEYFILE`.

Exit 0 when every file was restored, 1 when some could not be (one line each), 2 on bad usage, an
unreadable identity file, an identity that is not a recipient, or an unreadable target (one line).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from recorder.commands.verify import UsageError, add_target_options, resolve_target
from recorder.crypto.age import CryptoError, read_identities
from recorder.manifest.restore import RestoreError, restore_recording
from recorder.storage.base import StorageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "decrypt",
        help="restore an encrypted recording's original files with a recipient's key",
        description="Decrypt a stored recording into a folder. TARGET: a folder, s3://bucket/prefix, or a"
        " recording id under --root.",
    )
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--identity", type=Path, metavar="KEYFILE", required=True, help="age identity file")
    p.add_argument("--out", type=Path, metavar="DIR", required=True, help="folder to restore into")
    add_target_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        identities = read_identities(args.identity)
        source = resolve_target(args)
        result = restore_recording(source, identities, args.out)
    except (UsageError, CryptoError, RestoreError) as exc:
        print(f"callvault decrypt: error: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"callvault decrypt: error: cannot read {args.target}: {exc}", file=sys.stderr)
        return 2
    for name, why in sorted(result.failed.items()):
        print(f"failed: {name}: {why}")
    done = len(result.decrypted) + len(result.copied)
    counts = f"{len(result.decrypted)} decrypted, {len(result.copied)} copied"
    summary = f"{result.recording_id}: {counts} into {args.out}"
    if result.failed:
        print(f"FAILED {summary}; {len(result.failed)} not restored", file=sys.stderr)
        return 1
    print(f"OK {summary} ({done} files, plaintext hashes verified)")
    return 0
