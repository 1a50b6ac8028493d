"""CallVault recorder: RTP ingest, frame assembly and passthrough muxing of original media."""

__version__ = "0.1.0"
