"""`callvault verify TARGET`: check a stored recording against its signed manifest.

TARGET is one of
- an evidence bundle `BUNDLE.zip` made by an export (recorder/lifecycle): its signed index, every file,
  the recording's manifest and the audit excerpt are checked (docs/lifecycle.md);
- a local folder holding manifest.json, manifest.json.sig and the recording's files;
- `s3://BUCKET/PREFIX`: the objects under PREFIX. Endpoint and credentials come from the options or the
  environment: CALLVAULT_S3_ENDPOINT (host:port), CALLVAULT_S3_ACCESS_KEY, CALLVAULT_S3_SECRET_KEY,
  CALLVAULT_S3_SECURE (1/0, true/false; default true), CALLVAULT_S3_REGION (default us-east-1);
- a recording id, looked up under the local storage root (--root or CALLVAULT_STORAGE_ROOT) through the
  key template (--key-template or CALLVAULT_KEY_TEMPLATE, default `{date:%Y/%m/%d}/{recording_id}/{name}`).

`--identity KEYFILE` (an age identity file, or an SSH private key, of one of the recording's recipients)
also decrypts every encrypted object and checks it against the plaintext hash the signed manifest lists
(and, for segments, the hash chained when the segment closed): `bad-plaintext` problems. Without it an
encrypted recording is checked as stored (ciphertext hashes, chains, signature), which needs no key.

The signature is checked against --public-key (or CALLVAULT_PUBLIC_KEY_FILE): a PEM public key, or a PEM
private key whose public half is used. Without one, the key the manifest names is used and a note says so.

`--audit PATH` checks the control API's audit log instead (or as well): PATH is the catalog database
(data_dir/catalog.sqlite3, opened read-only; or a postgresql:// URL, api.catalog_url, read in a read-only
transaction) or a JSON Lines export (GET /v1/audit/export); every entry's
hash and its link to the previous one are recomputed (`broken-chain: audit#SEQ: why`).

Output: one line per failing object, `<kind>: <name>: <why>` (kinds: bad-signature, bad-manifest,
missing, changed, extra, broken-chain, bad-revision), then a summary line. Exit 0 when everything holds, 1
when something does not, 2 on bad usage or when the target cannot be read (one line on stderr).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from recorder.api.audit import AuditReadError, read_audit_file, read_audit_postgres, verify_audit_chain
from recorder.crypto.age import CryptoError, read_identities
from recorder.db.url import CatalogUrlError, redact
from recorder.lifecycle import bundle_verify
from recorder.manifest.model import MANIFEST_NAME
from recorder.manifest.signing import SigningKeyError, load_public_key
from recorder.manifest.verify import FolderSource, Source, StoreSource, verify_recording
from recorder.storage.base import StorageError
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE, check_id, check_key_template, prefix_glob
from recorder.storage.s3 import S3Store
from recorder.storage.settings import S3Settings


class UsageError(Exception):
    """Bad usage or an unreadable target: exit 2 with this message."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        help="check a stored recording's hashes, chain and signature",
        description="Check a recording against its signed manifest. TARGET: a folder, s3://bucket/prefix,"
        " or a recording id under --root.",
    )
    p.add_argument("target", metavar="TARGET", nargs="?")
    p.add_argument(
        "--audit",
        metavar="PATH",
        help="check an audit log (catalog database, its postgresql:// URL, or an export)",
    )
    p.add_argument("--public-key", type=Path, help="PEM Ed25519 public key to check the signature with")
    p.add_argument(
        "--identity",
        type=Path,
        metavar="KEYFILE",
        help="age identity file: also decrypt encrypted objects and check their plaintext",
    )
    add_target_options(p)
    p.set_defaults(func=run)


def add_target_options(p: argparse.ArgumentParser) -> None:
    """The options that locate a TARGET (shared with `callvault decrypt`)."""
    p.add_argument("--root", type=Path, help="local storage root to find a recording id under")
    p.add_argument(
        "--key-template", help="object key template (default " + DEFAULT_KEY_TEMPLATE.replace("%", "%%") + ")"
    )
    p.add_argument("--s3-endpoint", help="S3 host:port (env CALLVAULT_S3_ENDPOINT)")
    p.add_argument("--s3-region", help="S3 region (env CALLVAULT_S3_REGION, default us-east-1)")
    p.add_argument("--s3-access-key", help="S3 access key (env CALLVAULT_S3_ACCESS_KEY)")
    p.add_argument("--s3-secret-key", help="S3 secret key (env CALLVAULT_S3_SECRET_KEY)")
    p.add_argument(
        "--s3-secure",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use TLS (env CALLVAULT_S3_SECURE, default on)",
    )


def run(args: argparse.Namespace) -> int:
    if args.target is None and args.audit is None:
        print("callvault verify: error: give a TARGET recording, --audit PATH, or both", file=sys.stderr)
        return 2
    status = run_audit(args.audit) if args.audit is not None else 0
    if args.target is None:
        return status
    return max(status, run_recording(args))


def run_audit(source: str) -> int:
    postgres = source.startswith(("postgresql://", "postgres://"))
    path = redact(source) if postgres else Path(source)
    try:
        entries = read_audit_postgres(source) if postgres else list(read_audit_file(Path(source)))
    except (AuditReadError, CatalogUrlError) as exc:
        print(f"callvault verify: error: {exc}", file=sys.stderr)
        return 2
    problems = verify_audit_chain(entries)
    for problem in problems:
        print(problem.line())
    if problems:
        print(f"FAILED audit {path}: {len(problems)} problems in {len(entries)} entries", file=sys.stderr)
        return 1
    head = entries[-1].hash if entries else "none"
    print(f"OK audit {path}: {len(entries)} entries, hash chain verified (head {head})")
    return 0


def run_recording(args: argparse.Namespace) -> int:
    # urllib3 logs each connection retry; the command reports failures in its own one line.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    target = Path(args.target)
    if target.suffix == ".zip" and target.is_file():  # an evidence bundle (recorder/lifecycle)
        try:
            return bundle_verify.run(target, _public_key(args))
        except SigningKeyError as exc:
            print(f"callvault verify: error: {exc}", file=sys.stderr)
            return 2
    try:
        key = _public_key(args)
        identities = read_identities(args.identity) if args.identity is not None else None
        source = resolve_target(args)
        report = verify_recording(source, key, identities=identities)
    except (UsageError, SigningKeyError, CryptoError) as exc:
        print(f"callvault verify: error: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"callvault verify: error: cannot read {args.target}: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(problem.line())
    if report.ok and not report.key_pinned:
        print(
            f"note: signature checked against the key the manifest names ({report.key_id});"
            " pass --public-key to pin the signer",
            file=sys.stderr,
        )
    if report.ok:
        decrypted = f", {report.plaintext_checked} decrypted and plaintext verified" if identities else ""
        print(
            f"OK {report.target}: {report.objects_checked} objects{decrypted}, chains and signature verified"
        )
        return 0
    print(f"FAILED {report.target}: {len(report.problems)} problems", file=sys.stderr)
    return 1


def _public_key(args: argparse.Namespace) -> Ed25519PublicKey | None:
    path: Path | None = args.public_key
    if path is None and os.environ.get("CALLVAULT_PUBLIC_KEY_FILE"):
        path = Path(os.environ["CALLVAULT_PUBLIC_KEY_FILE"])
    return None if path is None else load_public_key(path)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise UsageError(f"{name}={value!r}: expected 1/0, true/false, yes/no or on/off")


def resolve_target(args: argparse.Namespace) -> Source:
    target: str = args.target
    if target.startswith("s3://"):
        return _s3_source(args, target)
    path = Path(target)
    if path.is_dir():
        return FolderSource(path)
    try:
        recording_id = check_id(target)
    except ValueError:
        raise UsageError(f"{target} is not a folder, an s3://bucket/prefix or a recording id") from None
    root_arg: Path | None = args.root
    root = root_arg or (
        Path(os.environ["CALLVAULT_STORAGE_ROOT"]) if os.environ.get("CALLVAULT_STORAGE_ROOT") else None
    )
    if root is None:
        raise UsageError(f"{target} is not a folder; to look it up as a recording id, pass --root")
    template = args.key_template or os.environ.get("CALLVAULT_KEY_TEMPLATE") or DEFAULT_KEY_TEMPLATE
    try:
        check_key_template(template)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    matches = sorted(
        p.parent for p in root.glob(prefix_glob(template, recording_id=recording_id) + MANIFEST_NAME)
    )
    if not matches:
        raise UsageError(f"no recording {recording_id} under {root}")
    if len(matches) > 1:
        raise UsageError(
            f"recording id {recording_id} is ambiguous under {root}: {', '.join(map(str, matches))}"
        )
    return FolderSource(matches[0])


def _s3_source(args: argparse.Namespace, target: str) -> Source:
    bucket, _, prefix = target[len("s3://") :].partition("/")
    if not bucket:
        raise UsageError(f"{target}: no bucket (expected s3://bucket/prefix)")
    if not prefix.strip("/"):
        raise UsageError(f"{target}: no prefix (expected s3://bucket/prefix of one recording)")
    prefix = prefix.rstrip("/") + "/"
    endpoint = args.s3_endpoint or os.environ.get("CALLVAULT_S3_ENDPOINT")
    if not endpoint:
        raise UsageError("no S3 endpoint: pass --s3-endpoint or set CALLVAULT_S3_ENDPOINT")
    secure = args.s3_secure if args.s3_secure is not None else _env_bool("CALLVAULT_S3_SECURE", True)
    try:
        settings = S3Settings(
            endpoint=endpoint,
            bucket=bucket,
            region=args.s3_region or os.environ.get("CALLVAULT_S3_REGION") or "us-east-1",
            secure=secure,
            access_key=args.s3_access_key,
            secret_key=args.s3_secret_key,
            http_retries=1,
            connect_timeout=5,
            read_timeout=60,
        )
        store = S3Store(settings)
    except ValueError as exc:
        raise UsageError(f"{target}: {exc}".splitlines()[0]) from None
    return StoreSource(store, prefix, label=f"s3://{bucket}/{prefix}")
