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

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "kubernetes"
MANIFESTS = sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
# Native gRPC probes are GA from 1.27; also check against the newest schemas the validator bundles.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())

Doc = dict[str, Any]


def _docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _one(kind: str) -> Doc:
    found = [d for p in MANIFESTS for d in _docs(p) if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


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
    values = {var["name"].removeprefix("ELSER_").lower(): var["value"] for var in container["env"]}
    return Settings(**values)


def _port(container: Doc, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return int(ports[name])


def _cpu(quantity: str | int) -> Fraction:
    text = str(quantity)
    return Fraction(Decimal(text[:-1])) / 1000 if text.endswith("m") else Fraction(Decimal(text))


def test_manifest_set() -> None:
    assert {p.name for p in MANIFESTS} == {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"}


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
    service = _one("Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc"
    assert ports["http"]["appProtocol"] == "http"
    for name, port in ports.items():
        assert port["targetPort"] == name
        assert port["port"] == _port(container, name)


def test_selectors_match_pods(deployment: Doc) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one("Service")["spec"]["selector"].items() <= labels.items()
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_hpa_scales_the_deployment_on_queue_depth(deployment: Doc) -> None:
    hpa = _one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    pod_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pod_metrics == ["elser_queue_depth"]
