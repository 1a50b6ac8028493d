"""Where `callvault serve` spends more than `record-rtp`: reads the py-spy folded stacks that
`bench/mediasoup.py --record-rtp --profile DIR` wrote (serve.txt, record-rtp.txt: all threads, idle
samples excluded) and prints, for each, the share of samples per thread and per function (self and
inclusive), then the functions whose inclusive share differs most between the two.

    .venv/bin/python bench/mediasoup_profile.py DIR [--top 25]

Shares are of each process's own samples (py-spy samples at a fixed rate while a thread runs Python or
waits on the GIL); multiply by the CPU seconds bench/mediasoup.py measured to get seconds.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^():]+)(?::\d+)?\)$")


def short(frame: str) -> str:
    """`function (path/to/module.py:12)` -> `module.py:function` (paths inside the repository kept)."""
    m = FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    path = m.group("file")
    for marker in ("/recorder/", "/janus_bridge/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/recorder/":
                path = "recorder/" + path
            break
    return f"{path}:{m.group('func')}"


def load(path: Path) -> tuple[int, Counter[str], Counter[str], Counter[str]]:
    """(samples, per thread, self per function, inclusive per function)."""
    total = 0
    threads: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        frames = [short(f) for f in frames if not f.startswith(("thread", "process"))]
        if not frames:
            continue
        total += n
        threads[thread] += n
        self_[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    return total, threads, self_, inclusive


def show(name: str, path: Path, top: int) -> tuple[int, Counter[str]]:
    total, threads, self_, inclusive = load(path)
    print(f"== {name}: {total} samples")
    for thread, n in threads.most_common(8):
        print(f"  thread {thread[:60]:60} {100 * n / total:6.1f} %")
    print(f"  -- self (top {top})")
    for f, n in self_.most_common(top):
        print(f"  {100 * n / total:6.1f} %  {f}")
    print(f"  -- inclusive (top {top})")
    for f, n in inclusive.most_common(top):
        print(f"  {100 * n / total:6.1f} %  {f}")
    return total, inclusive


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--serve-cpu", type=float, default=None, help="serve's CPU seconds (to print seconds)")
    ap.add_argument("--rtp-cpu", type=float, default=None, help="record-rtp's CPU seconds")
    args = ap.parse_args()
    serve, rtp = args.folder / "serve.txt", args.folder / "record-rtp.txt"
    if not serve.exists():
        print(f"no {serve}: run bench/mediasoup.py --record-rtp --profile {args.folder}", file=sys.stderr)
        return 2
    s_total, s_inc = show("serve", serve, args.top)
    if not rtp.exists():
        return 0
    r_total, r_inc = show("record-rtp", rtp, args.top)
    s_cpu, r_cpu = args.serve_cpu, args.rtp_cpu
    print("== inclusive share, serve minus record-rtp" + (" (CPU seconds)" if s_cpu and r_cpu else " (%)"))
    diffs = []
    for f in set(s_inc) | set(r_inc):
        a, b = s_inc[f] / s_total, r_inc[f] / r_total
        if s_cpu and r_cpu:
            diffs.append((a * s_cpu - b * r_cpu, a * s_cpu, b * r_cpu, f))
        else:
            diffs.append((100 * (a - b), 100 * a, 100 * b, f))
    for d, a, b, f in sorted(diffs, reverse=True)[: args.top]:
        print(f"  {d:+8.2f}  serve {a:7.2f}  record-rtp {b:7.2f}  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
