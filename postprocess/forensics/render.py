"""The report as one self-contained HTML page (plots as inline SVG, one inline stylesheet, no script, no
external asset) and as a PDF (the same figures, drawn by matplotlib's PDF backend: no browser needed).

Figures: a timeline of the call (each track from its first to its last frame, pauses, gaps); per track
with a capture: bitrate, packet loss, jitter and, for video, frame rate with keyframes and picture sizes;
without a capture, video picture sizes from the summary; audio/video sync per participant; sender clock
drift per track. Times on the x axes are minutes from the start of the recording.
"""

from __future__ import annotations

import html
import io
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from postprocess.forensics.analysis import SYNC_OK, ReportData, TrackAnalysis, duration_text, track_label
from recorder.models import MediaKind

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
WIDTH = 10.0
MAX_GAP_ROWS = 500


def utc(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _origin(data: ReportData) -> float:
    f = data.facts
    firsts = [t.track.first_wallclock for t in data.tracks if t.track.first_wallclock is not None]
    return f.started_at if f.started_at is not None else (min(firsts) if firsts else 0.0)


def _minutes(values: list[float], origin: float) -> list[float]:
    return [(v - origin) / 60 for v in values]


def timeline_figure(data: ReportData) -> Figure:
    origin = _origin(data)
    tracks = data.tracks
    fig = Figure(figsize=(WIDTH, 0.9 + 0.45 * len(tracks)))
    ax = fig.add_subplot()
    labels = []
    for row, a in enumerate(tracks):
        t = a.track
        labels.append(f"{track_label(t)} ({t.codec.value})")
        if t.first_wallclock is not None and t.last_wallclock is not None:
            start = (t.first_wallclock - origin) / 60
            ax.barh(row, (t.last_wallclock - t.first_wallclock) / 60, left=start, height=0.5,
                    color="#4c78a8", label="recorded" if row == 0 else None)  # fmt: skip
        for p in t.pauses:
            end = p.end_time if p.end_time is not None else (t.last_wallclock or p.start_time)
            ax.barh(row, (end - p.start_time) / 60, left=(p.start_time - origin) / 60, height=0.5,
                    color="#bbbbbb", hatch="//", label="paused")  # fmt: skip
        for g in t.gaps:
            ax.barh(row, max((g.end_time - g.start_time) / 60, 0.002), left=(g.start_time - origin) / 60,
                    height=0.5, color="#e45756", label="gap")  # fmt: skip
    ax.set_yticks(range(len(tracks)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"minutes from the start ({utc(origin)})")
    ax.set_title("Timeline: who was recorded when (joins, leaves, pauses, gaps)")
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def track_figure(data: ReportData, a: TrackAnalysis) -> Figure | None:
    """Bitrate, loss, jitter (and frame rate) of one track; picture sizes alone without a capture."""
    origin = _origin(data)
    t, s = a.track, a.stats
    video = t.kind is MediaKind.VIDEO
    if s is None:
        if not video or not t.layers:
            return None
        fig = Figure(figsize=(WIDTH, 2.4))
        ax = fig.add_subplot()
        _layers(ax, a, origin)
        ax.set_title(f"{track_label(t)}: picture size (from the summary; no capture)")
        ax.set_xlabel("minutes from the start")
        fig.subplots_adjust(left=0.08, right=0.92, top=0.85, bottom=0.2)
        return fig
    rows = 4 if video else 3
    fig = Figure(figsize=(WIDTH, 1.7 * rows + 0.6))
    axes = fig.subplots(rows, 1, sharex=True)
    x = _minutes(s.bin_start, origin)
    axes[0].plot(x, s.bitrate_kbps, color="#4c78a8", lw=0.8)
    axes[0].set_ylabel("kbit/s")
    axes[0].set_title(f"{track_label(t)} ({t.codec.value}): bitrate")
    axes[1].fill_between(x, s.loss_percent_per_bin, step="post", color="#e45756", lw=0)
    axes[1].set_ylabel(f"lost % per {s.bin_seconds:g} s")
    axes[1].set_title(f"packet loss ({s.lost} of {s.expected} packets, {s.loss_percent:.2f} %)")
    axes[2].plot(x, s.jitter_ms_per_bin, color="#f58518", lw=0.8)
    axes[2].set_ylabel("ms")
    axes[2].set_title(f"interarrival jitter, RFC 3550 (max {s.jitter_ms_max:.1f} ms)")
    if video:
        ax = axes[3]
        ax.plot(x, s.fps, color="#54a24b", lw=0.8, label="frames/s")
        ax.set_ylabel("frames/s")
        if s.keyframes:
            ax.plot(_minutes(s.keyframes, origin), [0] * len(s.keyframes), "|", color="#b279a2",
                    ms=10, label=f"keyframe ({len(s.keyframes)})")  # fmt: skip
        ax.set_title(f"frame rate, keyframes ({t.keyframe_requests} keyframe requests sent)")
        if t.layers:
            _layers(ax.twinx(), a, origin)
        ax.legend(loc="upper left", fontsize=7)
    axes[-1].set_xlabel("minutes from the start")
    fig.subplots_adjust(left=0.08, right=0.92, top=0.95, bottom=0.08, hspace=0.55)
    return fig


def _layers(ax: Axes, a: TrackAnalysis, origin: float) -> None:
    xs, ys = [], []
    for layer in a.track.layers:
        if layer.width and layer.height:
            xs += [(layer.start_time - origin) / 60, (layer.end_time - origin) / 60]
            ys += [layer.height, layer.height]
    ax.step(xs, ys, where="post", color="#9d755d", lw=1.0, label="picture height")
    ax.set_ylabel("picture height (px)")
    ax.grid(False)


def sync_figure(data: ReportData) -> Figure | None:
    series = [s for s in data.sync if s.series.offset_ms]
    if not series:
        return None
    origin = _origin(data)
    fig = Figure(figsize=(WIDTH, 2.8))
    ax = fig.add_subplot()
    ax.axhspan(*SYNC_OK, color="#54a24b", alpha=0.12, label="acceptable (ITU-R BT.1359)")
    for s in series:
        ax.plot(_minutes(s.series.times, origin), s.series.offset_ms, marker=".", lw=0.8, label=s.participant)
    ax.set_ylabel("video behind audio (ms)")
    ax.set_xlabel("minutes from the start")
    ax.set_title("Audio/video sync per participant (from RTCP sender reports)")
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.08, right=0.97, top=0.88, bottom=0.17)
    return fig


def drift_figure(data: ReportData) -> Figure | None:
    drifting = [a for a in data.tracks if a.drift.times]
    if not drifting:
        return None
    origin = _origin(data)
    fig = Figure(figsize=(WIDTH, 2.8))
    ax = fig.add_subplot()
    for a in drifting:
        ppm = f"{a.drift.ppm:+.0f} ppm" if a.drift.ppm is not None else "n/a"
        ax.plot(
            _minutes(a.drift.times, origin),
            a.drift.offset_ms,
            lw=0.8,
            label=f"{track_label(a.track)} ({ppm})",
        )
    ax.set_ylabel("media clock - wall clock (ms)")
    ax.set_xlabel("minutes from the start")
    ax.set_title("Sender clock drift (RTP clock against the sender's wall clock)")
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.08, right=0.97, top=0.88, bottom=0.17)
    return fig


def figures(data: ReportData) -> Iterator[tuple[str, Figure]]:
    yield "timeline", timeline_figure(data)
    for a in data.tracks:
        fig = track_figure(data, a)
        if fig is not None:
            yield f"track-{a.track.name}", fig
    for name, make in (("sync", sync_figure), ("drift", drift_figure)):
        fig = make(data)
        if fig is not None:
            yield name, fig


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def track_rows(data: ReportData) -> list[list[str]]:
    rows = []
    for a in data.tracks:
        t, s = a.track, a.stats
        duration = t.duration if t.duration is not None else t.media_seconds
        rows.append([
            t.name, t.participant_id or "-", f"{t.kind.value} {t.codec.value}", t.state,
            duration_text(duration) if duration is not None else "-", str(t.frames), str(t.keyframes),
            str(s.packets if s else t.packets_received), str(s.lost if s else t.packets_lost),
            f"{(s.loss_percent if s else _pct(t.packets_lost, t.packets_received + t.packets_lost)):.2f}",
            str(s.duplicates if s else t.packets_duplicate), str(s.reordered) if s else "-",
            f"{s.jitter_ms_max:.1f}" if s else "-", str(t.frames_dropped), str(t.keyframe_requests),
        ])  # fmt: skip
    return rows


TRACK_HEADER = [
    "track", "participant", "media", "state", "length", "frames", "keyframes", "packets", "lost",
    "lost %", "duplicates", "reordered", "max jitter ms", "frames dropped", "keyframe requests",
]  # fmt: skip


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def lost_rows(data: ReportData) -> list[list[str]]:
    """What was lost and where: the recording's gaps, its pauses, and the capture's largest holes."""
    origin = _origin(data)
    rows = []
    for a in data.tracks:
        label = track_label(a.track)
        for g in a.track.gaps:
            minute = f"{(g.start_time - origin) / 60:.2f}"
            span = f"{g.end_time - g.start_time:.2f} s"
            rows.append([label, minute, utc(g.start_time), span, str(g.packets_lost), f"gap ({g.reason})"])
        for p in a.track.pauses:
            end = p.end_time if p.end_time is not None else p.start_time
            what = "paused" + (f" by {p.by}" if p.by else "") + (f": {p.reason}" if p.reason else "")
            minute = f"{(p.start_time - origin) / 60:.2f}"
            span = f"{end - p.start_time:.2f} s"
            rows.append([label, minute, utc(p.start_time), span, str(a.track.packets_paused), what])
        if a.stats is not None:
            for e in sorted(a.stats.loss_events, key=lambda e: -e.packets)[:50]:
                what = f"network loss (from sequence number {e.first_seq})"
                rows.append([label, f"{(e.time - origin) / 60:.2f}", utc(e.time), "-", str(e.packets), what])
    rows.sort(key=lambda r: float(r[1]))
    return rows[:MAX_GAP_ROWS]


LOST_HEADER = ["track", "minute", "when", "how long", "packets", "what"]

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.verdict{padding:.6em 1em;border-radius:6px;font-weight:600}
.ok{background:#e6f4ea;color:#17632c}.bad{background:#fde7e7;color:#8a1c1c}.none{background:#eee}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 6px;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
.note{background:#fff8e1;padding:.5em 1em;border-left:4px solid #f5b400}figure{margin:1em 0}
svg{max-width:100%;height:auto}.meta{color:#666;font-size:.9em}
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict(data: ReportData) -> tuple[str, str]:
    i = data.facts.integrity
    if not i.checked:
        return "none", "Integrity not checked: the recording has no signed manifest."
    if i.ok:
        pinned = "the pinned key" if i.key_pinned else "the key the manifest names, not pinned"
        return (
            "ok",
            f"Integrity VERIFIED: {i.objects_checked} files, hash chains and signature (by {pinned}) hold.",
        )
    return "bad", f"Integrity FAILED: {len(i.problems)} problem(s)."


def write_html(data: ReportData, figs: list[tuple[str, Figure]], path: Path) -> None:
    f = data.facts
    cls, text = verdict(data)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Recording report {html.escape(f.recording_id)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Recording report: {html.escape(f.recording_id)}</h1>",
        f"<p class='meta'>Room {html.escape(f.room_id or '-')} · {utc(f.started_at)} to {utc(f.finished_at)}"
        f" · report made {utc(data.generated_at)}</p>",
        "<h2>Summary</h2>",
        "<p>" + " ".join(html.escape(s) for s in data.summary) + "</p>",
        f"<p class='verdict {cls}'>{html.escape(text)}</p>",
    ]
    if f.integrity.problems:
        parts.append(
            "<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in f.integrity.problems[:200]) + "</ul>"
        )
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in data.unavailable]
    parts += [f"<p class='note'>Capture not read: {html.escape(p)}</p>" for p in data.capture_problems[:20]]
    parts += ["<h2>Tracks</h2>", _table(TRACK_HEADER, track_rows(data))]
    parts += ["<h2>What was lost and where</h2>"]
    lost = lost_rows(data)
    parts.append(_table(LOST_HEADER, lost) if lost else "<p>Nothing: no gap, no pause, no lost packet.</p>")
    parts.append("<h2>Plots</h2>")
    for name, fig in figs:
        parts.append(f"<figure id='{html.escape(name)}'>{_svg(fig)}</figure>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _text_page(lines: list[str], title: str) -> Figure:
    fig = Figure(figsize=(8.27, 11.69))  # A4
    fig.text(0.06, 0.96, title, fontsize=14, weight="bold", va="top")
    fig.text(0.06, 0.92, "\n".join(lines), fontsize=8, va="top", family="monospace")
    return fig


def write_pdf(data: ReportData, figs: list[tuple[str, Figure]], path: Path) -> None:
    f = data.facts
    _, text = verdict(data)
    lines = [f"Room {f.room_id or '-'}   {utc(f.started_at)} to {utc(f.finished_at)}", ""]
    for sentence in data.summary:
        lines += textwrap.wrap(sentence, 100)
    lines += ["", text] + [f"  {p}"[:110] for p in f.integrity.problems[:15]]
    lines += ["", *[x for n in data.unavailable for x in textwrap.wrap(n, 100)], "", "Tracks:"]
    for row in track_rows(data):
        lines.append(
            f"  {row[0][:34]:34} {row[2]:12} {row[3]:9} frames {row[5]:>7}  lost {row[8]:>6} ({row[9]} %)"
            f"  dup {row[10]:>4}  jitter max {row[12]:>6} ms"
        )
    lost = lost_rows(data)
    lines += ["", "What was lost and where (minute, track, how long, packets, what):"]
    lines += [f"  {r[1]:>8}  {r[0][:28]:28} {r[3]:>10} {r[4]:>6}  {r[5]}"[:110] for r in lost[:30]]
    if len(lost) > 30:
        lines.append(f"  ... {len(lost) - 30} more in the HTML report")
    with PdfPages(
        path, metadata={"Title": f"Recording report {f.recording_id}", "Creator": "callvault"}
    ) as pdf:
        pdf.savefig(_text_page(lines, f"Recording report: {f.recording_id}"))
        for _, fig in figs:
            pdf.savefig(fig)
