"""The Helm chart, through Helm's own Go SDK (helm-python-sdk): lint, schema, offline render.
Every rendered object must be valid for a current Kubernetes (kubernetes-validate, strict), the
default values must make a working install, and the rendered gateway config must load with
gateway.config.load_config and serve every model of the image's router artifact."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from deploy_support import ALERTS, CHART, DASHBOARD, DOCKERFILE, ROOT, compose, load_all_strict, parse_cli

KUBE_VERSION = kubernetes_validate.utils.latest_version()
# the oldest Kubernetes the chart declares (Chart.yaml kubeVersion ">=X.Y.Z-0")
MIN_KUBE_VERSION = re.fullmatch(r">=(\d+\.\d+\.\d+)-0", yaml.safe_load((CHART / "Chart.yaml").read_text())
                                ["kubeVersion"]).group(1)
RELEASE, NAMESPACE = "demo", "llm"
FULLNAME = f"{RELEASE}-llm-router"
EVERYTHING_ON = {
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                "grafanaDashboard": {"enabled": True}},
    "ingress": {"enabled": True, "className": "nginx", "tls": [{"hosts": ["llm-router.local"], "secretName": "tls"}]},
    "autoscaling": {"enabled": True},
    "secretEnv": {"OPENAI_API_KEY": "sk-provider"},
}
# the opt-in demo install: the fake upstream serves the artifact's models (the default deploys no fake)
DEMO = {"demoUpstream": {"enabled": True}}
REAL_MODELS = {
    "demoUpstream": {"enabled": False},
    "redis": {"enabled": False, "externalUrl": "os.environ/REDIS_URL"},
    "existingSecret": "my-keys",
    "config": {"model_list": [{"model_name": "gpt-4o", "litellm_params": {
        "model": "openai/gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"}}],
        "router": {"artifact": "/opt/llm-router/router", "aliases": ["auto"]}},
}


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as c:
        yield c


def render(chart, values: dict | None = None) -> dict[str, list[dict]]:
    """Rendered objects by kind (the release's manifests; NOTES.txt left out) of a demo install
    (:data:`DEMO`) with ``values`` on top."""
    out: dict[str, list[dict]] = {}
    values = {**DEMO, **(values or {})}
    for path, text in chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True).items():
        if not path.endswith("NOTES.txt"):
            for doc in load_all_strict(text):
                out.setdefault(doc["kind"], []).append(doc)
    return out


def one(objects: dict[str, list[dict]], kind: str, name: str = FULLNAME) -> dict:
    found = [o for o in objects.get(kind, []) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def gateway_container(objects) -> dict:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def rendered_config_text(objects) -> str:
    return one(objects, "ConfigMap")["data"]["config.yaml"]


def load_rendered_config(objects, tmp_path: Path, monkeypatch, **env: str):
    from gateway.config import load_config

    for k, v in {"LLM_ROUTER_API_KEY": "sk-test", **env}.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "config.yaml"
    path.write_text(rendered_config_text(objects))
    return load_config(path)


def service_port(objects, name: str) -> tuple[str, int]:
    svc = one(objects, "Service", name)
    return svc["metadata"]["name"], svc["spec"]["ports"][0]["port"]


# --- lint and schema ---------------------------------------------------------------------------

@pytest.mark.parametrize("values", [None, EVERYTHING_ON, REAL_MODELS], ids=["defaults", "everything-on", "real-models"])
def test_helm_lint_is_clean(values):
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}", namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_values_schema_accepts_the_defaults_and_rejects_mistakes(chart):
    assert chart.schema is not None
    chart.validate_schema(chart.values)
    for bad in [{"replicaCount": 0}, {"replicas": 3}, {"service": {"type": "Ingress"}},
                {"redis": {"externalUrl": "http://redis:6379"}}, {"workers": "two"},
                {"secretEnv": {"bad-name": "x"}}]:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(chart.merge_values(bad))


# --- every object valid ------------------------------------------------------------------------

@pytest.mark.parametrize("kube_version", [MIN_KUBE_VERSION, KUBE_VERSION])
@pytest.mark.parametrize("values", [None, EVERYTHING_ON, REAL_MODELS], ids=["defaults", "everything-on", "real-models"])
def test_every_rendered_object_is_valid_kubernetes(chart, values, kube_version):
    objects = render(chart, values)
    checked = 0
    for kind, docs in objects.items():
        for doc in docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # Prometheus Operator CRDs: checked against their sources below
            kubernetes_validate.validate(doc, kube_version, strict=True)
            checked += 1
    assert checked >= 6


def test_default_install_is_complete_and_has_no_migration_jobs(chart):
    objects = render(chart)
    assert sorted(objects) == ["ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Secret", "Service",
                               "ServiceAccount"]
    assert sorted(d["metadata"]["name"] for d in objects["Deployment"]) == [
        FULLNAME, f"{FULLNAME}-redis", f"{FULLNAME}-upstream"]
    hooks = [(d["kind"], d["metadata"].get("annotations", {}).get("helm.sh/hook"))
             for docs in objects.values() for d in docs if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    assert hooks == [("Pod", "test")]     # only `helm test`; nothing runs before the pods


# --- the gateway config ------------------------------------------------------------------------

def test_default_config_loads_and_reaches_the_rendered_services(chart, tmp_path, monkeypatch):
    objects = render(chart)
    cfg = load_rendered_config(objects, tmp_path, monkeypatch)
    routerdata = ROOT / compose()["services"]["gateway"]["build"]["additional_contexts"]["routerdata"]
    artifact_models = [m["name"] for m in json.loads((routerdata / "models.json").read_text())]
    assert cfg.missing_models(artifact_models) == []
    up_name, up_port = service_port(objects, f"{FULLNAME}-upstream")
    for m in cfg.model_list:
        base = urlparse(m.litellm_params.api_base)
        assert (base.hostname, base.port) == (up_name, up_port)
    upstream = one(objects, "Deployment", f"{FULLNAME}-upstream")["spec"]["template"]["spec"]["containers"][0]
    params = parse_cli(upstream["args"])
    assert params["models"] == artifact_models and (params["host"], params["port"]) == ("0.0.0.0", up_port)
    redis_name, redis_port = service_port(objects, f"{FULLNAME}-redis")
    url = urlparse(cfg.redis.url)
    assert (url.hostname, url.port) == (redis_name, redis_port)
    assert cfg.auth.api_keys == ["sk-test"]
    # the artifact the image bakes (deploy/Dockerfile `llm-router build --out`)
    runs = " ".join(i["value"] for i in DockerfileParser(path=str(DOCKERFILE)).structure if i["instruction"] == "RUN")
    assert str(cfg.router.artifact) == re.search(r"llm-router build .*--out (\S+)", runs).group(1)


def test_user_models_and_external_redis(chart, tmp_path, monkeypatch):
    objects = render(chart, REAL_MODELS)
    assert [d["metadata"]["name"] for d in objects["Deployment"]] == [FULLNAME]
    assert "Secret" not in objects
    assert gateway_container(objects)["envFrom"] == [{"secretRef": {"name": "my-keys"}}]
    cfg = load_rendered_config(objects, tmp_path, monkeypatch, OPENAI_API_KEY="sk-o",
                               REDIS_URL="redis://redis.example:6379/1")
    assert [m.model_name for m in cfg.model_list] == ["gpt-4o"]
    assert cfg.redis.url == "redis://redis.example:6379/1"
    assert cfg.router.alias_names == ["auto"]


def test_no_models_and_no_demo_upstream_fails_to_render(chart):
    with pytest.raises(helm.HelmRenderError, match="config.model_list is empty"):
        chart.render({"demoUpstream": {"enabled": False}}, name=RELEASE, namespace=NAMESPACE)


def test_default_values_deploy_no_fake_upstream(chart):
    with pytest.raises(helm.HelmRenderError, match="config.model_list is empty"):
        chart.render(None, name=RELEASE, namespace=NAMESPACE)  # the default: no demo, so models are needed
    models = {"config": {"model_list": REAL_MODELS["config"]["model_list"]}}
    objects = render(chart, {**models, "demoUpstream": {}})  # the chart's own demoUpstream defaults
    assert sorted(d["metadata"]["name"] for d in objects["Deployment"]) == [FULLNAME, f"{FULLNAME}-redis"]


def test_config_checksum_annotation_follows_the_config(chart):
    def checksum(values):
        objects = render(chart, values)
        annotation = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return annotation, rendered_config_text(objects)

    default, text = checksum(None)
    assert default == hashlib.sha256(text.rstrip("\n").encode()).hexdigest()
    changed, _ = checksum({"config": {"limits": {"retries": 3}}})
    assert changed != default
    assert checksum({"replicaCount": 5})[0] == default


# --- the pods ----------------------------------------------------------------------------------

def test_read_only_root_with_writable_tmp_state_and_metrics_dirs(chart, tmp_path, monkeypatch):
    objects = render(chart)
    for deploy in objects["Deployment"]:
        for c in deploy["spec"]["template"]["spec"]["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
            assert deploy["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    cfg = load_rendered_config(objects, tmp_path, monkeypatch)
    for path in ["/tmp", str(cfg.redis.state_dir), env["PROMETHEUS_MULTIPROC_DIR"], env["ROUTER_CACHE_DIR"]]:
        assert any(path == w or path.startswith(w + "/") for w in writable), f"{path} is not writable"
    # serve deletes and re-creates the multiprocess folder: it must not be a mount point, and it
    # must exist before serve starts (prometheus_client opens files there on import)
    metrics_dir = env["PROMETHEUS_MULTIPROC_DIR"]
    assert metrics_dir not in writable
    init = pod["initContainers"][0]
    assert init["command"] == ["mkdir", "-p", metrics_dir]
    init_mount = next(m for m in init["volumeMounts"] if metrics_dir.startswith(m["mountPath"] + "/"))
    gw_mount = next(m for m in container["volumeMounts"] if metrics_dir.startswith(m["mountPath"] + "/"))
    assert init_mount == gw_mount
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    # the config the container reads is the rendered ConfigMap
    params = parse_cli(container["args"])
    assert params["workers"] == 2 and params["host"] == "0.0.0.0"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert str(params["config"]) == f"{mount['mountPath']}/config.yaml"
    assert next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["name"] == FULLNAME


def test_probes_and_service_reach_the_gateway_port(chart):
    objects = render(chart)
    container = gateway_container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == parse_cli(container["args"])["port"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/liveness", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/readiness", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health/liveness"
    for name in [FULLNAME, f"{FULLNAME}-redis", f"{FULLNAME}-upstream"]:
        svc = one(objects, "Service", name)
        pod_labels = one(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items(), name
        target = svc["spec"]["ports"][0]["targetPort"]
        containers = one(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert target in {p["name"] for c in containers for p in c["ports"]}, name
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= \
        one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    # other components' pods must not match the gateway's selector
    for name in [f"{FULLNAME}-redis", f"{FULLNAME}-upstream"]:
        labels = one(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert not one(objects, "Service")["spec"]["selector"].items() <= labels.items()


def test_secret_holds_the_api_key_the_config_refers_to(chart):
    objects = render(chart, {"auth": {"apiKey": "sk-chosen"}})
    secret = one(objects, "Secret")
    import base64
    assert base64.b64decode(secret["data"]["LLM_ROUTER_API_KEY"]).decode() == "sk-chosen"
    assert gateway_container(objects)["envFrom"] == [{"secretRef": {"name": FULLNAME}}]
    generated = base64.b64decode(one(render(chart), "Secret")["data"]["LLM_ROUTER_API_KEY"]).decode()
    assert generated.startswith("sk-") and len(generated) == 43
    assert "api_keys" not in yaml.safe_load(rendered_config_text(render(chart, {"auth": {"enabled": False}})))["auth"]


# --- monitoring objects ------------------------------------------------------------------------

def test_monitoring_objects_carry_the_tested_alerts_and_dashboard(chart):
    objects = render(chart, EVERYTHING_ON)
    rule = one(objects, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())
    dashboard = one(objects, "ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["llm-router.json"]) == json.loads(DASHBOARD.read_text())


def test_service_monitor_scrapes_the_gateway_as_the_job_the_alerts_expect(chart):
    objects = render(chart, EVERYTHING_ON)
    sm = one(objects, "ServiceMonitor")
    svc = one(objects, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    # matches only the gateway's Service
    others = [s for s in objects["Service"] if s is not svc]
    assert others and all(not sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
                          for s in others)
    endpoint = sm["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]} and endpoint["path"] == "/metrics"
    job = svc["metadata"]["labels"][sm["spec"]["jobLabel"]]
    assert f'up{{job="{job}"}}' in ALERTS.read_text()


def test_notes_render_with_the_commands_a_user_needs(chart):
    notes = next(v for k, v in chart.render(DEMO, name=RELEASE, namespace=NAMESPACE).items() if k.endswith("NOTES.txt"))
    assert f"port-forward svc/{FULLNAME} 8000:8000" in notes
    assert f"get secret {FULLNAME}" in notes and "LLM_ROUTER_API_KEY" in notes
    assert f"helm test {RELEASE}" in notes
    assert "demo upstream" in notes


def test_single_worker_pods_leave_metrics_in_process(chart):
    single = render(chart, {"workers": 1})
    assert "PROMETHEUS_MULTIPROC_DIR" not in {e["name"] for e in gateway_container(single)["env"]}
    assert "initContainers" not in one(single, "Deployment")["spec"]["template"]["spec"]
    assert "PROMETHEUS_MULTIPROC_DIR" in {e["name"] for e in gateway_container(render(chart))["env"]}
