"""No secret of the configuration in anything `callvault serve` prints or answers: the access log
(sampleevh's `?token=`), status, readiness, metrics, problems, and configuration errors (which name the
setting, never its value)."""

from __future__ import annotations

import argparse
import base64
import json
import socket
from pathlib import Path

import pytest
from janus_fixture import free_port
from serve_process import request, start, stop, wait_http

from recorder.commands import serve

pytestmark = pytest.mark.timeout(120)

ADMIN_KEY = "api-admin-key-Q7cVh2XkP9wLm4RzT8aN3bY6"  # api.admin_key: at least 32 characters
API_SECRET = "janus-api-secret-Zr4Tq8Wm"
JANUS_ADMIN_KEY = "janus-admin-key-Kp3Vx7Nd"
ROOM_SECRET = "room-secret-default-Hs6Jf2Lc"
ROOM_1234_SECRET = "room-secret-1234-Bw9Ge5Ty"
EVENTS_TOKEN = "events-token-Mu5Cz1Ra"
EVENTS_USER = "janus-events"
EVENTS_PASSWORD = "events-password-Dk8Qn4Xs"
WEBHOOK_SECRET_B64 = base64.b64encode(b"webhook-secret-Yf3Pj7Vb").decode()
S3_ACCESS_KEY = "s3-access-key-Ha2Wt6Eo"
S3_SECRET_KEY = "s3-secret-key-Ng7Ru1Ci"
SIGNING_SEED_B64 = base64.b64encode(b"signing-seed-Lx4Oz8Ue-0123456789").decode()  # 32 bytes

SECRETS = {
    "api.admin_key": ADMIN_KEY,
    "janus.api_secret": API_SECRET,
    "janus.admin_key": JANUS_ADMIN_KEY,
    "janus.room_secret": ROOM_SECRET,
    "janus.room_secrets": ROOM_1234_SECRET,
    "janus.events_token": EVENTS_TOKEN,
    "janus.events_basic_auth": EVENTS_PASSWORD,
    "archive.webhooks.endpoints.secret": WEBHOOK_SECRET_B64,
    "archive.storage.s3.access_key": S3_ACCESS_KEY,
    "archive.storage.s3.secret_key": S3_SECRET_KEY,
    "CALLVAULT_SIGNING_KEY": SIGNING_SEED_B64,
}


def config(tmp_path: Path, port: int) -> str:
    return f"""
data_dir = "{tmp_path / "data"}"
http_host = "127.0.0.1"
http_port = {port}
rtp_bind = "127.0.0.1"
[api]
admin_key = "{ADMIN_KEY}"
[janus]
ws_url = "ws://127.0.0.1:{free_port()}"
api_secret = "{API_SECRET}"
admin_key = "{JANUS_ADMIN_KEY}"
room_secret = "{ROOM_SECRET}"
room_secrets = {{ "1234" = "{ROOM_1234_SECRET}" }}
events_token = "{EVENTS_TOKEN}"
events_basic_auth = ["{EVENTS_USER}", "{EVENTS_PASSWORD}"]
[archive.storage]
backend = "local"
[archive.storage.s3]
access_key = "{S3_ACCESS_KEY}"
secret_key = "{S3_SECRET_KEY}"
[[archive.webhooks.endpoints]]
id = "hook"
url = "http://127.0.0.1:{free_port()}/hook"
secret = "whsec_{WEBHOOK_SECRET_B64}"
"""


def raw_request(port: int, data: bytes) -> bytes:
    """What the service answers to bytes that need not be valid HTTP."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("options", [["-v"], ["-v", "--log-format", "json"]], ids=["text", "json"])
def test_no_secret_in_logs_or_responses(tmp_path: Path, options: list[str]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    basic = base64.b64encode(f"{EVENTS_USER}:{EVENTS_PASSWORD}".encode()).decode()
    proc = start(tmp_path, config(tmp_path, port), *options, env={"CALLVAULT_SIGNING_KEY": SIGNING_SEED_B64})
    answers: list[tuple[str, int, str]] = []
    try:
        wait_http(f"{base}/healthz", proc)

        def ask(path: str, method: str = "GET", body: bytes | None = None, **headers: str) -> int:
            status, text = request(base + path, method, body, headers)
            answers.append((path, status, text))
            return status

        # sampleevh as the README configures it: the token in the query
        assert ask(f"/janus/events?token={EVENTS_TOKEN}", "POST", b"[]") == 200
        assert ask(f"/janus/events?token={EVENTS_TOKEN}&x=1", "POST", b"not json") == 400
        assert ask("/janus/events", "POST", b"[]", Authorization=f"Basic {basic}") == 200
        assert ask(f"/janus/events?token={ROOM_SECRET}", "POST", b"[]") == 401  # a wrong token
        assert ask(f"/healthz?token={EVENTS_TOKEN}") == 200
        assert ask(f"/readyz?secret={ROOM_SECRET}") == 503  # Janus is not running
        assert ask(f"/v1/status?api_key={ADMIN_KEY}", **admin) == 200
        assert ask(f"/v1/status?key={ADMIN_KEY}") == 401
        assert ask(f"/metrics?password={EVENTS_PASSWORD}", **admin) == 200
        assert ask(f"/v1/recordings/none?apikey={ADMIN_KEY}&room_secret={ROOM_1234_SECRET}", **admin) == 404
        assert ask(f"/v1/recordings?limit=many&access_token={API_SECRET}", **admin) == 422
        assert ask(f"/nowhere?admin-key={JANUS_ADMIN_KEY}&Token={S3_SECRET_KEY}") == 404
        # Requests aiohttp refuses before any handler sees them: it logs them as errors, quoting the
        # request line; the answer (a problem) quotes nothing of it.
        for raw in (
            f"GET /x?token={EVENTS_TOKEN} HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n",
            f"GET /x?token={EVENTS_TOKEN}\x01 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ):
            answer = raw_request(port, raw.encode()).decode(errors="replace")
            assert answer.split("\r\n")[0].endswith(" 400 Bad Request"), answer
            answers.append(("(unparsable)", 400, answer))
    finally:
        code, out = stop(proc)
    assert code == 0, out
    for setting, secret in SECRETS.items():
        assert secret not in out, f"{setting} printed:\n{out}"
        for path, status, text in answers:
            assert secret not in text, f"{setting} in the answer to {path} ({status}): {text}"
    assert "/janus/events?token=REDACTED" in out, out  # the access log ran
    if "--log-format" in options:
        for line in out.splitlines():
            json.loads(line)


BAD_SECRETS = {
    # setting: TOML (in its table) whose value holds SECRET and is refused
    "api.admin_key": '[api]\nadmin_key = "SECRET"\n',
    "janus.api_secret": '[janus]\napi_secret = ["SECRET"]\n',
    "janus.admin_key": '[janus]\nadmin_key = { value = "SECRET" }\n',
    "janus.room_secret": '[janus]\nroom_secret = ["SECRET"]\n',
    "janus.room_secrets": '[janus]\nroom_secrets = ["SECRET"]\n',
    "janus.events_token": '[janus]\nevents_token = ["SECRET"]\n',
    "janus.events_basic_auth": '[janus]\nevents_basic_auth = ["user", "SECRET", "more"]\n',
    "archive.webhooks.endpoints.0.secret": (
        '[[archive.webhooks.endpoints]]\nid = "a"\nurl = "http://127.0.0.1/"\nsecret = "whsec_SECRET!"\n'
    ),
    "archive.storage.s3.access_key": '[archive.storage.s3]\naccess_key = ["SECRET"]\n',
    "archive.storage.s3.secret_key": '[archive.storage.s3]\nsecret_key = ["SECRET"]\n',
}
SECRET = "config-secret-Vq5Gm9Ts"


@pytest.mark.parametrize("setting", list(BAD_SECRETS))
def test_config_error_names_the_setting_not_the_value(
    tmp_path: Path, setting: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLVAULT_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "bad.toml"
    path.write_text(BAD_SECRETS[setting].replace("SECRET", SECRET))
    assert serve.run(argparse.Namespace(config=path)) == 2
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert line.startswith(f"callvault: error: invalid configuration: {setting}: "), line
    assert SECRET not in line and "input" not in line and "pydantic" not in line, line


def test_config_error_from_the_environment_hides_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLVAULT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CALLVAULT_API__ADMIN_KEY", SECRET)
    monkeypatch.setenv("CALLVAULT_JANUS__ROOM_SECRETS", "{" + SECRET)  # not JSON
    assert serve.run(argparse.Namespace(config=None)) == 2
    err = capsys.readouterr().err
    assert err.startswith("callvault: error: invalid configuration: janus: ") and SECRET not in err, err
    monkeypatch.delenv("CALLVAULT_JANUS__ROOM_SECRETS")
    assert serve.run(argparse.Namespace(config=None)) == 2
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert line.startswith("callvault: error: invalid configuration: api.admin_key: ") and "32" in line, err
    assert SECRET not in err
