"""Without the `postgres` extra (procrastinate), a node whose roles are split on a PostgreSQL catalog stops
at start with one line naming the pip command; every other node never imports the queue (the base install
starts `serve`: tests/deploy/test_image_tree.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recorder.errors import MissingExtraError
from recorder.jobs.fleet import JobNode
from recorder.service.settings import ServiceSettings


def _settings(tmp_path: Path, roles: list[str]) -> ServiceSettings:
    return ServiceSettings.model_validate(
        {
            "data_dir": str(tmp_path),
            "roles": roles,
            "janus": {"enabled": False},
            "api": {"catalog_url": "postgresql://callvault@127.0.0.1:1/callvault"},
        }
    )


async def test_split_roles_without_the_extra_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "procrastinate", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "recorder.jobs.queue", raising=False)
    with pytest.raises(MissingExtraError, match=r"pip install 'callvault\[postgres\]'"):
        await JobNode.open(_settings(tmp_path, ["worker"]))
    assert await JobNode.open(_settings(tmp_path, ["recorder", "api", "worker"])) is None  # no queue needed
