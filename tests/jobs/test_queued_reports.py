"""Forensic reports through the job queue (recorder/jobs/reports.py) with a real PostgreSQL and
`callvault serve` processes sharing one data folder: an API-only node answers GET
/v1/recordings/{id}/report with the report a worker-only node built (concurrent GETs share one job; the
next GET is served from the shared file without a job); with no worker, the GET answers 503
report-pending with Retry-After once jobs.report_wait_seconds pass, and a worker started later builds it
from the same job."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from postgres_kit import PostgresServer

from recorder.jobs.queue import PRIORITIES

sys.path.insert(1, str(Path(__file__).parent))  # jobs_kit, queued_kit
from jobs_kit import node, stop_all, wait_for
from queued_kit import show_logs, up

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
ADMIN = "queued-reports-admin-key-0123456789abcdef"
NO_SFU = "[janus]\nenabled = false\n"
MJR = sorted((Path(__file__).parents[1] / "recorder" / "mjr" / "data").glob("*.mjr"))


def imported(url: str, data_dir: Path) -> str:
    """A recording imported from Janus's .mjr files into the shared folder and the catalog; its id."""
    env = {**os.environ, "CALLVAULT_API__CATALOG_URL": url}
    args = [sys.executable, "-m", "recorder.cli", "import-mjr", "--data-dir", str(data_dir), *map(str, MJR)]
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=60)
    (folder,) = (data_dir / "recordings").iterdir()
    return folder.name


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=90) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def report_jobs(url: str) -> list[tuple[str, int, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT queue_name, priority, status::text FROM procrastinate_jobs"
            " WHERE task_name = 'callvault:report' ORDER BY id"
        ).fetchall()
    return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]


def api_node(
    tmp_path: Path, url: str, data_dir: Path, wait: float = 60
) -> tuple[subprocess.Popen[bytes], int]:
    return node(tmp_path, "api", url, ["api"], data_dir, NO_SFU, api=f'admin_key = "{ADMIN}"\n',
                env={"CALLVAULT_JOBS__REPORT_WAIT_SECONDS": str(wait)})  # fmt: skip


async def test_an_api_node_serves_the_report_a_worker_built(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    data_dir = tmp_path / "data"  # the shared folder: recordings/ and reports/
    rid = imported(url, data_dir)
    api, port = api_node(tmp_path, url, data_dir)
    procs = [api, node(tmp_path, "w1", url, ["worker"], data_dir, NO_SFU)[0]]
    try:
        await asyncio.to_thread(wait_for, "api node", lambda: up(api, port), 60)
        path = f"/v1/recordings/{rid}/report"
        first, second = await asyncio.gather(
            asyncio.to_thread(get, port, path), asyncio.to_thread(get, port, path)
        )
        for status, headers, body in (first, second):
            assert status == 200, body[:500]
            assert headers["Content-Type"].startswith("text/html")
            assert rid.encode() in body and b"Integrity VERIFIED" in body
        assert report_jobs(url) == [("reports", PRIORITIES["reports"], "succeeded")]  # one job for both
        assert "report built" in (tmp_path / "w1.log").read_text()  # built by the worker ...
        assert "report built" not in (tmp_path / "api.log").read_text()  # ... not by the API node
        status, headers, pdf = await asyncio.to_thread(get, port, f"{path}?format=pdf")
        assert status == 200 and headers["Content-Type"] == "application/pdf" and pdf.startswith(b"%PDF")
        assert report_jobs(url) == [("reports", PRIORITIES["reports"], "succeeded")]  # from the shared file
        assert not list((data_dir / "reports" / rid).glob(".*"))  # no attempt's folder left
    finally:
        stop_all(procs)
        show_logs(tmp_path, ["api", "w1"])


async def test_without_a_worker_the_get_answers_503_and_a_later_worker_builds_it(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    data_dir = tmp_path / "data"
    rid = imported(url, data_dir)
    api, port = api_node(tmp_path, url, data_dir, wait=1.5)
    procs = [api]
    try:
        await asyncio.to_thread(wait_for, "api node", lambda: up(api, port), 60)
        path = f"/v1/recordings/{rid}/report?format=pdf"
        status, headers, body = await asyncio.to_thread(get, port, path)
        assert status == 503 and headers["Retry-After"] == "30", body
        assert b"report-pending" in body and rid.encode() in body
        status, _, _ = await asyncio.to_thread(get, port, path)  # asked again: waits for the same job
        assert status == 503 and report_jobs(url) == [("reports", PRIORITIES["reports"], "todo")]
        procs.append(node(tmp_path, "w1", url, ["worker"], data_dir, NO_SFU)[0])

        def served() -> bytes | None:
            status, _, body = get(port, path)
            return body if status == 200 else None

        assert (await asyncio.to_thread(wait_for, "the report", served, 60)).startswith(b"%PDF")
        assert report_jobs(url) == [("reports", PRIORITIES["reports"], "succeeded")]
    finally:
        stop_all(procs)
        show_logs(tmp_path, ["api", "w1"])
