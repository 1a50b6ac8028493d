"""Standard Webhooks signatures: the spec's formula, verification, tolerance, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from recorder.webhooks import WebhookVerificationError, generate_secret, sign, signed_headers, verify

# The example of the Standard Webhooks reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_matches_the_reference_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE


def test_formula() -> None:
    secret = generate_secret()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert sign(secret, "msg_1", 1700000000, b"{}") == "v1," + base64.b64encode(mac).decode()


def test_verify_accepts_valid_and_rotated_signatures() -> None:
    secret, old = generate_secret(), generate_secret()
    headers = signed_headers(secret, "msg_2", b"body", timestamp=1000)
    verify(secret, headers, b"body", now=1000)
    rotated = {
        **headers,
        "webhook-signature": f"{sign(old, 'msg_2', 1000, b'body')} {headers['webhook-signature']}",
    }
    verify(secret, rotated, b"body", now=1000)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b"bodx"}, "no valid v1 signature"),
        ({"now": 1000 + 301}, "from now"),
        ({"now": 1000 - 301}, "from now"),
        ({"drop": "webhook-id"}, "missing"),
        ({"secret": "other"}, "no valid v1 signature"),
    ],
)
def test_verify_rejects(change: dict[str, object], message: str) -> None:
    secret = generate_secret()
    headers = signed_headers(secret, "msg_3", b"body", timestamp=1000)
    if "drop" in change:
        headers.pop(str(change["drop"]))
    with pytest.raises(WebhookVerificationError, match=message):
        verify(
            generate_secret() if change.get("secret") else secret,
            headers,
            change.get("body", b"body"),  # type: ignore[arg-type]
            now=float(change.get("now", 1000)),  # type: ignore[arg-type]
        )


def test_secrets_must_be_whsec_base64() -> None:
    from recorder.webhooks import WebhookEndpoint

    with pytest.raises(ValueError):
        WebhookEndpoint(id="a", url="http://x", secret="whsec_not base64!")  # type: ignore[arg-type]
