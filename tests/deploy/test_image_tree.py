"""The image's file tree, built without a Docker engine: the builder stage of deploy/Dockerfile replayed
on this machine. The files its COPY instructions name are copied into a scratch build context, a fresh
virtual environment stands for /opt/callvault, and the stage's RUN instructions run as written (with
/opt/callvault pointing at that venv): a regular, non-editable `pip install .`. Then `callvault serve`
starts from that tree alone (PATH = the venv's bin: no ffmpeg, no system tools), answers /healthz, passes
the image's HEALTHCHECK script, and exits 0 on SIGTERM. The shared libraries the installed wheels need
beyond what they bundle must be ones a python:3.11-slim-bookworm image has."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_kit import DEPLOY, ROOT

pytestmark = pytest.mark.timeout(240)

# glibc (libc6), libgcc-s1, libstdc++6 and zlib1g: in debian:bookworm-slim, so in python:*-slim-bookworm.
BASE_IMAGE_LIBS = {
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libc.so.6",
    "libm.so.6",
    "libmvec.so.1",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libz.so.1",
}


def _builder_stage() -> list[str]:
    """The builder stage's instructions, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    stage: list[str] = []
    inside = False
    for raw in joined.splitlines():
        line = raw.strip()
        if line.startswith("FROM "):
            inside = line.endswith(" AS builder")
            continue
        if inside and line and not line.startswith("#"):
            stage.append(line)
    return stage


CONTEXT_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "native_build.json")
"""What the build context leaves out of the copied folders (.dockerignore): no host build of the hot path."""
SOURCES = ("pyproject.toml", "README.md", "recorder", "janus_bridge", "postprocess")


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=CONTEXT_IGNORED)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _clean_env() -> dict[str, str]:
    env = {
        **os.environ,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for key in [k for k in env if k.startswith("CALLVAULT_") or k == "VIRTUAL_ENV"]:
        del env[key]
    return env


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The builder stage replayed; /opt/<name> is <tmp>/opt-<name> (/opt/callvault: the tree yielded)."""
    tmp = tmp_path_factory.mktemp("image")
    venv = tmp / "opt-callvault"
    workdir = tmp / "src"
    workdir.mkdir()
    env = _clean_env()

    def here(path: str) -> Path:
        return tmp / path.replace("/opt/", "opt-", 1) if path.startswith("/opt/") else workdir / path

    for instruction in _builder_stage():
        op, _, rest = instruction.partition(" ")
        if op == "ENV":
            continue  # set above
        elif op == "ARG":
            name, _, default = rest.partition("=")
            env.setdefault(name, default)
        elif op == "WORKDIR":
            assert rest == "/src"
        elif op == "COPY":
            *sources, dest = rest.split()
            for source in sources:
                _copy(ROOT / source, here(dest) / source if dest.endswith("/") else here(dest))
        elif op == "RUN" and "apt-get install" in rest:
            # the stage's system packages: this machine's own, or the build goes on without compiling
            assert "gcc libc6-dev" in rest
            if env["NATIVE"] == "1" and shutil.which("gcc") is None:
                env["NATIVE"] = "0"
        elif op == "RUN":
            command = re.sub(r"(?<![\w/])python -m venv", f"{sys.executable} -m venv", rest)
            command = command.replace("/opt/", f"{tmp}/opt-")
            result = subprocess.run(
                ["sh", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=200,
                check=False,
            )
            assert result.returncode == 0, f"RUN {rest}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        else:
            raise AssertionError(f"the test does not know the builder instruction {op}")
    yield venv


def _hot_path(python: Path) -> list[str]:
    """What an installed tree runs: [implementation, its start-up line, the file that parses RTP packets]."""
    code = (
        "from recorder import native; import recorder.rtp.packet as p;"
        " print(native.implementation()); print(native.describe()); print(p.__file__)"
    )
    result = subprocess.run(
        [str(python), "-c", code], env={"PATH": str(python.parent)}, cwd=python.parent,  # not this checkout
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_install_is_a_regular_one(image_tree: Path) -> None:
    site = next(image_tree.glob("lib/python3*/site-packages"))
    assert (site / "recorder" / "service" / "app.py").is_file()
    assert (site / "janus_bridge" / "bridge.py").is_file()
    assert not list(site.glob("__editable__*")), "editable install: the image would point at /src"
    assert not (image_tree / "bin" / "pip").exists(), "pip stays out of the runtime image"
    assert (image_tree / "healthcheck.py").is_file()


def test_the_image_runs_the_compiled_hot_path(image_tree: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler (gcc) here: the builder stage was replayed without compiling")
    site = next(image_tree.glob("lib/python3*/site-packages"))
    implementation, line, packet = _hot_path(image_tree / "bin" / "python")
    assert (implementation, line) == ("compiled", "hot path: compiled (mypyc)")
    assert Path(packet).parent == site / "recorder" / "rtp" and packet.endswith(".so")
    assert (site / "recorder" / "native_build.json").is_file()
    assert not (site / "mypy").exists() and not (site / "mypyc").exists(), "the build's mypy is not installed"


def test_an_install_without_the_build_runs_the_sources(tmp_path: Path) -> None:
    """The image's `pip install .` from sources never compiled (docker build --build-arg NATIVE=0, or a
    plain checkout): it installs, and the sources run."""
    for source in SOURCES:
        _copy(ROOT / source, tmp_path / "src" / source)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q"]
    install += ["--no-compile", "--no-deps", "."]
    result = subprocess.run(
        install,
        cwd=tmp_path / "src",
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    site = next(venv.glob("lib/python3*/site-packages"))
    assert (
        not list((site / "recorder").rglob("*.so")) and not (site / "recorder" / "native_build.json").exists()
    )
    implementation, line, packet = _hot_path(venv / "bin" / "python")
    assert (implementation, line) == ("pure", "hot path: pure Python (not compiled)")
    assert Path(packet) == site / "recorder" / "rtp" / "packet.py"


def test_bundled_libraries_need_only_the_base_image(image_tree: Path) -> None:
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) is not installed")
    site = next(image_tree.glob("lib/python3*/site-packages"))
    bundled = {p.name for p in site.glob("*.libs/*")}
    needed: set[str] = set()
    for lib in site.rglob("*.so*"):
        if lib.is_file():
            out = subprocess.run(
                ["readelf", "-d", str(lib)], capture_output=True, text=True, check=False
            ).stdout
            needed |= set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
    assert needed, "no shared library dependencies found: readelf output not understood"
    outside = sorted(needed - bundled - BASE_IMAGE_LIBS)
    assert not outside, f"wheels need libraries the slim base image lacks: {outside}"


def test_pyav_works_without_ffmpeg_on_path(image_tree: Path) -> None:
    code = "import av; av.codec.Codec('vp8', 'r'); av.codec.Codec('opus', 'r'); print(av.__version__)"
    result = subprocess.run(
        [str(image_tree / "bin" / "python"), "-c", code], env={"PATH": str(image_tree / "bin")},
        capture_output=True, text=True, timeout=60, check=False,)  # fmt: skip
    assert result.returncode == 0, result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_from_the_tree(image_tree: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "PATH": str(image_tree / "bin"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CALLVAULT_JANUS__ENABLED": "false",
        "CALLVAULT_HTTP_HOST": "127.0.0.1",
        "CALLVAULT_HTTP_PORT": str(port),
    }
    workdir = tmp_path / "var-lib-callvault"  # the image's WORKDIR and volume
    workdir.mkdir()
    proc = subprocess.Popen(
        [str(image_tree / "bin" / "callvault"), "serve"], cwd=workdir, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"serve did not answer /healthz:\n{proc.communicate(timeout=10)[0]!r}"
                    ) from None
                time.sleep(0.1)
        health = [str(image_tree / "bin" / "python"), str(image_tree / "healthcheck.py")]
        assert subprocess.run(health, env=env, timeout=10, check=False).returncode == 0
        assert (workdir / "callvault-data" / "recordings").is_dir()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert subprocess.run(health, env=env, timeout=10, capture_output=True, check=False).returncode == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
