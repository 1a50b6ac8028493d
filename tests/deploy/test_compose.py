"""deploy/compose.yaml and deploy/janus/: the stack parses, references files that exist, and its pieces
agree with each other (secrets, ports, addresses) and with the service's settings. No Docker engine
runs here: `docker compose config` and the builds themselves are not exercised (docs/deployment.md)."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_kit import DEPLOY, ROOT
from pydantic import Field

from recorder.archive.settings import ArchiveSettings
from recorder.service.settings import ServiceSettings, load_settings

JANUS = DEPLOY / "janus"


class _ServiceWithArchive(ServiceSettings):
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)


_VAR = re.compile(r"\$\{([A-Z_]+)(?::-([^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose's ${VAR:-default} with every variable unset (what a first `docker compose up` sees)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return dict(_interpolate(data))


def _jcfg(name: str) -> str:
    return (JANUS / name).read_text()


def _setting(text: str, key: str) -> str:
    match = re.search(rf"^\s*{key}\s*=\s*\"?([^\"\n#]*)\"?", text, re.MULTILINE)
    assert match, key
    return match.group(1).strip()


def test_services_and_build_files(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"minio", "minio-init", "callvault", "janus", "demos"}
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile}"
    assert compose["services"]["callvault"]["build"]["dockerfile"] == "deploy/Dockerfile"


@pytest.mark.parametrize(
    "dockerfile", [DEPLOY / "Dockerfile", JANUS / "Dockerfile"], ids=["callvault", "janus"]
)
def test_every_copied_file_exists(dockerfile: Path) -> None:
    context = ROOT if dockerfile.parent == DEPLOY else JANUS
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile.read_text(), re.MULTILINE)
    assert copies
    for sources in copies:
        for source in sources.split():
            matches = list(context.glob(source))
            assert matches, f"{dockerfile.name}: COPY {source} matches nothing in {context}"


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    for ignore in (ROOT / ".dockerignore", DEPLOY / "Dockerfile.dockerignore"):
        kept = {line[1:] for line in ignore.read_text().splitlines() if line.startswith("!")}
        copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
        for source in " ".join(copied).split():
            assert source.rstrip("/") in kept, f"{ignore.name} drops {source}"


def _callvault_env(compose: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"]["callvault"]["environment"].items()}


def test_callvault_env_loads_in_the_service(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CALLVAULT_"):
            monkeypatch.delenv(key)
    for key, value in _callvault_env(compose).items():
        monkeypatch.setenv(key, value)
    today = load_settings()
    assert today.janus.ws_url == "ws://janus:8188"
    assert (today.rtp_port_min, today.rtp_port_max) == (40000, 40099)
    # The archive.* variables are named for the settings the service is getting (recorder/archive).
    later = _ServiceWithArchive()
    s3 = later.archive.storage.s3
    assert (later.archive.storage.backend, s3.endpoint, s3.bucket, s3.secure) == (
        "s3",
        "minio:9000",
        "callvault",
        False,
    )
    assert s3.resolved_credentials() == ("callvault", "callvault-demo-secret")
    assert compose["services"]["minio"]["environment"]["MINIO_ROOT_USER"] == "callvault"


def test_janus_and_callvault_agree(compose: dict[str, Any]) -> None:
    env = _callvault_env(compose)
    videoroom = _jcfg("janus.plugin.videoroom.jcfg")
    assert _setting(videoroom, "admin_key") == env["CALLVAULT_JANUS__ADMIN_KEY"]
    assert _setting(videoroom, "lock_rtp_forward") == "true"
    assert _setting(videoroom, "secret") == env["CALLVAULT_JANUS__ROOM_SECRET"]
    evh = _jcfg("janus.eventhandler.sampleevh.jcfg")
    assert _setting(evh, "backend") == (
        f"http://callvault:{env['CALLVAULT_HTTP_PORT']}/janus/events?token={env['CALLVAULT_JANUS__EVENTS_TOKEN']}"
    )
    assert _setting(evh, "grouping") == "true"
    assert env["CALLVAULT_JANUS__EVENTS"] == "http"
    ws = _jcfg("janus.transport.websockets.jcfg")
    assert env["CALLVAULT_JANUS__WS_URL"] == f"ws://janus:{_setting(ws, 'ws_port')}"


def test_rtp_reaches_callvault(compose: dict[str, Any]) -> None:
    env = _callvault_env(compose)
    callvault = compose["services"]["callvault"]
    address = callvault["networks"]["callvault"]["ipv4_address"]
    subnet = compose["networks"]["callvault"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    assert env["CALLVAULT_JANUS__FORWARD_HOST"] == address
    assert compose["services"]["janus"]["networks"] == ["callvault"]
    assert callvault["expose"] == [f"{env['CALLVAULT_RTP_PORT_MIN']}-{env['CALLVAULT_RTP_PORT_MAX']}/udp"]
    # Janus's browser-facing range is published 1:1, as its ICE candidates announce those port numbers.
    low, high = _setting(_jcfg("janus.jcfg"), "rtp_port_range").split("-")
    assert f"{low}-{high}:{low}-{high}/udp" in compose["services"]["janus"]["ports"]


def test_stop_grace_covers_shutdown_grace(compose: dict[str, Any]) -> None:
    grace = float(_callvault_env(compose)["CALLVAULT_SHUTDOWN_GRACE"])
    stop = compose["services"]["callvault"]["stop_grace_period"]
    assert stop.endswith("s") and float(stop[:-1]) > grace


def test_minio_bucket_with_object_lock(compose: dict[str, Any]) -> None:
    init = compose["services"]["minio-init"]
    script = "\n".join(init["command"])
    assert "mc mb --ignore-existing --with-lock" in script
    depends = compose["services"]["callvault"]["depends_on"]
    assert depends["minio-init"]["condition"] == "service_completed_successfully"


def test_janus_readme_covers_every_setting_used() -> None:
    readme = (JANUS / "README.md").read_text()
    for name in sorted(JANUS.glob("*.jcfg")):
        for key in re.findall(r"^\s*([a-z_0-9]+)\s*=", name.read_text(), re.MULTILINE):
            assert f"`{key}`" in readme, f"{name.name}: {key} is not explained in deploy/janus/README.md"


def test_janus_starts_once_callvault_is_healthy(compose: dict[str, Any]) -> None:
    """sampleevh blocks on a refused POST and every later event waits: Janus must find CallVault
    listening (issue 19, item 4)."""
    assert compose["services"]["janus"]["depends_on"]["callvault"]["condition"] == "service_healthy"
    check = compose["services"]["callvault"]["healthcheck"]
    assert check["test"][-1] == "/opt/callvault/healthcheck.py" and check["start_interval"] == "1s"
