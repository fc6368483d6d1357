"""Config validation fails at start, naming the field; env references resolve; models are checked."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from gateway.app import check_models, create_app
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway_support import ROOT, make_config


@pytest.fixture()
def base(router_dir, router) -> dict:
    return make_config(router_dir, router.models, "http://127.0.0.1:9/v1", "redis://127.0.0.1:9/0")


def write(tmp_path, cfg) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_valid_config_loads_and_resolves_env(base, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ROUTER_TEST_KEY", "k1")
    monkeypatch.setenv("UPSTREAM_SECRET", "s3cret")
    base["model_list"][0]["litellm_params"]["api_key"] = "os.environ/UPSTREAM_SECRET"
    cfg = load_config(write(tmp_path, base))
    assert cfg.auth.api_keys == ["k1"]
    assert cfg.model_list[0].litellm_params.api_key == "s3cret"
    assert cfg.router.lam == 300.0 and cfg.router.min_samples == 4
    assert GatewayConfig.model_validate(base).router.alias_names == ["router", "auto"]


@pytest.mark.parametrize("mutate,where", [
    (lambda c: c["router"].update(min_samples=0), "router.min_samples"),
    (lambda c: c["router"].update(colour="blue"), "router.colour"),
    (lambda c: c["model_list"][1].pop("litellm_params"), "model_list.1.litellm_params"),
    (lambda c: c["limits"].update(retries="many"), "limits.retries"),
    (lambda c: c["model_list"][0]["litellm_params"].update(api_key="os.environ/SURELY_NOT_SET_42"),
     "model_list.0.litellm_params"),
    (lambda c: c["router"].update(aliases=["claude-v1"]), "claude-v1"),
])
def test_bad_field_fails_naming_its_path(base, tmp_path, monkeypatch, mutate, where):
    monkeypatch.setenv("LLM_ROUTER_TEST_KEY", "k1")
    mutate(base)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, base))
    assert where in str(info.value)


def test_every_artifact_model_must_be_configured(base, monkeypatch):
    monkeypatch.setenv("LLM_ROUTER_TEST_KEY", "k1")
    dropped = [base["model_list"].pop(2)["model_name"], base["model_list"].pop(4)["model_name"]]
    with pytest.raises(ConfigError) as info:
        create_app(GatewayConfig.model_validate(base))
    assert all(name in str(info.value) for name in dropped)


def test_missing_artifact_is_named(base, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ROUTER_TEST_KEY", "k1")
    base["router"]["artifact"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="router.artifact"):
        check_models(GatewayConfig.model_validate(base))


def test_serve_exits_with_the_error_before_starting(base, tmp_path):
    base["router"]["min_samples"] = -1
    proc = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", write(tmp_path, base)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "LLM_ROUTER_TEST_KEY": "k"})
    assert proc.returncode == 2
    assert "router.min_samples" in proc.stderr
