"""The compiled hot path (recorder/native.py, build_native.py): which implementation a process runs, that a
stale or partial build is never used, and that the pure-Python sources still pass the pipeline's unit tests
when a compiled build is present (run in a child pytest with CALLVAULT_NATIVE=0)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recorder import native

ROOT = Path(__file__).resolve().parents[2]
EXPECT = "CALLVAULT_TEST_EXPECT_HOT_PATH"
"""Set by the child run below: the implementation the child must be running."""
PIPELINE_TESTS = [
    "tests/recorder/rtp",
    "tests/recorder/assembly",
    "tests/recorder/codecs",
    "tests/recorder/mux",
]


def test_the_implementation_this_process_runs() -> None:
    """Every hot module comes from an extension when 'compiled', from its .py when 'pure'."""
    choice = native.activate()
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name in native.HOT_MODULES:
        module = importlib.import_module(name)
        assert module.__file__ is not None
        compiled = module.__file__.endswith(suffixes)
        assert compiled == (choice.implementation == "compiled"), (name, module.__file__, choice)
    expected = os.environ.get(EXPECT)
    if expected is not None:
        assert choice.implementation == expected, choice
    print(native.describe())


def test_a_fresh_build_runs_compiled_unless_told_otherwise() -> None:
    choice = native.choose()
    if choice.reason == "not compiled":
        pytest.skip("no compiled build in this tree (make native)")
    if choice.reason.startswith("stale"):
        pytest.skip(f"the compiled build is stale: {choice.reason} (make native)")
    assert native.choose(environ={"CALLVAULT_NATIVE": "0"}) == native.Choice("pure", "CALLVAULT_NATIVE=0")
    if os.environ.get("CALLVAULT_NATIVE") != "0":
        assert choice == native.Choice("compiled", "mypyc")


def _fake_build(root: Path) -> None:
    """A tree with the hot modules' sources, an (empty) extension for each, and a matching stamp."""
    for name in native.HOT_MODULES:
        src = native.source(name, ROOT)
        dst = native.source(name, root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        dst.with_name(dst.stem + importlib.machinery.EXTENSION_SUFFIXES[0]).write_bytes(b"")
    stamp = {"sources": native.digests(root)}
    (root / "recorder" / native.STAMP).write_text(json.dumps(stamp))


def test_an_edited_source_makes_the_build_stale(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    assert native.choose(tmp_path, environ={}) == native.Choice("compiled", "mypyc")
    edited = native.source("recorder.assembly.pipeline", tmp_path)
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert native.choose(tmp_path, environ={}) == native.Choice(
        "pure", "stale: recorder/assembly/pipeline.py changed since the build"
    )
    stamp = json.loads((tmp_path / "recorder" / native.STAMP).read_text())
    stamp["sources"]["recorder.rtp.packet"] = hashlib.sha256(b"another source").hexdigest()
    (tmp_path / "recorder" / native.STAMP).write_text(json.dumps(stamp))
    assert native.choose(tmp_path, environ={}).reason == (
        "stale: recorder/rtp/packet.py and 1 more changed since the build"
    )


def test_a_partial_build_or_a_missing_stamp_runs_the_sources(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    native.compiled_files("recorder.mux.ebml", tmp_path)[0].unlink()
    n = len(native.HOT_MODULES)
    assert native.choose(tmp_path, environ={}) == native.Choice(
        "pure", f"incomplete build ({n - 1} of {n} modules)"
    )
    _fake_build(tmp_path)
    (tmp_path / "recorder" / native.STAMP).unlink()
    assert native.choose(tmp_path, environ={}) == native.Choice(
        "pure", "recorder/native_build.json missing or unreadable"
    )
    assert native.choose(tmp_path / "elsewhere", environ={}) == native.Choice("pure", "not compiled")


def test_the_pure_python_modules_pass_the_pipeline_tests() -> None:
    """With a compiled build present, CALLVAULT_NATIVE=0 runs the sources, and they pass the pipeline's
    unit tests (RTP, reorder, assembly, codecs, muxing); without a build this process ran them already."""
    if native.choose().reason == "not compiled":
        pytest.skip("no compiled build: the other tests of this run are the pure-Python run")
    env = {**os.environ, "CALLVAULT_NATIVE": "0", EXPECT: "pure"}
    tests = [
        *PIPELINE_TESTS,
        f"{Path(__file__).relative_to(ROOT)}::test_the_implementation_this_process_runs",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
