"""Redaction of a recording: spoken payment card numbers found in its transcript (cards.py, pure), the
transcript masked (mask.py, pure), and each audio track copied with those intervals silenced (audio.py)."""
