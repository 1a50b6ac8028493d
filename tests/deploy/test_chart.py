"""The Helm chart k8s/callvault, rendered by a real helm for its default values, the production-like
values file and the option combinations; every manifest checked against the Kubernetes schemas
(kubernetes-validate, offline), the values files against values.schema.json, and the rendered
callvault.toml against the service's own settings models."""

from __future__ import annotations

import base64
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_kit import CHART, KUBE_VERSION, PRODUCTION_VALUES, by_kind, one, render, run_helm
from pydantic import Field

from recorder.archive.settings import ArchiveSettings
from recorder.service.settings import ServiceSettings
from recorder.webhooks.settings import WebhookSettings

AGE_RECIPIENT = "age18fdgfrwxv38fj62wum4re3dtxtxt3app7tvk06n7hf8ffxdumc8sqguu4v"  # age-keygen -y (a test key)
VALUE_FILES = {"default": (), "production": (PRODUCTION_VALUES,)}
VARIANTS: dict[str, tuple[str, ...]] = {
    "hostPort": ("rtp.exposure=hostPort", "rtp.portMax=40019"),
    "hostNetwork": ("rtp.exposure=hostNetwork",),
    "rtpService": ("rtp.service.enabled=true", "rtp.service.advertisedAddress=203.0.113.7"),
    "inlineSecrets": (
        "archive.enabled=true",
        "archive.storage.s3.accessKey=AKIAEXAMPLE",
        "archive.storage.s3.secretKey=s3cr3t",
        "archive.signing.privateKeyPem=-----BEGIN PRIVATE KEY-----",
        "archive.webhooks.endpoints[0].id=crm",
        "archive.webhooks.endpoints[0].url=https://crm.example.com/hook",
        "archive.webhooks.endpoints[0].secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "secrets.janus.adminKey=k",
        "secrets.janus.eventsToken=t",
        "apiKeys.adminKey=an-admin-key-of-at-least-32-characters",
        "networkPolicy.enabled=true",
        "networkPolicy.sfu.ipBlocks[0]=10.20.0.15/32",
    ),
    "encrypted": (
        "archive.enabled=true",
        "archive.encryption.recipients[0]=" + AGE_RECIPIENT,
        "archive.encryption.escrow[0]=" + AGE_RECIPIENT,
        "archive.encryption.playbackIdentitySecret=callvault-playback",
    ),
    "ephemeral": (
        "persistence.enabled=false",
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.force=true",
    ),
}


class _ServiceWithArchive(ServiceSettings):
    """`callvault serve`'s settings as they become once archive.* is wired in (recorder/archive)."""

    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)


@pytest.fixture(scope="module")
def rendered(helm_bin: str) -> dict[str, list[dict[str, Any]]]:
    out = {name: render(helm_bin, *files) for name, files in VALUE_FILES.items()}
    out.update({name: render(helm_bin, sets=sets) for name, sets in VARIANTS.items()})
    return out


def _config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return tomllib.loads(one(docs, "ConfigMap")["data"]["callvault.toml"])


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = one(docs, "StatefulSet")
    containers: list[dict[str, Any]] = sts["spec"]["template"]["spec"]["containers"]
    return containers[0]


def _env(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container(docs)["env"]}


# -- helm's own checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("values", sorted(VALUE_FILES))
def test_helm_lint_strict(helm_bin: str, values: str) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    for f in VALUE_FILES[values]:
        args += ["-f", str(f)]
    run_helm(helm_bin, *args)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("rtp.service.enabled=true",), "advertisedAddress"),
        (("rtp.portMin=40000", "rtp.portMax=40001"), "rtp.portMax must be at least"),
        (("rtp.exposure=bridge",), "exposure"),
        (("config.janus.events=grpc",), "events"),
        (("archive.storage.s3.worm.mode=LOCKED",), "mode"),
        (("archive.encryption.recipients[0]=not-a-key",), "recipients"),
        (("replicaCount=-1",), "replicaCount"),
        (("replicaCount=2",), "replicaCount"),  # one CallVault per Janus
        (("autoscaling.enabled=true",), "autoscaling"),  # no HPA: it would scale replicas of one Janus
        (("apiKeys.adminKey=short",), "adminKey"),
        (("unknownKey=1",), "unknownKey"),
    ],
)
def test_bad_values_are_refused(helm_bin: str, sets: tuple[str, ...], message: str) -> None:
    args = ["template", "rel", str(CHART)]
    for s in sets:
        args += ["--set", s]
    result = run_helm(helm_bin, *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr


# -- Kubernetes schemas -----------------------------------------------------------------------------


def test_every_manifest_validates_against_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (dev dependency)"
    )
    checked = 0
    for name, docs in rendered.items():
        for doc in docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # a CRD: no schema offline; see test_service_monitor
            try:
                kv.validate(doc, KUBE_VERSION, strict=True)
            except kv.ValidationError as exc:
                raise AssertionError(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}") from exc
            checked += 1
    assert checked >= 40


def test_expected_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {d["kind"] for d in rendered["default"]}
    assert kinds == {"StatefulSet", "Service", "ConfigMap", "Secret", "ServiceAccount", "PodDisruptionBudget"}
    prod = {d["kind"] for d in rendered["production"]}
    assert {"NetworkPolicy", "StatefulSet"} <= prod
    # Production uses existingSecret everywhere: the chart creates no Secret, and no ServiceMonitor
    # without the CRD in the cluster.
    assert "Secret" not in prod
    assert "ServiceMonitor" not in prod
    assert "ServiceMonitor" in {d["kind"] for d in rendered["ephemeral"]}
    assert not any(d["kind"] == "HorizontalPodAutoscaler" for docs in rendered.values() for d in docs)


def test_service_monitor_only_with_the_crd(helm_bin: str) -> None:
    docs = render(helm_bin, PRODUCTION_VALUES, api_versions=("monitoring.coreos.com/v1/ServiceMonitor",))
    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["endpoints"] == [
        {
            "port": "http",
            "path": "/metrics",
            "interval": "30s",
            "scrapeTimeout": "10s",
            "authorization": {
                "type": "Bearer",
                "credentials": {"name": "callvault-metrics-token", "key": "token"},
            },
        }
    ]
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    service = one(docs, "Service", "rel-callvault")
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


# -- values.schema.json -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHART / "values.yaml", PRODUCTION_VALUES], ids=["default", "production"])
def test_values_files_fit_the_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (dev dependency)")
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if path != CHART / "values.yaml":
        values = _merge(values, yaml.safe_load(path.read_text()))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def test_chart_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    missing = sorted(set(_leaves(yaml.safe_load((CHART / "values.yaml").read_text()))) - documented)
    assert not missing, f"values not in the chart README's table: {missing}"


# Kubernetes objects passed as they are: documented as one value.
_OPAQUE = {
    "resources",
    "podSecurityContext",
    "securityContext",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "networkPolicy.sfu.podSelector",
    "fleet.api.resources",
    "fleet.workers.resources",
    "postgresql.resources",
}


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in _OPAQUE:
            out += _leaves(value, path + ".")
        else:
            out.append(path)
    return out


# -- callvault.toml and the service's settings ------------------------------------------------------


def _with_events_token(docs: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """The rendered file plus the events token, which reaches the service from the Janus secret through
    the environment (never from the file)."""
    assert "secretKeyRef" in _env(docs)["CALLVAULT_JANUS__EVENTS_TOKEN"]["valueFrom"]
    return {**config, "janus": {**config.get("janus", {}), "events_token": "from-the-secret"}}


@pytest.mark.parametrize("name", sorted(VALUE_FILES) + sorted(VARIANTS))
def test_rendered_config_loads_in_the_service(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    config = _config(rendered[name])
    env = {k: e["value"] for k, e in _env(rendered[name]).items() if "value" in e}
    for key in config:
        assert key in _ServiceWithArchive.model_fields, key
    settings = _ServiceWithArchive.model_validate(_with_events_token(rendered[name], config))
    assert str(settings.data_dir) == "/var/lib/callvault/data"
    if "archive" not in config:
        # Without archive the file is exactly what today's `callvault serve` accepts.
        ServiceSettings.model_validate(_with_events_token(rendered[name], config))
    if "CALLVAULT_ARCHIVE__WEBHOOKS__ENDPOINTS" in env:
        expanded = re.sub(
            r"\$\(WEBHOOK_SECRET_\d+\)",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            env["CALLVAULT_ARCHIVE__WEBHOOKS__ENDPOINTS"],
        )
        WebhookSettings(endpoints=json.loads(expanded))


def test_production_config(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["production"]
    settings = _ServiceWithArchive.model_validate(_with_events_token(docs, _config(docs)))
    assert settings.janus.ws_url == "ws://janus.media.svc:8188"
    assert (settings.rtp_port_min, settings.rtp_port_max) == (40000, 40199)
    assert settings.recorder.mux_threads == 4
    archive = settings.archive
    assert archive.storage.backend == "s3"
    assert archive.storage.s3.bucket == "callvault-recordings"
    assert archive.storage.s3.worm.days == 2555
    assert archive.spool.max_bytes == 80 * 1024**3
    assert archive.signing.key_file == Path("/etc/callvault/signing/signing-key.pem")
    assert archive.signing.generate_if_missing is False


def test_encryption_settings_and_the_playback_identity_mount(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["encrypted"]
    settings = _ServiceWithArchive.model_validate(_with_events_token(docs, _config(docs)))
    encryption = settings.archive.encryption
    assert encryption.recipients == [AGE_RECIPIENT] and encryption.escrow == [AGE_RECIPIENT]
    assert encryption.playback_identity_file == Path("/etc/callvault/playback/identity.txt")
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "playback-identity"]
    assert volume["secret"]["secretName"] == "callvault-playback" and volume["secret"]["defaultMode"] == 0o400
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["playback-identity"]["mountPath"] == "/etc/callvault/playback"
    assert mounts["playback-identity"]["readOnly"] is True
    assert "encryption" not in _config(rendered["default"]).get("archive", {})


# -- the workload ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "production"])
def test_probes_grace_and_security(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    docs = rendered[name]
    container = _container(docs)
    assert container["args"] == ["serve", "--config", "/etc/callvault/callvault.toml"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    grace = _config(docs)["shutdown_grace"]
    assert pod["terminationGracePeriodSeconds"] > grace
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/lib/callvault", "/tmp", "/etc/callvault/callvault.toml"} <= mounts


def test_termination_grace_follows_shutdown_grace(helm_bin: str) -> None:
    docs = render(helm_bin, sets=("config.shutdownGrace=90", "terminationGraceExtraSeconds=20"))
    assert one(docs, "StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 110


def test_per_pod_volume(rendered: dict[str, list[dict[str, Any]]]) -> None:
    sts = one(rendered["production"], "StatefulSet")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "data" not in volumes  # from the claim template
    ephemeral = one(rendered["ephemeral"], "StatefulSet")
    assert "volumeClaimTemplates" not in ephemeral["spec"] and ephemeral["spec"]["replicas"] == 1


def test_forward_host_follows_the_rtp_exposure(rendered: dict[str, list[dict[str, Any]]]) -> None:
    def forward(name: str) -> Any:
        e = _env(rendered[name]).get("CALLVAULT_JANUS__FORWARD_HOST")
        return (
            e["valueFrom"]["fieldRef"]["fieldPath"]
            if e
            else _config(rendered[name])["janus"].get("forward_host")
        )

    assert forward("default") == "status.podIP"
    assert forward("hostPort") == "status.hostIP"
    assert forward("hostNetwork") == "status.hostIP"
    assert forward("rtpService") == "203.0.113.7"
    host_ports = [p for p in _container(rendered["hostPort"])["ports"] if p["protocol"] == "UDP"]
    assert [p["hostPort"] for p in host_ports] == list(range(40000, 40020))
    assert one(rendered["hostNetwork"], "StatefulSet")["spec"]["template"]["spec"]["hostNetwork"] is True
    rtp = one(rendered["rtpService"], "Service", "rel-callvault-rtp")
    assert [p["port"] for p in rtp["spec"]["ports"]] == list(range(40000, 40100))
    assert {p["protocol"] for p in rtp["spec"]["ports"]} == {"UDP"}


def test_event_endpoint_reaches_pods_that_are_not_ready(rendered: dict[str, list[dict[str, Any]]]) -> None:
    headless = one(rendered["default"], "Service", "rel-callvault-headless")
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert one(rendered["default"], "StatefulSet")["spec"]["serviceName"] == "rel-callvault-headless"


def test_secrets_inline_and_existing(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["inlineSecrets"]
    secrets = {s["metadata"]["name"]: set(s["data"]) for s in by_kind(docs, "Secret")}
    assert secrets == {
        "rel-callvault-janus": {"admin-key", "events-token"},
        "rel-callvault-api-keys": {"admin-key"},
        "rel-callvault-s3": {"access-key", "secret-key"},
        "rel-callvault-signing": {"signing-key.pem"},
        "rel-callvault-webhooks": {"endpoint-0"},
    }
    env = _env(docs)
    assert env["CALLVAULT_S3_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "rel-callvault-s3",
        "key": "access-key",
    }
    assert env["CALLVAULT_JANUS__ADMIN_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "rel-callvault-janus"
    assert env["CALLVAULT_API__ADMIN_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "rel-callvault-api-keys",
        "key": "admin-key",
    }
    names = list(env)
    # $(WEBHOOK_SECRET_0) is expanded only from variables defined before it.
    assert names.index("WEBHOOK_SECRET_0") < names.index("CALLVAULT_ARCHIVE__WEBHOOKS__ENDPOINTS")
    assert "whsec_" not in env["CALLVAULT_ARCHIVE__WEBHOOKS__ENDPOINTS"]["value"]

    prod = _env(rendered["production"])
    refs = {
        k: e["valueFrom"]["secretKeyRef"] for k, e in prod.items() if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs["CALLVAULT_JANUS__EVENTS_TOKEN"] == {
        "name": "callvault-janus",
        "key": "events-token",
        "optional": True,
    }
    assert refs["CALLVAULT_S3_SECRET_KEY"] == {"name": "callvault-s3", "key": "secret-key"}
    assert refs["WEBHOOK_SECRET_0"] == {"name": "callvault-webhooks", "key": "crm"}
    assert refs["CALLVAULT_API__ADMIN_KEY"] == {"name": "callvault-api", "key": "admin-key"}
    volumes = {
        v["name"]: v
        for v in one(rendered["production"], "StatefulSet")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["signing-key"]["secret"]["secretName"] == "callvault-signing-key"


def test_network_policy_lets_only_the_sfu_send_rtp(rendered: dict[str, list[dict[str, Any]]]) -> None:
    policy = one(rendered["production"], "NetworkPolicy")
    rtp_rule, http_rule = policy["spec"]["ingress"]
    assert rtp_rule["ports"] == [{"protocol": "UDP", "port": 40000, "endPort": 40199}]
    assert rtp_rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "janus"}}}]
    assert http_rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert rtp_rule["from"][0] in http_rule["from"]
    assert len(http_rule["from"]) == 3
    inline = one(rendered["inlineSecrets"], "NetworkPolicy")
    assert {"ipBlock": {"cidr": "10.20.0.15/32"}} in inline["spec"]["ingress"][0]["from"]


def test_config_change_rolls_the_pods(helm_bin: str) -> None:
    def checksum(*sets: str) -> str:
        sts = one(render(helm_bin, sets=sets), "StatefulSet")
        return str(sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum() != checksum("config.janus.restartGrace=5")


def test_an_events_token_is_generated_when_none_is_given(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """CallVault refuses to start without event credentials: the chart never leaves the intake open."""
    secret = one(rendered["default"], "Secret", "rel-callvault-janus")
    token = base64.b64decode(secret["data"]["events-token"]).decode()
    assert len(token) == 48 and token.isalnum()
    env = _env(rendered["default"])
    assert env["CALLVAULT_JANUS__EVENTS_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "events-token"
