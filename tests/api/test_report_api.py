"""GET /v1/recordings/{id}/report: the forensic report of a recording in the catalog (here one imported from
Janus's .mjr files into the service's data folder), as self-contained HTML or as PDF, for supervisors and
auditors; kept and served again until the recording changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_kit import ApiFactory
from postgres_kit import BACKENDS

from recorder.cli import main

pytestmark = BACKENDS  # the catalog in SQLite and in PostgreSQL

MJR = sorted((Path(__file__).parents[1] / "recorder" / "mjr" / "data").glob("*.mjr"))


async def test_report_of_a_recording_as_html_and_pdf(
    make_api: ApiFactory, tmp_path: Path, catalog_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await make_api(sfu=False)
    if catalog_url is not None:  # import-mjr lists into the catalog serve uses
        monkeypatch.setenv("CALLVAULT_API__CATALOG_URL", catalog_url)
    data_dir = api.manager.settings.data_dir
    assert main(["import-mjr", "--data-dir", str(data_dir), *map(str, MJR)]) == 0
    (folder,) = (data_dir / "recordings").iterdir()
    rid = folder.name
    status, html = await api.call("GET", f"/v1/recordings/{rid}/report", role="supervisor")
    assert status == 200, html
    assert "Integrity VERIFIED" in html and "<svg" in html and "<script" not in html
    made = (data_dir / "reports" / rid / f"{rid}-report.html").stat().st_mtime
    status, _ = await api.call("GET", f"/v1/recordings/{rid}/report", role="auditor")
    assert status == 200 and (data_dir / "reports" / rid / f"{rid}-report.html").stat().st_mtime == made
    async with api.http.get(
        f"{api.base}/v1/recordings/{rid}/report?format=pdf", headers=api.auth("auditor")
    ) as r:
        assert r.status == 200 and r.content_type == "application/pdf"
        assert (await r.read()).startswith(b"%PDF")
    assert (await api.call("GET", f"/v1/recordings/{rid}/report", role="operator"))[0] == 403
    assert (await api.call("GET", "/v1/recordings/nope/report", role="supervisor"))[0] == 404
    assert (await api.call("GET", f"/v1/recordings/{rid}/report?format=doc", role="supervisor"))[0] == 422
