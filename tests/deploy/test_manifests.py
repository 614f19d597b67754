"""deploy/kubernetes: valid against the Kubernetes JSON schemas (bundled by kubernetes-validate, no cluster or
network) and consistent with the service: settings, health service names, drain timing, sizing, non-root."""

from __future__ import annotations

import copy
import os
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from elser_server.settings import Settings
from elser_server.transport.grpc.server import INFERENCE_SERVICE, LIVENESS
from psycopg.conninfo import conninfo_to_dict

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "kubernetes"
MANIFESTS = sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
# Native gRPC probes are GA from 1.27; also check against the newest schemas the validator bundles.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())

Doc = dict[str, Any]


def _docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _one(kind: str, name: str | None = None) -> Doc:
    found = [
        d for p in MANIFESTS for d in _docs(p) if d["kind"] == kind and name in (None, d["metadata"]["name"])
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


POD_NAME = "elser-inference-7d9c8-x2x4q"


def _env_value(var: Doc) -> str:
    """What the kubelet gives the container: a literal, a Secret's key, or the pod's name."""
    if "value" in var:
        return str(var["value"])
    source = var["valueFrom"]
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        return str(_one("Secret", ref["name"])["stringData"][ref["key"]])
    assert source["fieldRef"]["fieldPath"] == "metadata.name"
    return POD_NAME


@pytest.fixture(scope="module")
def deployment() -> Doc:
    return _one("Deployment")


@pytest.fixture(scope="module")
def container(deployment: Doc) -> Doc:
    containers: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.fixture
def settings(container: Doc, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the pod runs with: the manifest's env validated by the real settings class."""
    for name in [n for n in os.environ if n.startswith("ELSER_")]:
        monkeypatch.delenv(name)
    values = {var["name"].removeprefix("ELSER_").lower(): _env_value(var) for var in container["env"]}
    return Settings(**values)


def _port(container: Doc, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return int(ports[name])


def _cpu(quantity: str | int) -> Fraction:
    text = str(quantity)
    return Fraction(Decimal(text[:-1])) / 1000 if text.endswith("m") else Fraction(Decimal(text))


def test_manifest_set() -> None:
    assert {p.name for p in MANIFESTS} == {
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "store-secret.yaml",
        "postgres.yaml",
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_schema_valid(path: Path, version: str) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_validator_rejects_a_misspelt_field(deployment: Doc) -> None:
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    image_names = {i["name"] for i in kustomization["images"]}
    assert image_names == {"elser-inference"}


def test_env_names_are_settings(container: Doc) -> None:
    known = {f"ELSER_{name.upper()}" for name in Settings.model_fields}
    assert {v["name"] for v in container["env"]} <= known


def test_image_is_tagged(container: Doc) -> None:
    name, _, tag = container["image"].rpartition(":")
    assert name == "elser-inference"
    assert tag and tag != "latest"


def test_ports_match_settings(container: Doc, settings: Settings) -> None:
    assert _port(container, "grpc") == settings.grpc_port
    assert _port(container, "http") == settings.http_port
    assert _port(container, "metrics") == 9464


def test_probes_use_grpc_health(container: Doc, settings: Settings) -> None:
    grpc_port = _port(container, "grpc")
    services = {
        "startupProbe": INFERENCE_SERVICE,
        "readinessProbe": INFERENCE_SERVICE,
        "livenessProbe": LIVENESS,
    }
    for probe_name, service in services.items():
        probe = container[probe_name]["grpc"]
        assert probe["port"] == grpc_port, probe_name
        assert probe["service"] == service, probe_name
    # readiness of elser.v1.InferenceService needs a deployment; without preloading none may ever start
    assert settings.preload_default_endpoint


def test_termination_grace_covers_drain_and_grace(deployment: Doc, settings: Settings) -> None:
    grace_period = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace_period > settings.drain_s + settings.shutdown_grace_s


def test_drain_timing_against_probes(container: Doc, settings: Settings) -> None:
    readiness = container["readinessProbe"]
    liveness = container["livenessProbe"]
    # the pod leaves the Service's endpoints before its listeners close
    assert settings.drain_s >= readiness["periodSeconds"] * readiness["failureThreshold"]
    # health "" is NOT_SERVING while draining too: liveness must not restart a draining pod
    assert (
        liveness["periodSeconds"] * liveness["failureThreshold"]
        > settings.drain_s + settings.shutdown_grace_s
    )


def test_resources_are_allocations_times_threads(deployment: Doc, container: Doc) -> None:
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    cpus = int(annotations["elser/allocations"]) * int(annotations["elser/threads-per-allocation"])
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert _cpu(resources["requests"]["cpu"]) == cpus


def test_runs_as_non_root(deployment: Doc, container: Doc) -> None:
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_data_dir_is_a_volume(container: Doc, settings: Settings) -> None:
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.data_dir) in mounts


def test_service_ports(container: Doc) -> None:
    service = _one("Service", "elser-inference")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc"
    assert ports["http"]["appProtocol"] == "http"
    for name, port in ports.items():
        assert port["targetPort"] == name
        assert port["port"] == _port(container, name)


def test_selectors_match_pods(deployment: Doc) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one("Service", "elser-inference")["spec"]["selector"].items() <= labels.items()
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_hpa_scales_the_deployment_on_queue_depth(deployment: Doc) -> None:
    hpa = _one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    pod_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pod_metrics == ["elser_queue_depth"]


def _volume_file(pod: Doc, container: Doc, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file at `path` in `container`, mounted from a Secret volume of `pod`."""
    for mount in container["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            assert mount.get("readOnly") is True
            (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            (item,) = [i for i in volume["secret"]["items"] if i["path"] == path.removeprefix(prefix)]
            return volume["secret"]["secretName"], item["key"]
    raise AssertionError(f"{path} is not mounted")


def test_store_url_and_password_come_from_the_secret(
    deployment: Doc, container: Doc, settings: Settings
) -> None:
    (url_var,) = [v for v in container["env"] if v["name"] == "ELSER_STORE_URL"]
    ref = url_var["valueFrom"]["secretKeyRef"]
    assert settings.store_url is not None and settings.store_password_file is not None
    assert ":" not in settings.store_url.removeprefix("postgresql://").split("@")[0]  # no password in the URL
    pod = deployment["spec"]["template"]["spec"]
    assert _volume_file(pod, container, str(settings.store_password_file)) == (ref["name"], "password")
    secret = _one("Secret", ref["name"])
    assert set(secret["stringData"]) == {"url", "password"}


def test_replicas_are_named_after_their_pod(settings: Settings) -> None:
    assert settings.effective_replica_name == POD_NAME


def test_example_postgres_is_what_the_url_names(settings: Settings) -> None:
    assert settings.store_url is not None
    params = conninfo_to_dict(settings.store_url)
    service = _one("Service", params["host"])
    (port,) = service["spec"]["ports"]
    assert port["port"] == int(params["port"])
    statefulset = _one("StatefulSet", "elser-postgres")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert (
        service["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    )
    (postgres,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {v["name"]: v["value"] for v in postgres["env"]}
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == (params["user"], params["dbname"])
    assert {p["name"]: p["containerPort"] for p in postgres["ports"]}[port["targetPort"]] == 5432
    # the server's password is the replicas' password: the same Secret key, as a file
    password_secret = _volume_file(
        statefulset["spec"]["template"]["spec"], postgres, env["POSTGRES_PASSWORD_FILE"]
    )
    assert password_secret == ("elser-store", "password")
    assert statefulset["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
