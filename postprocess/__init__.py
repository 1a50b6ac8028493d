"""Batch work on stored recordings: composites, exports, forensic reports. Never imports janus_bridge."""
