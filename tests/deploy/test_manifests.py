"""deploy/k8s validates offline and keeps its operational promises.

Renders `deploy/k8s` (the base) and `deploy/k8s/dev` with `kubectl kustomize` when kubectl is
installed, and always with a small pure-Python renderer (resources, namespace, images, patches:
the subset the kustomizations use), so the checks run on machines without kubectl too. Every
rendered resource is validated against the Kubernetes OpenAPI schemas shipped with
kubernetes-validate; no cluster and no network are needed.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = {"base": K8S, "dev": K8S / "dev", "cluster": K8S / "cluster"}
K8S_VERSION = "1.30.0"
NAMESPACE = "dronecast"
SERVICES = {"api": 8000, "gateway": 8001, "worker": 8002}
KUBECTL = shutil.which("kubectl")

Doc = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

FALLBACK_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def _merge(target: Any, patch: Any) -> Any:
    """Strategic-merge subset: maps merge recursively, anything else replaces."""
    if isinstance(target, dict) and isinstance(patch, dict):
        out = dict(target)
        for key, value in patch.items():
            out[key] = _merge(target[key], value) if key in target else copy.deepcopy(value)
        return out
    return copy.deepcopy(patch)


def _set_image(image: str, rule: dict[str, str]) -> str:
    name = re.split(r"[@]", image)[0]
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    if name != rule["name"]:
        return image
    new = rule.get("newName", name)
    if "digest" in rule:
        return f"{new}@{rule['digest']}"
    tag = rule.get("newTag")
    if tag is None:
        old = image[len(name) :]
        return new + old
    return f"{new}:{tag}"


def render_fallback(path: Path) -> list[Doc]:
    """Render a kustomization without kubectl (only the features our kustomizations use)."""
    spec = yaml.safe_load((path / "kustomization.yaml").read_text())
    unsupported = set(spec) - FALLBACK_KEYS
    assert not unsupported, f"{path}: kustomization keys the offline renderer lacks: {unsupported}"
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        target = (path / entry).resolve()
        if target.is_dir():
            docs.extend(render_fallback(target))
        else:
            docs.extend(d for d in yaml.safe_load_all(target.read_text()) if d)
    for patch_entry in spec.get("patches", []):
        assert set(patch_entry) == {"path"}, f"only file patches are supported: {patch_entry}"
        patch = yaml.safe_load((path / patch_entry["path"]).read_text())
        matches = [
            i
            for i, d in enumerate(docs)
            if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]
        ]
        assert len(matches) == 1, f"patch {patch_entry['path']} matches {len(matches)} resources"
        docs[matches[0]] = _merge(docs[matches[0]], patch)
    namespace = spec.get("namespace")
    if namespace:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
    for rule in spec.get("images", []):
        for doc in docs:
            if doc["kind"] not in POD_TEMPLATE_KINDS:
                continue
            pod = doc["spec"]["template"]["spec"]
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                container["image"] = _set_image(container["image"], rule)
    return docs


def render_kubectl(path: Path) -> list[Doc]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


RENDERERS = ["kubectl", "fallback"]


@pytest.fixture(scope="module")
def _cache() -> dict[tuple[str, str], list[Doc]]:
    return {}


def _render(cache: dict[tuple[str, str], list[Doc]], overlay: str, renderer: str) -> list[Doc]:
    if renderer == "kubectl" and KUBECTL is None:
        pytest.skip("kubectl not installed; the fallback renderer covers this")
    key = (overlay, renderer)
    if key not in cache:
        path = OVERLAYS[overlay]
        cache[key] = render_kubectl(path) if renderer == "kubectl" else render_fallback(path)
    return copy.deepcopy(cache[key])


@pytest.fixture(params=[(o, r) for o in OVERLAYS for r in RENDERERS], ids=lambda p: "-".join(p))
def rendered(request: pytest.FixtureRequest, _cache: dict) -> tuple[str, list[Doc]]:
    overlay, renderer = request.param
    return overlay, _render(_cache, overlay, renderer)


@pytest.fixture(params=RENDERERS)
def base(request: pytest.FixtureRequest, _cache: dict) -> list[Doc]:
    return _render(_cache, "base", request.param)


@pytest.fixture(params=RENDERERS)
def dev(request: pytest.FixtureRequest, _cache: dict) -> list[Doc]:
    return _render(_cache, "dev", request.param)


@pytest.fixture(params=RENDERERS)
def cluster(request: pytest.FixtureRequest, _cache: dict) -> list[Doc]:
    return _render(_cache, "cluster", request.param)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def key(doc: Doc) -> tuple[str, str, str]:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = by_kind(docs, kind)
    assert name in found, f"missing {kind}/{name}; have {sorted(found)}"
    return found[name]


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        op, k, values = expr["operator"], expr["key"], expr.get("values") or []
        if op == "In" and labels.get(k) not in values:
            return False
        if op == "NotIn" and k in labels and labels[k] in values:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


_UNITS = {
    "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def quantity(value: str | int | float) -> float:
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert m and m.group(2) in _UNITS, f"bad quantity {value!r}"
    return float(m.group(1)) * _UNITS[m.group(2)]


def pod_spec(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"]


def container_of(doc: Doc) -> Doc:
    containers = pod_spec(doc)["containers"]
    assert len(containers) == 1, f"{doc['metadata']['name']}: expected one container"
    return containers[0]


def secret_values(secret: Doc) -> dict[str, str]:
    import base64

    values = dict(secret.get("stringData") or {})
    for k, v in (secret.get("data") or {}).items():
        values[k] = base64.b64decode(v).decode()
    return values


def drain_seconds(docs: list[Doc]) -> float:
    return float(one(docs, "ConfigMap", "dronecast-config")["data"]["DRAIN_SECONDS"])


# --------------------------------------------------------------------------------------------
# Offline schema validation and rendering
# --------------------------------------------------------------------------------------------


def test_every_resource_validates_against_the_kubernetes_schema(rendered) -> None:
    overlay, docs = rendered
    assert docs, f"{overlay} rendered nothing"
    failures = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{key(doc)}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            failures.append(f"{key(doc)}: no schema: {exc.message}")
    assert not failures, "\n".join(failures)


def test_validator_rejects_a_broken_manifest(base) -> None:
    """The validation above can fail: an unknown field and a wrong type are both caught."""
    deployment = copy.deepcopy(one(base, "Deployment", "dronecast-api"))
    container_of(deployment)["livenessProbe"]["httpGet"]["pathh"] = "/health"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = copy.deepcopy(one(base, "Deployment", "dronecast-api"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_offline_renderer_matches_kubectl(overlay: str, _cache: dict) -> None:
    ours = {key(d): d for d in _render(_cache, overlay, "fallback")}
    theirs = {key(d): d for d in _render(_cache, overlay, "kubectl")}
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
        assert ours[k] == theirs[k], f"{k} differs between kubectl and the offline renderer"


def test_resources_and_namespace(rendered) -> None:
    overlay, docs = rendered
    keys = {(d["kind"], d["metadata"]["name"]) for d in docs}
    expected = {
        ("Namespace", NAMESPACE),
        ("ConfigMap", "dronecast-config"),
        ("Secret", "dronecast-secrets"),
        ("Ingress", "dronecast-api"),
        ("Ingress", "dronecast-events"),
        ("HorizontalPodAutoscaler", "dronecast-api"),
        ("HorizontalPodAutoscaler", "dronecast-gateway"),
        ("NetworkPolicy", "redis-allow-dronecast"),
        ("NetworkPolicy", "mongodb-allow-dronecast"),
    }
    for name in SERVICES:
        for kind in ("Deployment", "Service", "PodDisruptionBudget"):
            expected.add((kind, f"dronecast-{name}"))
    if overlay == "dev":
        expected |= {
            ("Service", "redis"),
            ("StatefulSet", "redis"),
            ("Service", "mongodb"),
            ("StatefulSet", "mongodb"),
        }
    assert keys == expected
    assert len(keys) == len(docs), "duplicate resources"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, key(doc)


# --------------------------------------------------------------------------------------------
# Deployments and Services
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", list(SERVICES))
def test_deployment(base, service: str) -> None:
    port = SERVICES[service]
    dep = one(base, "Deployment", f"dronecast-{service}")
    spec = dep["spec"]
    template_labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == 2
    assert selector_matches(spec["selector"], template_labels)
    assert template_labels["app.kubernetes.io/component"] == service

    c = container_of(dep)
    assert c["image"] == "dronecast:0.1.0", "one image for every service, tag set by kustomize"
    assert c["args"] == [service] and "command" not in c, "ENTRYPOINT dronecast + subcommand"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": port}
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    assert env.get("PORT") == str(port)
    refs = {next(iter(r)): next(iter(r.values()))["name"] for r in c["envFrom"]}
    assert refs == {"configMapRef": "dronecast-config", "secretRef": "dronecast-secrets"}

    # Probes: alive on /health, ready on /ready, both on the service port.
    live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
    assert live["path"] == "/health" and ready["path"] == "/ready"
    for probe in (live, ready):
        assert ports.get(probe["port"], probe["port"]) == port

    # Graceful shutdown: preStop sleep, then SIGTERM and a drain bounded by DRAIN_SECONDS.
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2
    pre_stop = float(command[1])
    assert 0 < pre_stop
    grace = pod_spec(dep)["terminationGracePeriodSeconds"]
    assert grace > drain_seconds(base) + pre_stop

    # Resources: requests and limits for cpu and memory, requests <= limits.
    res = c["resources"]
    for kind in ("cpu", "memory"):
        assert quantity(res["requests"][kind]) <= quantity(res["limits"][kind])

    # Non-root, read-only root filesystem, no privilege escalation, no capabilities.
    pod_sc, sc = pod_spec(dep)["securityContext"], c["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    assert "/tmp" in mounts, "a writable /tmp on a read-only root filesystem"

    # Prometheus scraping of the pod's /metrics.
    notes = spec["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/port"] == str(port)
    assert notes["prometheus.io/path"] == "/metrics"

    svc = one(base, "Service", f"dronecast-{service}")
    assert selector_matches({"matchLabels": svc["spec"]["selector"]}, template_labels)
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["port"] == port and svc_port["targetPort"] == "http"


def test_services_select_only_their_own_pods(base) -> None:
    deployments = by_kind(base, "Deployment")
    for name, svc in by_kind(base, "Service").items():
        selected = [
            d
            for d, dep in deployments.items()
            if selector_matches(
                {"matchLabels": svc["spec"]["selector"]},
                dep["spec"]["template"]["metadata"]["labels"],
            )
        ]
        assert selected == [name]


# --------------------------------------------------------------------------------------------
# Availability: PDBs and HPAs
# --------------------------------------------------------------------------------------------


def test_pod_disruption_budgets(base) -> None:
    deployments = by_kind(base, "Deployment")
    pdbs = by_kind(base, "PodDisruptionBudget")
    assert set(pdbs) == set(deployments)
    for name, pdb in pdbs.items():
        covered = [
            d
            for d, dep in deployments.items()
            if selector_matches(
                pdb["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"]
            )
        ]
        assert covered == [name], f"{name} PDB covers {covered}"
        replicas = deployments[name]["spec"]["replicas"]
        if "minAvailable" in pdb["spec"]:
            assert 1 <= pdb["spec"]["minAvailable"] < replicas, "must allow one voluntary eviction"
        else:
            assert pdb["spec"]["maxUnavailable"] >= 1


def test_horizontal_pod_autoscalers(base) -> None:
    hpas = by_kind(base, "HorizontalPodAutoscaler")
    assert set(hpas) == {"dronecast-api", "dronecast-gateway"}
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"], ref["name"]) == ("apps/v1", "Deployment", name)
        dep = one(base, "Deployment", name)
        assert hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["minReplicas"] == dep["spec"]["replicas"]
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        metrics = hpa["spec"]["metrics"]
        assert metrics
        requests = container_of(dep)["resources"]["requests"]
        for metric in metrics:
            if (
                metric["type"] == "Resource"
                and metric["resource"]["target"]["type"] == "Utilization"
            ):
                assert metric["resource"]["name"] in requests, "utilization needs a request"


# --------------------------------------------------------------------------------------------
# Settings: ConfigMap and Secret
# --------------------------------------------------------------------------------------------


def test_config_and_secret(rendered) -> None:
    _, docs = rendered
    config = one(docs, "ConfigMap", "dronecast-config")["data"]
    secret = one(docs, "Secret", "dronecast-secrets")
    values = secret_values(secret)
    assert {"SECRET_KEY", "MONGODB_URI"} <= set(values)
    assert not {"SECRET_KEY", "MONGODB_URI", "REDIS_PASSWORD"} & set(config), (
        "secrets stay out of the ConfigMap"
    )
    assert all(isinstance(v, str) for v in config.values()), "ConfigMap values are strings"
    uri = urlsplit(values["MONGODB_URI"])
    assert uri.scheme == "mongodb" and parse_qs(uri.query).get("replicaSet") == ["rs0"]
    assert urlsplit(config["REDIS_URL"]).scheme == "redis"
    assert float(config["DRAIN_SECONDS"]) > 0
    assert config["AUTH_ENABLED"] == "true"


def _settings_from(docs: list[Doc], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from shared.settings import Settings

    env = dict(one(docs, "ConfigMap", "dronecast-config")["data"])
    env.update(secret_values(one(docs, "Secret", "dronecast-secrets")))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return lambda: Settings(_env_file=None)  # type: ignore[call-arg]


def test_base_placeholder_secret_fails_closed(base, monkeypatch: pytest.MonkeyPatch) -> None:
    """The base ships a placeholder SECRET_KEY that the services refuse in production."""
    from pydantic import ValidationError

    build = _settings_from(base, monkeypatch)
    assert one(base, "ConfigMap", "dronecast-config")["data"]["ENVIRONMENT"] == "production"
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        build()
    monkeypatch.setenv("SECRET_KEY", "a-real-key-" + "x" * 40)
    settings = build()  # every other value parses as the real Settings expect
    assert settings.drain_seconds == float(
        one(base, "ConfigMap", "dronecast-config")["data"]["DRAIN_SECONDS"]
    )
    assert settings.mongodb_uri and settings.redis_url and settings.auth_enabled


def test_dev_overlay_settings_start(dev, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_from(dev, monkeypatch)()
    assert settings.environment == "dev"
    assert not settings.embedded_store and not settings.embedded_broker


# --------------------------------------------------------------------------------------------
# Ingress
# --------------------------------------------------------------------------------------------

API_PATHS = {
    "/",
    "/static",
    "/api",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/ws/drone",
    "/ws/application",
    "/health",
}


def test_ingress_routes(base) -> None:
    services = by_kind(base, "Service")
    routes: dict[str, tuple[str, str]] = {}
    for name, ing in by_kind(base, "Ingress").items():
        assert ing["spec"]["ingressClassName"] == "nginx"
        notes = ing["metadata"].get("annotations", {})
        assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600, name
        assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600, name
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                assert p["path"] not in routes, f"{p['path']} routed twice"
                routes[p["path"]] = (backend["name"], name)
                svc = services[backend["name"]]
                port_names = {sp["name"] for sp in svc["spec"]["ports"]}
                port_numbers = {sp["port"] for sp in svc["spec"]["ports"]}
                port = backend["port"]
                assert port.get("name") in port_names or port.get("number") in port_numbers
    for path in API_PATHS:
        assert routes.get(path, ("?",))[0] == "dronecast-api", path
    assert routes["/ws/events"][0] == "dronecast-gateway"
    events = one(base, "Ingress", routes["/ws/events"][1])
    notes = events["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    paths = {p["path"] for r in events["spec"]["rules"] for p in r["http"]["paths"]}
    assert paths == {"/ws/events"}, "affinity only where Socket.IO needs it"


# --------------------------------------------------------------------------------------------
# NetworkPolicy
# --------------------------------------------------------------------------------------------


def _pod_labels(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in POD_TEMPLATE_KINDS
    }


@pytest.mark.parametrize("store,port", [("redis", 6379), ("mongodb", 27017)])
def test_network_policy_admits_only_dronecast_services(base, dev, store: str, port: int) -> None:
    policy = one(base, "NetworkPolicy", f"{store}-allow-dronecast")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    # It protects the store's pods (the dev StatefulSet) and nothing of DroneCast's own.
    dev_pods = _pod_labels(dev)
    protected = {
        n for n, labels in dev_pods.items() if selector_matches(policy["podSelector"], labels)
    }
    assert protected == {store}

    allowed_pods = set()
    for rule in policy["ingress"]:
        assert [p["port"] for p in rule["ports"]] == [port]
        assert all(p.get("protocol", "TCP") == "TCP" for p in rule["ports"])
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, "no namespaceSelector/ipBlock peers"
            assert peer["podSelector"], "an empty selector would admit every pod"
            allowed_pods |= {
                n for n, labels in dev_pods.items() if selector_matches(peer["podSelector"], labels)
            }
            # A pod merely claiming another component is not admitted.
            assert not selector_matches(
                peer["podSelector"],
                {"app.kubernetes.io/name": "dronecast", "app.kubernetes.io/component": "dashboard"},
            )
            assert not selector_matches(peer["podSelector"], {"app.kubernetes.io/component": "api"})
    assert allowed_pods == {f"dronecast-{s}" for s in SERVICES}

    # The port the policy opens is the port the store serves on.
    svc = one(dev, "Service", store)
    assert [p["port"] for p in svc["spec"]["ports"]] == [port]


# --------------------------------------------------------------------------------------------
# Dev overlay: in-cluster Redis and MongoDB
# --------------------------------------------------------------------------------------------


def test_dev_stores_match_the_configured_urls(dev) -> None:
    config = one(dev, "ConfigMap", "dronecast-config")["data"]
    redis_url = urlsplit(config["REDIS_URL"])
    mongo_url = urlsplit(secret_values(one(dev, "Secret", "dronecast-secrets"))["MONGODB_URI"])

    redis_svc = one(dev, "Service", redis_url.hostname or "")
    assert redis_svc["spec"]["ports"][0]["port"] == (redis_url.port or 6379)
    redis = one(dev, "StatefulSet", "redis")
    assert selector_matches(
        {"matchLabels": redis_svc["spec"]["selector"]},
        redis["spec"]["template"]["metadata"]["labels"],
    )

    mongo_svc = one(dev, "Service", mongo_url.hostname or "")
    assert mongo_svc["spec"]["ports"][0]["port"] == (mongo_url.port or 27017)
    mongo = one(dev, "StatefulSet", "mongodb")
    assert mongo["spec"]["serviceName"] == mongo_svc["metadata"]["name"]
    assert mongo_svc["spec"]["clusterIP"] == "None", "headless: stable member names"
    assert mongo_svc["spec"]["publishNotReadyAddresses"] is True
    c = container_of(mongo)
    args = c["args"]
    replica_set = parse_qs(mongo_url.query)["replicaSet"][0]
    assert args[args.index("--replSet") + 1] == replica_set
    # The member host the probe initiates with is the pod's stable DNS name.
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["RS_HOST"] == f"mongodb-0.{mongo_svc['metadata']['name']}:27017"
    probe = " ".join(c["readinessProbe"]["exec"]["command"])
    assert "rs.initiate" in probe and f"_id: '{replica_set}'" in probe
    assert "isWritablePrimary" in probe

    for sts in (redis, mongo):
        pod = pod_spec(sts)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        res = container_of(sts)["resources"]
        assert {"cpu", "memory"} <= set(res["limits"])
        assert sts["spec"]["volumeClaimTemplates"], "data survives a pod restart"


# --------------------------------------------------------------------------------------------
# Cluster overlay: the bus on a Redis Cluster run by Bitnami's redis-cluster chart
# --------------------------------------------------------------------------------------------

CHART_VALUES = K8S / "cluster" / "redis-cluster-values.yaml"


@pytest.fixture(scope="module")
def chart_values() -> Doc:
    values: Doc = yaml.safe_load(CHART_VALUES.read_text())
    return values


def test_cluster_overlay_runs_the_bus_on_the_charts_cluster(
    cluster, chart_values: Doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.broker import ClusterBroker, create_broker

    build = _settings_from(cluster, monkeypatch)
    monkeypatch.setenv("SECRET_KEY", "a-real-key-" + "x" * 40)
    settings = build()
    assert settings.redis_cluster is True
    assert isinstance(create_broker(settings), ClusterBroker)
    # The chart's client Service (its fullname), on the port it serves.
    url = urlsplit(settings.redis_url)
    assert url.hostname == chart_values["fullnameOverride"]
    assert url.port == chart_values.get("service", {}).get("ports", {}).get("redis", 6379)
    # One password: the chart reads the key of the Secret the services read it from.
    assert chart_values["usePassword"] is True
    assert chart_values["existingSecret"] == "dronecast-secrets"
    secret = secret_values(one(cluster, "Secret", "dronecast-secrets"))
    assert settings.redis_password == secret[chart_values["existingSecretPasswordKey"]]
    assert settings.redis_replica_ack_ms > 0, "an event waits for a replica"


def test_cluster_chart_has_a_replica_per_master_and_keeps_serving(chart_values: Doc) -> None:
    nodes, replicas = chart_values["cluster"]["nodes"], chart_values["cluster"]["replicas"]
    assert replicas >= 1, "the WAIT before an event counts as published needs a replica"
    assert nodes % (1 + replicas) == 0 and nodes // (1 + replicas) >= 3
    config = chart_values["redis"]["configmap"].splitlines()
    assert "cluster-require-full-coverage no" in config
    assert chart_values["persistence"]["enabled"] is True


def test_cluster_overlay_pods_are_the_charts_clients(cluster, chart_values: Doc) -> None:
    """The chart's NetworkPolicy admits only pods with its client label: exactly DroneCast's
    api, gateway and worker carry it."""
    assert chart_values["networkPolicy"] == {"enabled": True, "allowExternal": False}
    label = f"{chart_values['fullnameOverride']}-client"
    labelled = {n for n, labels in _pod_labels(cluster).items() if labels.get(label) == "true"}
    assert labelled == {f"dronecast-{s}" for s in SERVICES}
    for name in labelled:
        deployment = one(cluster, "Deployment", name)
        # The patch added the label; the selector (immutable) is the base's.
        assert label not in deployment["spec"]["selector"]["matchLabels"]
