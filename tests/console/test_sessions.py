"""Console sessions and the origin check, without a browser: tokens kept only as hashes, a fixed
lifetime, revoked keys' sessions ended, a bounded store; cross-site requests told apart from a proxy's
https -> http; the cookie's Secure flag from a trusted proxy's X-Forwarded-Proto only."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from console_kit import served
from pydantic import ValidationError

from recorder.api.auth import Principal, Role
from recorder.api.settings import ApiSettings
from recorder.console import sessions as store_module
from recorder.console.app import COOKIE, same_origin
from recorder.console.sessions import SessionStore, token_hash

ALICE = Principal(key_id="a1", name="alice", role=Role.SUPERVISOR)
BOB = Principal(key_id="b2", name="bob", role=Role.OPERATOR)


def test_tokens_hashed_expire_and_end() -> None:
    now = [1000.0]
    store = SessionStore(60, clock=lambda: now[0])
    token, session = store.create(ALICE)
    assert token not in repr(store._sessions) and token_hash(token) in store._sessions  # only its hash
    assert store.get(token) is session and session.principal == ALICE
    assert store.get(token + "x") is None and store.get(None) is None and store.get("a" * 500) is None
    assert session.csrf_ok(session.csrf) and not session.csrf_ok("forged") and not session.csrf_ok(None)
    now[0] += 59.9
    assert store.get(token) is session
    now[0] += 0.2
    assert store.get(token) is None and len(store) == 0  # expired: dropped
    token2, _ = store.create(ALICE)
    token3, _ = store.create(BOB)
    assert store.end_key("a1") == 1 and store.get(token2) is None and store.get(token3) is not None
    assert store.end(token3) is not None and store.get(token3) is None


def test_store_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MAX_SESSIONS", 3)
    store = SessionStore(60)
    first, _ = store.create(ALICE)
    for _ in range(3):
        store.create(BOB)
    assert len(store) == 3 and store.get(first) is None  # the oldest made room


def test_same_origin() -> None:
    def request(headers: dict[str, str]) -> bool:
        mocked = make_mocked_request("POST", "/console/sign-in", headers={"Host": "rec:8080", **headers})
        return same_origin(mocked)

    assert request({})  # no browser headers (a script with the cookie still needs the CSRF token)
    assert request({"Origin": "http://rec:8080", "Sec-Fetch-Site": "same-origin"})
    assert request({"Origin": "https://rec:8080"})  # a TLS-terminating proxy in front
    assert not request({"Origin": "https://evil.example"})
    assert not request({"Origin": "null"})
    assert not request({"Sec-Fetch-Site": "cross-site"})
    assert not request({"Sec-Fetch-Site": "same-site"})


@pytest.mark.parametrize(
    ("proxies", "forwarded", "secure"),
    [
        ([], "https", False),  # no proxy trusted: anyone could send the header
        (["10.0.0.0/8"], "https", False),  # trusted proxies, but this request did not come from one
        (["127.0.0.1"], "https", True),  # from the trusted proxy: the browser saw https
        (["127.0.0.0/8", "::1"], "http, https", True),  # the nearest proxy's value (the last) counts
        (["127.0.0.1"], "https, http", False),
        (["127.0.0.1"], None, False),
    ],
)
async def test_secure_cookie_behind_a_trusted_proxy(
    tmp_path: Path, proxies: list[str], forwarded: str | None, secure: bool
) -> None:
    async with served(tmp_path, console_trusted_proxies=proxies) as service:
        headers = {"X-Forwarded-Proto": forwarded} if forwarded is not None else {}
        async with service.http.post(
            f"{service.base}/console/sign-in",
            data={"key": service.keys["supervisor"]},
            headers=headers,
            allow_redirects=False,
        ) as r:
            assert r.status == 303
            cookie = r.cookies[COOKIE]
        assert bool(cookie["secure"]) is secure
        assert cookie["httponly"] and cookie["samesite"] == "Strict"


def test_trusted_proxies_setting_is_validated() -> None:
    with pytest.raises(ValidationError, match=r"'proxy\.example' is not an IP address or network"):
        ApiSettings(console_trusted_proxies=["proxy.example"])
