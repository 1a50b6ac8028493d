"""Two nodes on one data_dir (recorder/service/node_folders.py): the folders a node keeps for itself
(state.json, upload spool, webhook outbox, transcript jobs) are locked; a second `callvault serve` on them
refuses to start with one line naming the folder and who holds it (exit 2), and starts once the first is
gone. Worker-only nodes on the PostgreSQL job queue keep nothing of their own there: they may share it."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_process import start, stop, wait_http
from service_kit import free_tcp_port

from recorder.service.node_folders import FolderInUseError, FolderLocks, folders_of
from recorder.service.settings import ServiceSettings

pytestmark = [pytest.mark.timeout(120)]


def _settings(data_dir: Path, **changes: object) -> ServiceSettings:
    return ServiceSettings.model_validate({"data_dir": str(data_dir), "janus": {"enabled": False}, **changes})


def test_own_folders_by_role(tmp_path: Path) -> None:
    data = tmp_path / "data"
    archive: dict[str, object] = {"archive": {}}  # the defaults: a local store, spool and outbox in data_dir
    everything = {what: folder for what, folder in folders_of(_settings(data, **archive))}
    assert set(everything.values()) == {data, data / "spool", data / "transcripts" / "jobs"}
    api_only = folders_of(_settings(data, roles=["api"], **archive))
    assert {f for _, f in api_only} == {data, data / "spool", data / "transcripts" / "jobs"}  # data: outbox
    assert folders_of(_settings(data, roles=["api"])) == []  # no archive, no state.json: nothing its own
    pg = {"api": {"catalog_url": "postgresql://u@db.invalid/callvault"}}
    assert folders_of(_settings(data, roles=["worker"], **pg, **archive)) == []  # the queue's workers


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    folders = [("the upload spool (archive.spool.dir)", tmp_path / "spool"), ("state.json", tmp_path)]
    first, second = FolderLocks(), FolderLocks()
    first.claim(folders, "api-1")
    with pytest.raises(FolderInUseError) as refused:
        second.claim(list(reversed(folders)), "api-2")
    assert str(refused.value).startswith(
        f"{tmp_path} (state.json) is in use by another CallVault node (node api-1,"
    )
    first.release()
    second.claim(folders, "api-2")  # all or nothing: nothing of the failed claim was left held
    second.release()


def test_two_serve_processes_on_one_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "shared"

    def config(node: str) -> str:
        return (
            f'data_dir = "{data}"\nhttp_host = "127.0.0.1"\nhttp_port = {free_tcp_port()}\nroles = ["api"]\n'
            '[janus]\nenabled = false\n[api]\nadmin_key = "node-folders-test-key-0123456789abcdef"\n'
            f'[archive]\n[fleet]\nnode_name = "{node}"\n'
        )

    first_config = config("api-a")
    first = start(tmp_path / "a", first_config)
    try:
        port = int(first_config.split("http_port = ")[1].split("\n")[0])
        wait_http(f"http://127.0.0.1:{port}/healthz", first, timeout=60)
        second = start(tmp_path / "b", config("api-b"))
        second.wait(60)
        code, out = stop(second)
        assert code == 2, out
        [line] = [ln for ln in out.splitlines() if ln.startswith("callvault: error:")]
        spool = data / "spool"
        assert f"{spool} (the upload spool (archive.spool.dir)) is in use by another CallVault node" in line
        assert "(node api-a, host " in line
    finally:
        code, out = stop(first)
    assert code == 0, out
