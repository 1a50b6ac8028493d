"""Compiles the per-packet modules (recorder/native.py: HOT_MODULES) with mypyc, in place, beside their
sources (docs/native.md).

    .venv/bin/python build_native.py           # what `make native` runs (`make test` and `make demo` too)
    .venv/bin/python build_native.py --clean   # removes the extensions: the sources run again

Needs mypy (a dev dependency; it carries mypyc), a C compiler with the Python headers, and the package's
dependencies installed (mypyc type-checks what the modules import, as `make typecheck` does). When one is
missing it says so in one line and exits 0: the pure-Python modules keep running. The stamp
recorder/native_build.json (the SHA-256 of each compiled source, taken before compiling) is written last,
only after every extension was built: recorder/native.py runs the extensions only with a stamp that
matches the sources on disk.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent
BUILD_DIR = "build/mypyc"


def load_native() -> ModuleType:
    """recorder/native.py on its own (importing the package would choose an implementation)."""
    spec = importlib.util.spec_from_file_location("_callvault_native", ROOT / "recorder" / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def clean(native: ModuleType) -> None:
    (ROOT / "recorder" / native.STAMP).unlink(missing_ok=True)
    for module in [*native.HOT_MODULES, native.GROUP + "__mypyc"]:
        for path in native.compiled_files(module, ROOT):
            path.unlink()


def missing_tool() -> str | None:
    """Why nothing can be compiled here, or None."""
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc is not installed (pip install mypy)"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        return "no Python headers (Python.h)"
    return None


def build(native: ModuleType, jobs: int) -> None:
    from mypyc.build import mypycify  # noqa: PLC0415 (a dev dependency, checked by missing_tool)
    from setuptools import Distribution  # noqa: PLC0415

    digests = native.digests(ROOT)  # before compiling: a source edited meanwhile shows as stale
    paths = [str(native.source(m, ROOT).relative_to(ROOT)) for m in native.HOT_MODULES]
    extensions = mypycify(paths, opt_level="3", group_name=native.GROUP, target_dir=BUILD_DIR)
    dist = Distribution(
        {"name": "callvault-native", "ext_modules": extensions,
         "script_args": ["build_ext", "--inplace", "--parallel", str(jobs)]}
    )  # fmt: skip
    dist.parse_command_line()
    dist.run_commands()
    import mypy.version  # noqa: PLC0415

    stamp = {"sources": digests, "mypy": mypy.version.__version__, "python": sys.version.split()[0]}
    (ROOT / "recorder" / native.STAMP).write_text(json.dumps(stamp, indent=2) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", action="store_true", help="remove the extensions and the stamp")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compiler processes")
    args = ap.parse_args()
    os.chdir(ROOT)  # mypyc reads the mypy configuration (pyproject.toml) from here
    native = load_native()
    clean(native)  # a failed build must not leave a mix: the sources run until the next one succeeds
    if args.clean:
        return 0
    reason = missing_tool()
    if reason is not None:
        print(f"build_native: {reason}: not compiled, the pure-Python hot path runs", file=sys.stderr)
        return 0
    try:
        build(native, args.jobs)
    except (Exception, SystemExit) as exc:  # mypyc exits on type errors; compilers raise their own
        clean(native)
        print(f"build_native: compiling failed ({exc!r}): the pure-Python hot path runs", file=sys.stderr)
        return 0 if os.environ.get("CALLVAULT_NATIVE") != "1" else 1
    print(f"build_native: {len(native.HOT_MODULES)} modules compiled (recorder/{native.STAMP})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
