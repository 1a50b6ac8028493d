"""The control plane of `callvault serve`: REST API under /v1 (OpenAPI 3.1 from the pydantic models),
recording policy, pause/resume, metadata, the SQLite catalog (a RecordingSink), API keys and roles, the
hash-chained audit log and Prometheus metrics.

Imports nothing at package level, so `recorder.service.settings` can import `recorder.api.settings`
without a cycle; the service mounts everything with `recorder.api.app.ControlApi`.
"""
