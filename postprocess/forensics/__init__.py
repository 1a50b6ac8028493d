"""Forensic reports of recordings: statistics computed from captured packets and track summaries
(stats.py, sync.py; pure), captures read from pcapng files (pcapng.py, capture.py), the facts of a
recording folder (facts.py) and the report rendered as self-contained HTML and PDF (render.py, report.py)."""
