"""Janus WebSocket/Admin API client and event intake (see the issue "Janus bridge")."""
