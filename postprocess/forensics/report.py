"""`make_report`: a recording folder in, `<id>-report.html` and `<id>-report.pdf` out (never written into
the recording folder, whose every file the manifest lists)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from postprocess.forensics.analysis import ReportData, analyze_recording
from postprocess.forensics.render import figures, write_html, write_pdf


@dataclass
class ReportFiles:
    html: Path
    pdf: Path | None
    data: ReportData
    seconds: float


def make_report(
    folder: Path, out_dir: Path, public_key: Ed25519PublicKey | None = None, pdf: bool = True
) -> ReportFiles:
    """Analyze the recording in `folder` and write its report into `out_dir` (ValueError when `folder` is
    not a recording)."""
    started = time.perf_counter()
    data = analyze_recording(folder, public_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = list(figures(data))
    html = out_dir / f"{data.facts.recording_id}-report.html"
    write_html(data, figs, html)
    pdf_path = None
    if pdf:
        pdf_path = out_dir / f"{data.facts.recording_id}-report.pdf"
        write_pdf(data, figs, pdf_path)
    return ReportFiles(html, pdf_path, data, time.perf_counter() - started)
