"""The chart's fleet mode (fleet.enabled, k8s/values-fleet.yaml), rendered by a real helm: a recorder
StatefulSet per SFU node, the API as a Deployment with a Service and a CPU autoscaler, workers as a
Deployment scaled on the job backlog, the shared data volume, PodDisruptionBudgets and NetworkPolicies per
role, an optional bundled PostgreSQL for trials. Every manifest is checked against the Kubernetes schemas,
each role's settings are loaded the way `callvault serve` loads them (its callvault.toml plus the pod's
CALLVAULT_* environment), and wrong combinations are refused before anything reaches a cluster."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_kit import CHART, KUBE_VERSION, by_kind, one, render, run_helm

from recorder.db.url import parse_catalog_url
from recorder.jobs.settings import Role
from recorder.service.settings import ServiceSettings, load_settings

FLEET_VALUES = CHART.parent / "values-fleet.yaml"
DATA_DIR = "/var/lib/callvault/data"
# A small fleet given with --set only: one recorder, the bundled PostgreSQL, NetworkPolicies on.
TRIAL = (
    "fleet.enabled=true",
    "fleet.recorders[0].name=sfu1",
    "fleet.recorders[0].janus.wsUrl=ws://janus:8188",
    "fleet.recorders[0].rtp.portMin=41000",
    "fleet.recorders[0].rtp.portMax=41099",
    "postgresql.enabled=true",
    "networkPolicy.enabled=true",
)
KEDA = ("fleet.workers.autoscaling.via=keda",)
# Janus outside the cluster sends to the nodes: each recorder its own range of host ports.
HOST_PORT = (
    "rtp.exposure=hostPort",
    "fleet.recorders[0].rtp.portMax=40009",
    "fleet.recorders[1].rtp.portMin=40010",
    "fleet.recorders[1].rtp.portMax=40019",
    "fleet.recorders[1].janus.forwardHost=198.51.100.20",
)
FIXED = ("fleet.api.autoscaling.enabled=false", "fleet.workers.autoscaling.enabled=false")


@pytest.fixture(scope="module")
def rendered(helm_bin: str) -> dict[str, list[dict[str, Any]]]:
    return {
        "fleet": render(helm_bin, FLEET_VALUES),
        "keda": render(helm_bin, FLEET_VALUES, sets=KEDA),
        "fixed": render(helm_bin, FLEET_VALUES, sets=FIXED),
        "trial": render(helm_bin, sets=TRIAL),
        "hostPort": render(helm_bin, FLEET_VALUES, sets=HOST_PORT),
    }


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in _pod(workload)["containers"] if c["name"] == "callvault"]
    return container


def _env(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container(workload)["env"]}


def _workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("StatefulSet", "Deployment")}


def _settings(
    docs: list[dict[str, Any]], workload: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    """The settings `callvault serve` reads in this pod: its ConfigMap's file and its environment (secret
    references stand in for the values the kubelet would put there)."""
    config = next(v["configMap"]["name"] for v in _pod(workload)["volumes"] if v["name"] == "config")
    path = tmp_path / f"{config}.toml"
    path.write_text(one(docs, "ConfigMap", config)["data"]["callvault.toml"])
    for key in [k for k in os.environ if k.startswith("CALLVAULT_")]:
        monkeypatch.delenv(key)
    stand_in = {
        "CALLVAULT_API__CATALOG_URL": "postgresql://callvault:pw@db.internal:5432/callvault",
        "CALLVAULT_JANUS__EVENTS_TOKEN": "a-token-from-the-janus-secret",
    }
    for name, entry in _env(workload).items():
        if name.startswith("CALLVAULT_") and name != "CALLVAULT_HEALTHCHECK_PORT":
            if "value" in entry:
                monkeypatch.setenv(name, entry["value"])
            elif name in stand_in:
                monkeypatch.setenv(name, stand_in[name])
    return load_settings(path)


# -- what a user deploys -------------------------------------------------------------------------------


def test_the_fleet_has_its_three_roles(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["fleet"]
    workloads = _workloads(docs)
    assert {n: w["kind"] for n, w in workloads.items()} == {
        "rel-callvault-recorder-janus-a": "StatefulSet",
        "rel-callvault-recorder-janus-b": "StatefulSet",
        "rel-callvault-api": "Deployment",
        "rel-callvault-worker": "Deployment",
    }
    # The single all-roles StatefulSet and its Services are not there; the API has its Service.
    assert {s["metadata"]["name"] for s in by_kind(docs, "Service")} == {
        "rel-callvault-api",
        "rel-callvault-recorder-janus-a",
        "rel-callvault-recorder-janus-b",
    }
    assert {p["metadata"]["name"] for p in by_kind(docs, "PodDisruptionBudget")} == set(workloads)
    assert {p["metadata"]["name"] for p in by_kind(docs, "NetworkPolicy")} == set(workloads)


def test_default_values_keep_the_single_statefulset(helm_bin: str) -> None:
    docs = render(helm_bin)
    assert [w["metadata"]["name"] for w in by_kind(docs, "StatefulSet")] == ["rel-callvault"]
    assert not by_kind(docs, "Deployment") and not by_kind(docs, "HorizontalPodAutoscaler")
    assert "CALLVAULT_ROLES" not in _env(one(docs, "StatefulSet"))  # all roles, the service's default


@pytest.mark.parametrize(
    ("workload", "roles"),
    [
        ("rel-callvault-recorder-janus-a", [Role.RECORDER]),
        ("rel-callvault-recorder-janus-b", [Role.RECORDER]),
        ("rel-callvault-api", [Role.API]),
        ("rel-callvault-worker", [Role.WORKER]),
    ],
)
def test_each_role_runs_only_its_part(
    rendered: dict[str, list[dict[str, Any]]],
    workload: str,
    roles: list[Role],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = rendered["fleet"]
    pod = _workloads(docs)[workload]
    env = _env(pod)
    assert json.loads(env["CALLVAULT_ROLES"]["value"]) == [r.value for r in roles]
    assert env["CALLVAULT_API__CATALOG_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "callvault-catalog",
        "key": "url",
    }
    settings = _settings(docs, pod, tmp_path, monkeypatch)
    assert settings.roles == roles
    assert settings.api.catalog_location(settings.data_dir).dialect == "postgresql"
    assert str(settings.data_dir) == DATA_DIR
    # Only recorders follow a Janus; the API and the workers have none to follow.
    assert settings.janus.enabled is (Role.RECORDER in roles)
    assert settings.archive is not None and settings.archive.delete_local_after_upload is False
    if Role.WORKER in roles:
        assert settings.jobs.concurrency == 1
    assert _container(pod)["args"] == ["serve", "--config", "/etc/callvault/callvault.toml"]


def test_one_recorder_per_sfu_node(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = rendered["fleet"]
    workloads = _workloads(docs)
    a, b = workloads["rel-callvault-recorder-janus-a"], workloads["rel-callvault-recorder-janus-b"]
    for sts, url in ((a, "ws://janus-a.media.svc:8188"), (b, "ws://janus-b.media.svc:8188")):
        assert sts["spec"]["replicas"] == 1  # one recorder follows all of its Janus's rooms
        settings = _settings(docs, sts, tmp_path, monkeypatch)
        assert settings.janus.ws_url == url
        assert (settings.rtp_port_min, settings.rtp_port_max) == (40000, 40199)
        # Janus sends RTP to the pod; the recorder's events Service lists it before it is ready.
        assert (
            _env(sts)["CALLVAULT_JANUS__FORWARD_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        )
        service = one(docs, "Service", sts["metadata"]["name"])
        assert service["spec"]["publishNotReadyAddresses"] is True
        assert sts["spec"]["serviceName"] == service["metadata"]["name"]
        assert service["spec"]["selector"].items() <= _pod_labels(sts).items()
    # Each Janus's own secrets: janus-b names its Secret, janus-a uses secrets.janus.
    assert _env(a)["CALLVAULT_JANUS__ADMIN_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "callvault-janus"
    assert _env(b)["CALLVAULT_JANUS__ADMIN_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "callvault-janus-b"
    # The two recorders' pods are told apart by their selectors (a Service never reaches the other one).
    assert _pod_labels(a)["callvault.io/recorder"] == "janus-a"
    assert not (a["spec"]["selector"]["matchLabels"].items() <= _pod_labels(b).items())


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def test_recorders_and_workers_share_the_recordings(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Workers build composites from `<data_dir>/recordings/<id>` (docs/fleet.md): the recorders write
    there on the shared ReadWriteMany volume, while each recorder keeps state.json and its upload spool on
    a claim of its own."""
    docs = rendered["fleet"]
    (claim,) = by_kind(docs, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "shared-rwx"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    shared = claim["metadata"]["name"]
    for name, sts in _workloads(docs).items():
        volumes = {v["name"]: v for v in _pod(sts)["volumes"]}
        assert volumes["shared"]["persistentVolumeClaim"]["claimName"] == shared
        mounts = {m["mountPath"]: m for m in _container(sts)["volumeMounts"]}
        if "recorder" in name:
            # recordings/ for the workers to read, composites/ for what they made of them (results)
            for folder in ("recordings", "composites"):
                assert mounts[f"{DATA_DIR}/{folder}"]["name"] == "shared"
                assert mounts[f"{DATA_DIR}/{folder}"]["subPath"] == folder
            assert mounts["/var/lib/callvault"]["name"] == "data"  # its own claim
            (template,) = sts["spec"]["volumeClaimTemplates"]
            assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
            assert template["spec"]["resources"]["requests"]["storage"] == "50Gi"
        elif "-api" in name:  # its own folder (spool, outbox, transcript jobs: a second node on them
            # refuses to start), the recordings, composites, exports and reports from the shared volume
            assert mounts[DATA_DIR]["name"] == "node" and "emptyDir" in volumes["node"]
            for folder in ("recordings", "composites", "exports", "reports"):
                assert mounts[f"{DATA_DIR}/{folder}"]["name"] == "shared"
                assert mounts[f"{DATA_DIR}/{folder}"]["subPath"] == folder
        else:  # the data folder itself: recordings/ and the composites' work folders on one file system
            assert mounts[DATA_DIR]["name"] == "shared" and "subPath" not in mounts[DATA_DIR]


def test_an_existing_claim_is_used(helm_bin: str) -> None:
    docs = render(
        helm_bin,
        FLEET_VALUES,
        sets=("fleet.sharedVolume.existingClaim=recordings-nfs", "persistence.enabled=false"),
    )
    assert not by_kind(docs, "PersistentVolumeClaim")
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for w in _workloads(docs).values()
        for v in _pod(w)["volumes"]
        if v["name"] == "shared"
    }
    assert claims == {"recordings-nfs"}
    # Without persistence a recorder's own folder is an emptyDir (state and spool go with the pod).
    recorder = _workloads(docs)["rel-callvault-recorder-janus-a"]
    assert "volumeClaimTemplates" not in recorder["spec"]
    assert {"name": "data", "emptyDir": {}} in _pod(recorder)["volumes"]


# -- autoscaling ---------------------------------------------------------------------------------------


def test_workers_scale_on_the_backlog_and_the_api_on_cpu(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["fleet"]
    worker = one(docs, "HorizontalPodAutoscaler", "rel-callvault-worker")
    assert worker["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "rel-callvault-worker",
    }
    (metric,) = worker["spec"]["metrics"]
    assert metric["type"] == "External"
    # the whole backlog (composites, transcripts, exports): every worker takes every queue
    assert metric["external"]["metric"]["name"] == "callvault_jobs_pending"
    # The API pods report it (tests/jobs/test_roles.py): the series of the API Service.
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {"service": "rel-callvault-api"}
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "2"}
    assert (worker["spec"]["minReplicas"], worker["spec"]["maxReplicas"]) == (1, 8)
    api = one(docs, "HorizontalPodAutoscaler", "rel-callvault-api")
    assert api["spec"]["scaleTargetRef"]["name"] == "rel-callvault-api"
    assert api["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ]
    assert api["spec"]["minReplicas"] == 2
    # With an autoscaler the Deployments leave replicas to it (helm upgrade does not reset them).
    workloads = _workloads(docs)
    assert "replicas" not in workloads["rel-callvault-api"]["spec"]
    assert "replicas" not in workloads["rel-callvault-worker"]["spec"]
    # Two API pods at least: one of them stays through a node drain.
    assert one(docs, "PodDisruptionBudget", "rel-callvault-api")["spec"]["minAvailable"] == 1


def test_prometheus_scrapes_the_backlog_from_the_api_service(helm_bin: str) -> None:
    """The worker autoscaler selects the backlog series by `service`: the ServiceMonitor must scrape the
    API's Service (the Prometheus Operator labels each series with the Service's name)."""
    docs = render(helm_bin, FLEET_VALUES, api_versions=("monitoring.coreos.com/v1/ServiceMonitor",))
    monitor = one(docs, "ServiceMonitor")
    api = one(docs, "Service", "rel-callvault-api")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= api["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "http" == api["spec"]["ports"][0]["name"]
    assert (
        monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["name"] == "callvault-metrics-token"
    )


def test_keda_instead_of_the_hpa(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["keda"]
    assert [h["metadata"]["name"] for h in by_kind(docs, "HorizontalPodAutoscaler")] == ["rel-callvault-api"]
    scaled = one(docs, "ScaledObject", "rel-callvault-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {"name": "rel-callvault-worker"}
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 8)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    # Every API pod reports the whole queue: the max over them, not the sum.
    assert trigger["metadata"]["query"] == (
        'max(callvault_jobs_pending{namespace="media",service="rel-callvault-api"})'
    )
    assert trigger["metadata"]["threshold"] == "2"


WEBHOOK = (
    "archive.webhooks.endpoints[0].id=crm",
    "archive.webhooks.endpoints[0].url=https://crm.example.com/hooks",
    "archive.webhooks.endpoints[0].existingSecret=callvault-crm-hook",
    "archive.encryption.playbackIdentitySecret=callvault-playback",
)


def _secrets_of(workload: dict[str, Any]) -> set[str]:
    """The Secrets a pod reads: its environment's references and its mounted secret volumes."""
    env = {e["valueFrom"]["secretKeyRef"]["name"] for e in _env(workload).values() if "valueFrom" in e}
    return env | {v["secret"]["secretName"] for v in _pod(workload)["volumes"] if "secret" in v}


def test_workers_get_the_archive_secrets_only_to_build_exports(helm_bin: str) -> None:
    """Workers build the export bundles (the store, the fleet's signing key, the playback identity for
    decrypted exports); the API pods announce, so workers never hold the webhook secrets."""
    exporting = _workloads(render(helm_bin, FLEET_VALUES, sets=WEBHOOK))
    worker = _secrets_of(exporting["rel-callvault-worker"])
    assert {"callvault-s3", "callvault-signing-key", "callvault-playback"} <= worker
    assert "callvault-crm-hook" not in worker
    assert not any(name.startswith("WEBHOOK_") for name in _env(exporting["rel-callvault-worker"]))
    assert "callvault-crm-hook" in _secrets_of(exporting["rel-callvault-api"])  # the API announces
    for role in ("api", "worker"):  # the workers, with the store, run the lifecycle passes
        assert _env(exporting[f"rel-callvault-{role}"])["CALLVAULT_LIFECYCLE__RUN_ON"]["value"] == "workers"

    quiet = _workloads(render(helm_bin, FLEET_VALUES, sets=(*WEBHOOK, "fleet.workers.exports=false")))
    worker = _secrets_of(quiet["rel-callvault-worker"])
    assert worker.isdisjoint(
        {"callvault-s3", "callvault-signing-key", "callvault-playback", "callvault-crm-hook"}
    )
    assert "callvault-catalog" in worker  # the queue and the catalog, always
    assert "CALLVAULT_LIFECYCLE__RUN_ON" not in _env(quiet["rel-callvault-api"])  # passes on the API pods


def test_fixed_replicas_without_autoscaling(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["fixed"]
    assert not by_kind(docs, "HorizontalPodAutoscaler") and not by_kind(docs, "ScaledObject")
    workloads = _workloads(docs)
    assert workloads["rel-callvault-api"]["spec"]["replicas"] == 2
    assert workloads["rel-callvault-worker"]["spec"]["replicas"] == 1


# -- network policies ----------------------------------------------------------------------------------


def test_network_policy_per_role(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["fleet"]
    api = one(docs, "NetworkPolicy", "rel-callvault-api")
    assert api["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]  # from anywhere
    worker = one(docs, "NetworkPolicy", "rel-callvault-worker")
    assert worker["spec"]["policyTypes"] == ["Ingress"] and worker["spec"]["ingress"] == []  # nothing in
    assert worker["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    for sfu in ("janus-a", "janus-b"):
        policy = one(docs, "NetworkPolicy", f"rel-callvault-recorder-{sfu}")
        rtp, http = policy["spec"]["ingress"]
        only_its_sfu = [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": sfu}}}]
        assert rtp == {"from": only_its_sfu, "ports": [{"protocol": "UDP", "port": 40000, "endPort": 40199}]}
        assert http["from"][0] == only_its_sfu[0]  # Janus's event handler, then httpFrom (Prometheus)
        assert http["ports"] == [{"protocol": "TCP", "port": 8080}]
        assert policy["spec"]["podSelector"]["matchLabels"]["callvault.io/recorder"] == sfu


# -- PostgreSQL ----------------------------------------------------------------------------------------


def test_bundled_postgresql_for_trials(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert not any("postgresql" in w for w in _workloads(rendered["fleet"]))  # off unless asked
    docs = rendered["trial"]
    secret = one(docs, "Secret", "rel-callvault-postgresql")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    url = base64.b64decode(secret["data"]["url"]).decode()
    assert url == f"postgresql://callvault:{password}@rel-callvault-postgresql.media.svc:5432/callvault"
    location = parse_catalog_url(url)  # as the service reads CALLVAULT_API__CATALOG_URL
    assert location.dialect == "postgresql" and password not in location.redacted()
    pg = one(docs, "StatefulSet", "rel-callvault-postgresql")
    container = _pod(pg)["containers"][0]
    assert container["image"].startswith("postgres:")
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "rel-callvault-postgresql",
        "key": "password",
    }
    assert one(docs, "Service", "rel-callvault-postgresql")["spec"]["ports"][0]["port"] == 5432
    for name, workload in _workloads(docs).items():
        if name != "rel-callvault-postgresql":
            ref = _env(workload)["CALLVAULT_API__CATALOG_URL"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "rel-callvault-postgresql", "key": "url"}
    # The password is only in its Secret: not in a ConfigMap, not in a pod spec.
    others = [d for d in docs if d["kind"] != "Secret"]
    assert password not in yaml.safe_dump_all(others)
    # Only this release's CallVault pods reach it.
    policy = one(docs, "NetworkPolicy", "rel-callvault-postgresql")
    assert policy["spec"]["ingress"] == [
        {
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "callvault",
                            "app.kubernetes.io/instance": "rel",
                        }
                    }
                }
            ],
            "ports": [{"protocol": "TCP", "port": 5432}],
        }
    ]


def test_the_single_statefulset_can_use_the_bundled_postgresql(helm_bin: str) -> None:
    docs = render(helm_bin, sets=("postgresql.enabled=true",))
    ref = _env(one(docs, "StatefulSet", "rel-callvault"))["CALLVAULT_API__CATALOG_URL"]["valueFrom"][
        "secretKeyRef"
    ]
    assert ref == {"name": "rel-callvault-postgresql", "key": "url"}


# -- refused -------------------------------------------------------------------------------------------


def _refused(helm_bin: str, *sets: str, skip_schema: bool = False) -> str:
    args = ["template", "rel", str(CHART), "--namespace", "media"]
    for s in sets:
        args += ["--set", s]
    if skip_schema:
        args.append("--skip-schema-validation")
    result = run_helm(helm_bin, *args, check=False)
    assert result.returncode != 0, "helm template accepted these values"
    return result.stderr


ONE_RECORDER = TRIAL[:5]


def test_a_fleet_without_a_catalog_is_refused(helm_bin: str) -> None:
    """SQLite is one pod's file: a fleet needs PostgreSQL, given or bundled."""
    message = _refused(helm_bin, *ONE_RECORDER)
    assert "/catalog/existingSecret" in message and "/postgresql/enabled" in message  # what to set
    # The same refusal from the templates when the schema is skipped, in one sentence.
    message = _refused(helm_bin, *ONE_RECORDER, skip_schema=True)
    assert "fleet.enabled needs a PostgreSQL catalog" in message and "catalog.existingSecret" in message


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        # more than one API pod on SQLite
        (
            ("fleet.enabled=true", "fleet.api.autoscaling.enabled=false", "fleet.api.replicas=3"),
            "/catalog/existingSecret",
        ),
        (("fleet.enabled=true", "catalog.existingSecret=pg"), "/fleet/recorders"),  # no SFU to record
        (
            (*ONE_RECORDER, "catalog.existingSecret=pg", "fleet.recorders[0].name=Janus_1"),
            "/fleet/recorders/0/name",
        ),
        ((*ONE_RECORDER, "catalog.existingSecret=pg", "fleet.recorders[0].janus.wsUrl=janus:8188"), "wsUrl"),
        ((*ONE_RECORDER, "catalog.existingSecret=pg", "fleet.workers.autoscaling.via=cron"), "via"),
        ((*ONE_RECORDER, "catalog.existingSecret=pg", "fleet.workers.autoscaling.metric=cpu"), "metric"),
        (
            (*ONE_RECORDER, "catalog.existingSecret=pg", "fleet.recorders[0].rtp.portMax=41001"),
            "rtp.portMax must be at least",
        ),
        (
            (
                *ONE_RECORDER,
                "catalog.existingSecret=pg",
                "fleet.recorders[1].name=sfu1",
                "fleet.recorders[1].janus.wsUrl=ws://janus-2:8188",
                "fleet.recorders[1].rtp.portMin=41000",
                "fleet.recorders[1].rtp.portMax=41099",
            ),
            "the name sfu1 is used twice",
        ),
        (("postgresql.enabled=true", "postgresql.username=Robert'); DROP"), "/postgresql/username"),
        # the RTP Service is the single StatefulSet's; a fleet's recorders are reached per pod
        (
            (*ONE_RECORDER, "rtp.service.enabled=true", "rtp.service.advertisedAddress=203.0.113.7"),
            "/rtp/service/enabled",
        ),
    ],
    ids=[
        "api-replicas-sqlite",
        "no-recorders",
        "bad-name",
        "bad-ws-url",
        "bad-via",
        "bad-metric",
        "small-range",
        "twice",
        "bad-user",
        "rtp-service",
    ],
)
def test_wrong_combinations_are_refused(helm_bin: str, sets: tuple[str, ...], message: str) -> None:
    assert message in _refused(helm_bin, *sets)


# -- helm's and Kubernetes' own checks -----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["values-fleet", "trial"])
def test_helm_lint_strict_fleet(helm_bin: str, variant: str) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    if variant == "values-fleet":
        args += ["-f", str(FLEET_VALUES)]
    else:
        for s in TRIAL:
            args += ["--set", s]
    run_helm(helm_bin, *args)


def test_every_fleet_manifest_validates_against_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (dev dependency)"
    )
    checked = 0
    for name, docs in rendered.items():
        for doc in docs:
            if doc["apiVersion"].split("/")[0] in ("monitoring.coreos.com", "keda.sh"):
                continue  # CRDs: no schema offline (their fields are asserted above)
            try:
                kv.validate(doc, KUBE_VERSION, strict=True)
            except kv.ValidationError as exc:
                raise AssertionError(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}") from exc
            checked += 1
    assert checked >= 60


def test_values_fleet_fits_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (dev dependency)")
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    values = _merge(
        yaml.safe_load((CHART / "values.yaml").read_text()), yaml.safe_load(FLEET_VALUES.read_text())
    )
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    without_catalog = _merge(values, {"catalog": {"existingSecret": ""}})
    assert list(jsonschema.Draft7Validator(schema).iter_errors(without_catalog))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def test_recorders_on_host_ports(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Janus outside the cluster: each recorder's own range becomes host ports of its node, and Janus is
    told the node's address (or the recorder's forwardHost)."""
    workloads = _workloads(rendered["hostPort"])
    a, b = workloads["rel-callvault-recorder-janus-a"], workloads["rel-callvault-recorder-janus-b"]

    def host_ports(sts: dict[str, Any]) -> list[int]:
        return [p["hostPort"] for p in _container(sts)["ports"] if p["protocol"] == "UDP"]

    assert host_ports(a) == list(range(40000, 40010))
    assert host_ports(b) == list(range(40010, 40020))
    assert _env(a)["CALLVAULT_JANUS__FORWARD_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert "CALLVAULT_JANUS__FORWARD_HOST" not in _env(b)
    config = one(rendered["hostPort"], "ConfigMap", "rel-callvault-recorder-janus-b")["data"][
        "callvault.toml"
    ]
    assert 'forward_host = "198.51.100.20"' in config
    assert not any(p["protocol"] == "UDP" for p in _container(workloads["rel-callvault-worker"])["ports"])
