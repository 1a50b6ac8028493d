"""GET /v1/signing-key: any role gets the archive's manifest signing public key, the same key
`callvault public-key` prints; without an archive it is a 404 problem; without a key, 401."""

from __future__ import annotations

import base64
from pathlib import Path

from api_kit import Api, ApiFactory
from cryptography.hazmat.primitives import serialization

from recorder.archive import Archive, ArchiveSettings
from recorder.manifest.signing import key_id, load_private_key_file, public_key_pem, raw_public


async def test_every_role_gets_the_archive_signing_key(make_api: ApiFactory, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    archive = Archive(ArchiveSettings.model_validate({}), data_dir)
    await archive.start()
    try:
        api: Api = await make_api(sinks=[archive])
        key = load_private_key_file(data_dir / "callvault-signing-key.pem").public_key()  # generated at start
        for role in ("admin", "operator", "supervisor", "auditor"):
            status, body = await api.call("GET", "/v1/signing-key", role=role)
            assert status == 200, (role, body)
            assert body == {
                "algorithm": "Ed25519",
                "key_id": key_id(key),
                "public_key": base64.b64encode(raw_public(key)).decode(),
                "pem": public_key_pem(key).decode(),
            }
        assert serialization.load_pem_public_key(body["pem"].encode()) == key
        status, problem = await api.call("GET", "/v1/signing-key", role=None)
        assert status == 401 and problem["status"] == 401
        status, doc = await api.call("GET", "/v1/openapi.json", role=None)
        operation = doc["paths"]["/v1/signing-key"]["get"]
        assert operation["tags"] == ["signing"]
        assert set(operation["responses"]) >= {"200", "401", "404"}
        assert "example" in operation["responses"]["200"]["content"]["application/json"]
        assert any(t["name"] == "signing" and t["description"] for t in doc["tags"])
    finally:
        await archive.stop()


async def test_without_an_archive_it_is_not_found(api: Api) -> None:
    status, problem = await api.call("GET", "/v1/signing-key", role="auditor")
    assert status == 404
    assert "no archive" in problem["detail"]
