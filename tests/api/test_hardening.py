"""What a client (or an attacker) notices of the HTTP server's hardening: a bad bootstrap key refused at
configuration load, ids matched whole, requests aiohttp cannot parse answered as problems, 405 with its
Allow header, strictly typed bodies and filters, and slow or too many clients cut off on time. Raw
sockets where a well-behaved client could not send the request; every connection to 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_kit import ADMIN_KEY, Api, ApiFactory, service_settings
from service_kit import free_tcp_port, until

from recorder.commands.serve import serve

PROBLEM_JSON = "application/problem+json"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, Any]:
        import json

        assert self.headers["content-type"].startswith(PROBLEM_JSON), self.headers
        found: dict[str, Any] = json.loads(self.body)
        assert found["status"] == self.status
        return found


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RawResponse(int(status_line.split()[1]), headers, body)


async def exchange(port: int, request: bytes, within: float = 5) -> RawResponse:
    """Send `request` on a new connection; its response, and the connection must then be closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        response = await asyncio.wait_for(read_response(reader), within)
        assert await asyncio.wait_for(reader.read(), within) == b"", "the server keeps the connection"
        return response
    finally:
        writer.close()


# -- configuration -----------------------------------------------------------------------------------------


def run_serve(
    tmp_path: Path, api: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "callvault.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nhttp_host = "127.0.0.1"\nhttp_port = {free_tcp_port()}\n'
        f"[janus]\nenabled = false\n[api]\n{api}\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


SHORT_KEY = "short-key-do-not-print-7f3a"


@pytest.mark.parametrize("case", ["short file", "missing file", "short env key"])
def test_bad_bootstrap_key_is_refused_at_load(tmp_path: Path, case: str) -> None:
    key_file = tmp_path / "admin.key"
    env = {}
    if case == "short file":
        key_file.write_text(SHORT_KEY + "\n")
    if case == "short env key":
        api, setting, env = "", "api.admin_key", {"CALLVAULT_API__ADMIN_KEY": SHORT_KEY}
    else:
        api, setting = f'admin_key_file = "{key_file}"', "api.admin_key_file"
    done = run_serve(tmp_path, api, env)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert done.stderr.strip().count("\n") == 0, done.stderr  # one line, no traceback
    assert setting in done.stderr and "invalid configuration" in done.stderr
    assert SHORT_KEY not in output  # never the key, nor any part of it
    assert SHORT_KEY[:12] not in output
    assert not (tmp_path / "data").exists()  # refused before anything (catalog, recordings) is created


# -- ids ---------------------------------------------------------------------------------------------------


async def test_ids_with_a_trailing_newline_are_refused(api: Api) -> None:
    assert api.sfu is not None
    await api.sfu.publish("r1", "100", "Alice")
    (rid,) = [r.info.recording_id for r in api.manager.rooms.values()]
    status, _ = await api.call("GET", "/v1/rooms/r1")
    assert status == 200
    cases: list[tuple[str, str, Any, str]] = [
        ("GET", "/v1/rooms/r1%0A", None, "path.room_id"),
        ("PUT", "/v1/rooms/r1%0A/policy", {}, "path.room_id"),
        ("GET", f"/v1/recordings/{rid}%0A", None, "path.recording_id"),
        ("PATCH", f"/v1/recordings/{rid}/participants/100%0A", {}, "path.participant_id"),
        ("DELETE", "/v1/keys/k1%0A", None, "path.key_id"),
        ("GET", "/v1/recordings?room=r1%0A", None, "query.room"),
        ("GET", "/v1/recordings?call_id=c1%0A", None, "query.call_id"),
        ("GET", f"/v1/recordings/{rid}/file?name=100-video-0.webm%0A", None, "query.name"),
        ("PATCH", f"/v1/recordings/{rid}", {"call_id": "c1\n"}, "body.call_id"),
        ("PATCH", f"/v1/recordings/{rid}", {"metadata": {"case\n": "1"}}, "body.metadata"),
        ("PATCH", f"/v1/recordings/{rid}/participants/100", {"metadata": {"k\n": "v"}}, "body.metadata"),
        ("PUT", "/v1/rooms/r1/policy", {"metadata": {"queue\n": "b"}}, "body.metadata"),
        ("POST", "/v1/rooms/r1/start", {"call_id": "c1\n"}, "body.call_id"),
        ("POST", "/v1/keys", {"name": "night\n", "role": "operator"}, "body.name"),
    ]
    for method, path, body, field in cases:
        status, problem = await api.call(method, path, json=body)
        assert status == 422, (method, path, status, problem)
        assert problem["detail"].startswith(field), (path, problem)
    status, rooms = await api.call("GET", "/v1/rooms")
    assert [r["room_id"] for r in rooms["rooms"]] == ["r1"]  # nothing was stored under "r1\n"


# -- requests aiohttp cannot parse ---------------------------------------------------------------------------


async def test_unparsable_requests_are_problems(api: Api) -> None:
    """With the default limits (8190-byte request line and header, 128 headers)."""
    port = api.site.port
    secret = b"cv_do_not_echo_" + b"s" * 9000
    cases = [
        (b"GET /v1/recordings?room=" + b"r" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "line-too-long"),
        (
            b"GET /v1/recordings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + b"\r\n\r\n",
            "line-too-long",
        ),
        (
            b"GET /v1/recordings HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n",
            "too-many-headers",
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", "malformed-request"),
    ]
    for request, kind in cases:
        response = await exchange(port, request)  # ... and the connection is closed
        problem = response.problem()
        assert response.status == 400 and problem["type"].endswith("/" + kind), problem
        assert problem["title"] == "Bad request" and problem["detail"]
        assert b"rrrrrrrrrr" not in response.body and b"do_not_echo" not in response.body
    status, _ = await api.call("GET", "/v1/recordings")  # the server serves on
    assert status == 200


async def test_request_size_limits_are_settings(make_api: ApiFactory) -> None:
    api: Api = await make_api(max_request_line=1024, max_header_size=1024, max_headers=16)
    port = api.site.port
    close = b"Host: x\r\nConnection: close\r\n\r\n"
    for fits in [
        b"GET /healthz?" + b"a" * 900 + b" HTTP/1.1\r\n" + close,
        b"GET /healthz HTTP/1.1\r\nX-A: " + b"a" * 900 + b"\r\n" + close,
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(12)) + close,
    ]:
        assert (await exchange(port, fits)).status == 200
    for refused, kind in [
        (b"GET /healthz?" + b"a" * 1100 + b" HTTP/1.1\r\n" + close, "line-too-long"),
        (b"GET /healthz HTTP/1.1\r\nX-A: " + b"a" * 1100 + b"\r\n" + close, "line-too-long"),
        (
            b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(20)) + close,
            "too-many-headers",
        ),
    ]:
        response = await exchange(port, refused)
        assert response.status == 400 and response.problem()["type"].endswith("/" + kind)
        assert "api.max_" in response.problem()["detail"]


# -- 405 ---------------------------------------------------------------------------------------------------


async def test_method_not_allowed_names_the_allowed_methods(api: Api) -> None:
    for method, path, allowed in [
        ("PATCH", "/v1/keys", {"GET", "POST"}),
        ("POST", "/v1/policy", {"GET", "PUT"}),
        ("PUT", "/v1/recordings/rec-1", {"GET", "PATCH", "DELETE"}),
        ("GET", "/v1/rooms/r1/start", {"POST"}),
    ]:
        async with api.http.request(method, api.base + path, headers=api.auth("admin"), json={}) as r:
            assert r.status == 405, (method, path)
            assert r.content_type == PROBLEM_JSON
            assert {m.strip() for m in r.headers["Allow"].split(",")} == allowed, (path, r.headers["Allow"])
            problem = await r.json(content_type=None)
        assert problem["status"] == 405 and problem["type"].endswith("/method-not-allowed")
        assert method in problem["detail"] and problem["instance"] == path


# -- bodies and filters ------------------------------------------------------------------------------------


async def test_bodies_and_filters_are_strictly_typed(api: Api) -> None:
    assert api.sfu is not None
    await api.sfu.publish("r1", "100", "Alice")
    (rid,) = [r.info.recording_id for r in api.manager.rooms.values()]
    for path, body, field in [
        (f"/v1/recordings/{rid}/legal-hold", {"hold": 0}, "body.hold"),
        (f"/v1/recordings/{rid}/legal-hold", {"hold": "true"}, "body.hold"),
        ("/v1/rooms/r1/policy", {"record": 1}, "body.record"),
        ("/v1/rooms/r1/policy", {"metadata": {"k": 5}}, "body.metadata.k"),
    ]:
        status, problem = await api.call("PUT", path, json=body)
        assert status == 422, (body, problem)
        assert [p["name"] for p in problem["invalid-params"]] == [field]
    status, detail = await api.call("GET", f"/v1/recordings/{rid}")
    assert detail["legal_hold"] is False  # `hold: 0` placed no hold
    status, detail = await api.call("PUT", f"/v1/recordings/{rid}/legal-hold", json={"hold": True})
    assert status == 200 and detail["legal_hold"] is True

    for query in [
        "started_before=0.5",
        "started_after=1700000000",
        "started_after=2024-01-01",
        "started_after=2024-01-01T00:00:00",
        "started_before=2024-01-01T00:00:00Z%0A",
    ]:
        status, problem = await api.call("GET", f"/v1/recordings?{query}")
        assert status == 422, (query, problem)
        assert problem["detail"].startswith("query.started_") and "RFC 3339" in problem["detail"]
    for query in ["started_before=2999-01-01T00:00:00Z", "started_after=2000-01-01T00:00:00.5%2B02:00"]:
        status, page = await api.call("GET", f"/v1/recordings?{query}")
        assert status == 200 and [r["recording_id"] for r in page["items"]] == [rid], query

    for method, path in [
        ("POST", "/v1/rooms/r1/start"),
        ("PATCH", f"/v1/recordings/{rid}"),
        ("PUT", "/v1/policy"),
        ("POST", f"/v1/recordings/{rid}/pause"),
    ]:
        status, problem = await api.call(method, path)  # no body at all
        assert status == 400, (path, status, problem)
        assert problem["type"].endswith("/missing-body") and problem["detail"].startswith("body: required")
    status, _ = await api.call("POST", "/v1/rooms/r1/start", json={})  # every field optional: {} is fine
    assert status == 200


# -- slow and too many clients -----------------------------------------------------------------------------


async def open_connections(api: Api, count: int) -> None:
    async def reached() -> bool:
        return api.site.open_connections == count

    await until(reached, 5, step=0.02)


async def quiet(api: Api) -> None:
    """Close the fixture's pooled client connection: the tests below count every connection."""
    await api.http.close()
    await open_connections(api, 0)


async def test_half_sent_requests_are_cut_off_and_connections_capped(make_api: ApiFactory) -> None:
    cap, extra, timeout = 12, 4, 1.0
    api: Api = await make_api(header_timeout=timeout, max_connections=cap)
    await quiet(api)
    port = api.site.port

    async def half_sent(trickle: bool) -> tuple[float, bytes]:
        """A request head that never ends (sent at once, or a byte every 0.1 s): (seconds until the
        server closed the connection, what it sent)."""
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1/recordings HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthoriz")

        async def dribble() -> None:
            try:
                while True:
                    await asyncio.sleep(0.1)
                    writer.write(b"a")
                    await writer.drain()
            except (ConnectionError, RuntimeError):
                pass

        sender = asyncio.create_task(dribble()) if trickle else None
        try:
            got = await asyncio.wait_for(reader.read(), 10 * timeout)
        except ConnectionResetError:
            got = b""
        finally:
            if sender is not None:
                sender.cancel()
            writer.close()
        return time.monotonic() - started, got

    slow = [asyncio.create_task(half_sent(trickle=i % 3 == 0)) for i in range(cap)]
    await open_connections(api, cap)
    refused = [await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(extra)]
    for response in refused:
        problem = response.problem()
        assert response.status == 503 and problem["type"].endswith("/too-many-connections")
        assert response.headers["retry-after"] == "1" and "max_connections" in problem["detail"]
    closed = await asyncio.gather(*slow)
    for seconds, got in closed:
        assert got == b""  # closed without an answer: no request was ever complete
        assert timeout * 0.9 <= seconds <= timeout + 3, closed  # trickling bytes buys no time
    assert api.site.refused == extra
    fresh = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    async with fresh as http, http.get(f"{api.base}/v1/recordings", headers=api.auth("admin")) as r:
        assert r.status == 200  # served again once the slow clients are gone


async def test_slow_body_is_answered_408_and_closed(make_api: ApiFactory) -> None:
    api: Api = await make_api(body_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", api.site.port)
    started = time.monotonic()
    try:
        writer.write(
            b"POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\nContent-Length: 60\r\n\r\n"
            b'{"name": "slow", '
        )
        await writer.drain()
        response = await asyncio.wait_for(read_response(reader), 5)
        answered = time.monotonic() - started
        assert await asyncio.wait_for(reader.read(), 5) == b""
        closed = time.monotonic() - started
    finally:
        writer.close()
    problem = response.problem()
    assert response.status == 408 and problem["type"].endswith("/body-timeout")
    assert problem["detail"].startswith("body: not received within 1 s")
    assert response.headers["connection"].lower() == "close"
    assert 0.9 <= answered <= 4 and closed <= answered + 4
    status, keys = await api.call("GET", "/v1/keys")
    assert status == 200 and "slow" not in [k["name"] for k in keys["keys"]]


# -- callvault serve -----------------------------------------------------------------------------------------


async def test_serve_listens_with_the_limits(tmp_path: Path) -> None:
    port = free_tcp_port()
    settings = service_settings(tmp_path, header_timeout=1.0, max_header_size=1024)
    settings = settings.model_copy(update={"http_port": port})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, signals=False))
    try:

        async def up() -> bool:
            try:
                return (
                    await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                ).status == 200
            except OSError:
                return False

        await until(up, 20)
        response = await exchange(
            port, b"GET /v1/keys HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n"
        )
        assert response.status == 400 and response.problem()["type"].endswith("/line-too-long")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"GET /v1/keys HTTP/1.1\r\nHost: x\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert 0.9 <= time.monotonic() - started <= 4
        writer.close()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
