from __future__ import annotations

from api_kit import Api
from postgres_kit import BACKENDS

pytestmark = BACKENDS  # the catalog in SQLite and in PostgreSQL


async def test_smoke(api: Api) -> None:
    status, body = await api.call("GET", "/v1/recordings", role="supervisor")
    assert status == 200, body
    status, body = await api.call("GET", "/v1/openapi.json", role=None)
    assert status == 200 and body["openapi"] == "3.1.0"
