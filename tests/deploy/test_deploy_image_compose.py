"""The Dockerfile and docker-compose.yaml, checked without a Docker daemon: the compose file is a
valid Compose Specification document, everything it builds from or mounts exists, the Dockerfile's
COPY sources exist and reach the build context, and the pieces agree with one another (ports,
service names, paths, the router's models, the torch pin)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import compose_spec
import yaml
from dockerfile_parse import DockerfileParser

from deploy_support import COMPOSE, DEPLOY, DOCKERFILE, ROOT, compose, dockerignore_includes, parse_cli

COMPOSE_ENV = {"LLM_ROUTER_API_KEY": "sk-test", "UPSTREAM_API_KEY": "sk-upstream-test"}


def instructions(name: str) -> list[str]:
    return [i["value"] for i in DockerfileParser(path=str(DOCKERFILE)).structure if i["instruction"] == name]


def stages() -> list[list[dict]]:
    out: list[list[dict]] = []
    for ins in DockerfileParser(path=str(DOCKERFILE)).structure:
        if ins["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def final_stage(name: str) -> list[str]:
    return [i["value"] for i in stages()[-1] if i["instruction"] == name]


def copy_args(value: str) -> tuple[dict[str, str], list[str], str]:
    words = shlex.split(value)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def service_build(name: str) -> dict:
    return compose()["services"][name]["build"]


def routerdata_dir() -> Path:
    return (ROOT / service_build("gateway")["additional_contexts"]["routerdata"]).resolve()


def gateway_config_file() -> Path:
    for mount in compose()["services"]["gateway"]["volumes"]:
        src, target = mount.split(":")[:2]
        if target == "/etc/llm-router/config.yaml":
            return ROOT / src
    raise AssertionError("the gateway's config is not mounted")


def load_compose_gateway_config(monkeypatch):
    from gateway.config import load_config

    for k, v in COMPOSE_ENV.items():
        monkeypatch.setenv(k, v)
    return load_config(gateway_config_file())


# --- Dockerfile --------------------------------------------------------------------------------

def test_copy_sources_exist_and_reach_the_build_context():
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    sources = []
    for value in instructions("COPY"):
        flags, srcs, _ = copy_args(value)
        if "from" not in flags:
            sources += srcs
    assert sources
    for src in sources:
        path = ROOT / src
        assert path.exists(), f"COPY {src}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
        assert files, src
        for f in files:
            assert dockerignore_includes(f.relative_to(ROOT).as_posix(), patterns), f"{f} is .dockerignored"


def test_dockerignore_keeps_local_state_out():
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    for path in [".venv/bin/python", ".git/HEAD", ".state/redis/dump.rdb", "tests/deploy/x.py",
                 "gateway/__pycache__/app.cpython-311.pyc", "artifacts/router/manifest.json"]:
        assert not dockerignore_includes(path, patterns), path


def test_copy_from_names_a_stage_or_the_compose_build_context():
    names = {s[0]["value"].split()[-1] for s in stages() if " AS " in s[0]["value"].upper()}
    contexts = set(service_build("gateway").get("additional_contexts", {}))
    for value in instructions("COPY"):
        flags, _, _ = copy_args(value)
        if "from" in flags:
            assert flags["from"] in names | contexts, value


def test_routerdata_context_is_a_benchmark_folder():
    folder = routerdata_dir()
    assert (folder / "records.jsonl.gz").is_file() and (folder / "models.json").is_file()


def arg_defaults() -> dict[str, str]:
    """The Dockerfile's build arguments with their default values (what a plain `docker build` uses)."""
    out: dict[str, str] = {}
    for value in instructions("ARG"):
        name, _, default = value.partition("=")
        if default:
            out[name.strip()] = default.strip().strip('"')
    return out


def with_defaults(value: str) -> str:
    defaults = arg_defaults()
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), value)


def test_torch_pin_matches_pyproject():
    pinned = re.search(r'"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    runs = [with_defaults(v) for v in instructions("RUN")]
    torch_runs = [r for r in runs if "torch==" in r]
    assert [p for r in torch_runs for p in re.findall(r"torch==(\S+)", r)] == [pinned]
    # by default the CPU build's index, and only that index, serves torch
    assert re.search(r'--index-url "?https://download\.pytorch\.org/whl/cpu"? ', torch_runs[0]), torch_runs[0]


def test_final_stage_runs_unprivileged_and_serves_the_mounted_config():
    from gateway.api.health import router as health

    user = final_stage("USER")[-1]
    assert user.split(":")[0] not in {"0", "root"}
    assert json.loads(final_stage("ENTRYPOINT")[-1]) == ["llm-router"]
    cmd = json.loads(final_stage("CMD")[-1])
    params = parse_cli(cmd)
    assert cmd[0] == "serve" and str(params["config"]) == "/etc/llm-router/config.yaml"
    assert params["host"] == "0.0.0.0"
    assert final_stage("EXPOSE") == [str(params["port"])]
    probe = re.search(r"http://127\.0\.0\.1:(\d+)(/\S+?)'", final_stage("HEALTHCHECK")[-1])
    assert int(probe.group(1)) == params["port"]
    assert probe.group(2) in {r.path for r in health.routes}


def named_stages() -> dict[str, list[dict]]:
    """Each named stage's instructions, its FROM first."""
    return {s[0]["value"].split()[-1]: s for s in stages() if " AS " in s[0]["value"].upper()}


def stage_chain(name: str) -> list[list[dict]]:
    """The stage ``name`` and the named stages it is built FROM, down to a base image."""
    named = named_stages()
    chain = [named[name]]
    while (parent := chain[-1][0]["value"].split()[0]) in named:
        chain.append(named[parent])
    return chain


def stage_env(stage: list[dict], name: str) -> str | None:
    found = None
    for ins in stage:
        if ins["instruction"] == "ENV" and (m := re.search(rf"(?:^|\s){name}=(\S+)", ins["value"])):
            found = m.group(1)
    return found


def final_copies_from() -> dict[str, str]:
    """What the final stage copies from other stages: {destination: stage}."""
    out = {}
    for value in final_stage("COPY"):
        flags, srcs, dest = copy_args(value)
        if "from" in flags:
            assert srcs == [dest], f"{value}: copied to another path than it was made at"
            out[dest] = flags["from"]
    return out


def test_image_artifact_path_is_the_configured_one(monkeypatch):
    built = re.search(r"llm-router build .*--out (\S+)", " ".join(instructions("RUN"))).group(1)
    assert built in final_copies_from()
    assert load_compose_gateway_config(monkeypatch).router.artifact == Path(built)


def test_serving_environment_has_no_torch():
    """The final stage's /opt/venv comes from stages that never install torch or the torch extra."""
    venv_stage = final_copies_from()["/opt/venv"]
    runs = [i["value"] for stage in stage_chain(venv_stage) for i in stage if i["instruction"] == "RUN"]
    assert any("pip install ." in r for r in runs)
    assert not [r for r in runs if "torch" in r], venv_stage
    # and no compiler reaches the final stage: its base is an image, not a stage that installed g++
    assert stages()[-1][0]["value"].split()[0] not in named_stages()


def test_exported_encoder_is_where_serving_looks(monkeypatch):
    """export-encoder writes under ROUTER_ENCODER_DIR in the stage that builds the router; the final
    stage copies that folder to the same path and points ROUTER_ENCODER_DIR at it."""
    from router_core.onnx_encoder import ENCODER_DIR_ENV

    copies = final_copies_from()
    exporting = [name for name, stage in named_stages().items()
                 if any(i["instruction"] == "RUN" and "llm-router export-encoder" in i["value"] for i in stage)]
    assert len(exporting) == 1
    export_stage = named_stages()[exporting[0]]
    encoder_dir = stage_env(export_stage, ENCODER_DIR_ENV)
    assert encoder_dir and copies[encoder_dir] == exporting[0]
    assert stage_env(stages()[-1], ENCODER_DIR_ENV) == encoder_dir
    # the router is built after the export, with the exported encoder (the default backend, onnx)
    runs = [i["value"] for i in export_stage if i["instruction"] == "RUN"]
    build = next(i for i, r in enumerate(runs) if "llm-router build" in r)
    assert build > next(i for i, r in enumerate(runs) if "export-encoder" in r)
    assert "--encoder-backend" not in runs[build] or "--encoder-backend onnx" in runs[build]
    assert load_compose_gateway_config(monkeypatch).embedding.backend == "onnx"


# --- docker-compose.yaml -----------------------------------------------------------------------

def test_compose_file_is_valid_compose_spec():
    spec = compose_spec.PyCompose.from_yaml(COMPOSE.read_text())
    spec.validate()
    assert set(spec.service_names()) == {"gateway", "upstream", "redis", "prometheus", "grafana", "jaeger"}


def test_compose_build_sources_exist():
    for name, svc in compose()["services"].items():
        if "build" in svc:
            build = svc["build"]
            assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
            for ctx in build.get("additional_contexts", {}).values():
                assert (ROOT / ctx).is_dir(), f"{name}: build context {ctx} missing"


def test_compose_mounts_exist_and_named_volumes_are_declared():
    doc = compose()
    declared = set(doc.get("volumes") or {})
    mounts = 0
    for name, svc in doc["services"].items():
        for mount in svc.get("volumes", []):
            src = mount.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name}: {src} does not exist"
                mounts += 1
            else:
                assert src in declared, f"{name}: volume {src} not declared"
    assert mounts >= 6


def test_read_only_gateway_has_writable_tmp_and_state(monkeypatch):
    gw = compose()["services"]["gateway"]
    assert gw["read_only"] is True
    tmpfs = {t.split(":")[0] for t in gw["tmpfs"]}
    cfg = load_compose_gateway_config(monkeypatch)
    cache_dir = re.search(r"ROUTER_CACHE_DIR=(\S+)", " ".join(final_stage("ENV"))).group(1)
    for path in ["/tmp", str(cfg.redis.state_dir), cache_dir]:
        assert any(path == t or path.startswith(t + "/") for t in tmpfs), f"{path} is not writable"


def test_compose_gateway_config_serves_every_model_of_the_artifact(monkeypatch):
    cfg = load_compose_gateway_config(monkeypatch)
    models = [m["name"] for m in json.loads((routerdata_dir() / "models.json").read_text())]
    assert cfg.missing_models(models) == []
    assert cfg.auth.api_keys == [COMPOSE_ENV["LLM_ROUTER_API_KEY"]]
    # the fake upstream serves exactly these names, on the port the config calls
    upstream = parse_cli(compose()["services"]["upstream"]["command"])
    assert upstream["models"] == models and upstream["host"] == "0.0.0.0"
    for m in cfg.model_list:
        base = urlparse(m.litellm_params.api_base)
        assert (base.hostname, base.port) == ("upstream", upstream["port"]), m.model_name
        assert m.litellm_params.model == f"openai/{m.model_name}"


def test_compose_services_find_each_other(monkeypatch):
    doc = compose()
    cfg = load_compose_gateway_config(monkeypatch)
    assert urlparse(cfg.redis.url).hostname in doc["services"]
    gw = parse_cli(doc["services"]["gateway"]["command"])
    assert str(gw["config"]) == "/etc/llm-router/config.yaml" and gw["host"] == "0.0.0.0"
    gw_port = gw["port"]
    assert f"{gw_port}:{gw_port}" in doc["services"]["gateway"]["ports"]
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] if job["job_name"] == "llm-router"
               for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"gateway:{gw_port}"]
    prom_mounts = dict(m.split(":")[:2] for m in doc["services"]["prometheus"]["volumes"])
    assert prom_mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    # rule_files are relative to the config: alerts.yml must land beside it
    assert prom_mounts["./deploy/prometheus/alerts.yml"] == "/etc/prometheus/alerts.yml"


def test_grafana_provisioning_points_at_the_compose_services():
    doc = compose()
    mounts = dict(m.split(":")[:2] for m in doc["services"]["grafana"]["volumes"])
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    url = urlparse(ds["datasources"][0]["url"])
    assert url.hostname == "prometheus" and f"{url.port}:{url.port}" in doc["services"]["prometheus"]["ports"]
    assert ds["datasources"][0]["type"] == "prometheus"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/llm-router.yaml").read_text())
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert mounts["./deploy/grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["./deploy/grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    home = doc["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["providers"][0]["options"]["path"] + "/llm-router.json"
    assert (DEPLOY / "grafana/dashboards/llm-router.json").is_file()
