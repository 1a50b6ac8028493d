"""`callvault public-key [--config FILE]`: print the public half of the manifest signing key.

The key is found as `callvault serve` finds it with the same settings (archive.signing): the environment
variable `key_env` (base64 of the raw 32-byte seed) first, else the PEM file `key_file` (relative to
data_dir). It is never generated here: with neither, exit 2 saying where serve would create it.

Output (stdout, nothing else):
- `--format pem` (default): SubjectPublicKeyInfo PEM, what `callvault verify --public-key FILE` takes;
- `--format base64`: the raw 32-byte key in base64, as the manifest's `signer.public_key`;
- `--format key-id`: the hex SHA-256 of the raw key, as the manifest's `signer.key_id`.

The same key is served by the control API at GET /v1/signing-key.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from recorder.config_errors import describe
from recorder.manifest.signing import (
    SigningKeyError,
    SigningSettings,
    key_id,
    load_signing_key,
    public_key_pem,
    raw_public,
)
from recorder.service.settings import load_settings

FORMATS = ("pem", "base64", "key-id")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "public-key",
        help="print the manifest signing public key (for verify --public-key)",
        description="Print the public half of the key that signs manifests, read as `callvault serve` reads"
        " it with the same configuration (archive.signing: the key_env variable, else key_file under"
        " data_dir). `callvault public-key > signing.pub` then `callvault verify --public-key signing.pub"
        " FOLDER`. The control API serves the same key at GET /v1/signing-key.",
    )
    p.add_argument("--config", type=Path, default=None, help="TOML configuration file (as for serve)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="pem",
        help="pem: SubjectPublicKeyInfo PEM; base64: the raw key (manifest signer.public_key);"
        " key-id: hex SHA-256 of the raw key (manifest signer.key_id)",
    )
    p.set_defaults(func=run)


def signing_settings(config: Path | None) -> SigningSettings:
    """archive.signing with key_file made absolute under data_dir (the defaults when there is no
    [archive] table: serve signs nothing then, but the key is still where it would be)."""
    settings = load_settings(config)
    if settings.archive is not None:
        return settings.archive.resolved(settings.data_dir).signing
    defaults = SigningSettings()
    return defaults.model_copy(update={"key_file": settings.data_dir / defaults.key_file})


def run(args: argparse.Namespace) -> int:
    try:
        signing = signing_settings(args.config)
    except (ValidationError, OSError, ValueError) as exc:
        print(f"callvault: error: invalid configuration: {describe(exc, args.config)}", file=sys.stderr)
        return 2
    if not os.environ.get(signing.key_env) and not signing.key_file.exists():
        print(
            f"callvault: error: no signing key yet: {signing.key_env} is unset and {signing.key_file} does"
            " not exist (callvault serve creates it on its first start when"
            " archive.signing.generate_if_missing)",
            file=sys.stderr,
        )
        return 2
    try:
        key = load_signing_key(signing.model_copy(update={"generate_if_missing": False}))
    except SigningKeyError as exc:
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 2
    public = key.public_key()
    if args.format == "pem":
        sys.stdout.write(public_key_pem(public).decode())
    elif args.format == "base64":
        print(base64.b64encode(raw_public(public)).decode())
    else:
        print(key_id(public))
    return 0
