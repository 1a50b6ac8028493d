"""CallVault recorder: RTP ingest, frame assembly and passthrough muxing of original media."""

from recorder import native

__version__ = "0.1.0"

native.activate()  # before any hot module is imported: compiled, or the sources (recorder/native.py)
