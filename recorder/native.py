"""Which implementation of the per-packet hot path runs: the modules compiled with mypyc, or their sources.

The modules of `HOT_MODULES` can be compiled with mypyc into C extensions that sit beside their `.py`
files (`build_native.py`, docs/native.md); they are the same typed Python, made about twice as fast. Python
imports an extension in preference to the source of the same name, so a source edited after the build
would be shadowed by its stale extension. The build therefore writes `STAMP` beside the extensions: the
SHA-256 of every source it compiled. At the first import of `recorder`, `activate()` compares it with the
sources on disk:

- every one the same: the compiled modules run (`implementation() == "compiled"`);
- any one different (edited since the build), CALLVAULT_NATIVE=0 in the environment, or no complete build
  for this interpreter: the sources run, loaded by an import hook in place of the extensions.

`describe()` is the line `serve` and `record-rtp` log at start (recorder/eventloop.py), a warning when a
build exists but is stale (rebuild: `make native`); `callvault_build_info` has it as label `hot_path`.

The compiled modules call one another directly (one shared library), so it is all of them or none.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HOT_MODULES = (
    "recorder.rtp.seqnum",
    "recorder.rtp.packet",
    "recorder.rtp.rtx",
    "recorder.assembly.frame",
    "recorder.assembly.reorder",
    "recorder.assembly.frames",
    "recorder.assembly.pipeline",
    "recorder.codecs.base",
    "recorder.codecs.bitreader",
    "recorder.codecs.vp8",
    "recorder.codecs.vp9",
    "recorder.codecs.h264",
    "recorder.codecs.opus",
    "recorder.ingest.udp",
    "recorder.ingest.track",
    "recorder.mux.ebml",
    "recorder.mux.matroska",
    "recorder.mux.avc",
    "recorder.mux.matroska_writer",
    "recorder.mux.concat",
    "recorder.mux.track_writer",
)
"""The modules compiled: everything a packet and a frame pass through on the event loop and the mux
threads, but not the session's per-track timer (recorder/session.py) nor what runs once per track."""
GROUP = "recorder._hotpath"
"""mypyc's shared library of the compiled modules is `recorder/_hotpath__mypyc.<suffix>`."""
STAMP = "native_build.json"
ENV = "CALLVAULT_NATIVE"

ROOT = Path(__file__).resolve().parent.parent
"""The folder holding the `recorder` package."""


@dataclass(frozen=True)
class Choice:
    implementation: str
    """'compiled' or 'pure'."""
    reason: str


def source(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digests(root: Path = ROOT, modules: Sequence[str] = HOT_MODULES) -> dict[str, str]:
    """SHA-256 of each module's source."""
    return {m: hashlib.sha256(source(m, root).read_bytes()).hexdigest() for m in modules}


def compiled_files(module: str, root: Path = ROOT) -> list[Path]:
    """The module's extension files that this interpreter would import."""
    path = source(module, root)
    stem = path.with_suffix("")
    return [
        p for s in importlib.machinery.EXTENSION_SUFFIXES if (p := stem.with_name(stem.name + s)).exists()
    ]


def choose(root: Path = ROOT, environ: Mapping[str, str] = os.environ) -> Choice:
    """Which implementation runs, and why (see the module's docstring)."""
    built = [m for m in HOT_MODULES if compiled_files(m, root)]
    if not built:
        return Choice("pure", "not compiled")
    if environ.get(ENV, "") == "0":
        return Choice("pure", f"{ENV}=0")
    if len(built) < len(HOT_MODULES):
        return Choice("pure", f"incomplete build ({len(built)} of {len(HOT_MODULES)} modules)")
    try:
        stamped = json.loads((root / "recorder" / STAMP).read_text())["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return Choice("pure", f"recorder/{STAMP} missing or unreadable")
    changed = [m for m, digest in digests(root).items() if stamped.get(m) != digest]
    if changed:
        first = source(changed[0], root).relative_to(root)
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return Choice("pure", f"stale: {first}{more} changed since the build")
    return Choice("compiled", "mypyc")


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the hot modules from their `.py` files, never from their extensions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules = frozenset(HOT_MODULES)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, source(fullname, self.root))


@functools.cache
def activate() -> Choice:
    """Decide once per process; for 'pure' with extensions present, load the sources in their place."""
    choice = choose()
    if choice.implementation == "pure" and choice.reason != "not compiled":
        loaded = [m for m in HOT_MODULES if m in sys.modules]
        if loaded:  # too late to choose (cannot happen when `recorder` imports this first)
            raise RuntimeError(f"hot modules imported before recorder.native chose: {loaded}")
        sys.meta_path.insert(0, _SourceFinder(ROOT))
    return choice


def implementation() -> str:
    """'compiled' or 'pure': what the hot path of this process runs."""
    return activate().implementation


def describe() -> str:
    """One line for the start-up log."""
    choice = activate()
    if choice.implementation == "compiled":
        return "hot path: compiled (mypyc)"
    hint = "; rebuild: make native" if choice.reason.startswith("stale") else ""
    return f"hot path: pure Python ({choice.reason}{hint})"
