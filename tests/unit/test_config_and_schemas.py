"""The config loader (files, env references, paths) and the text a request is routed on."""

from __future__ import annotations

import pytest
import yaml

from gateway.api.schemas import ChatCompletionRequest, CompletionRequest
from gateway.config import ConfigError, load_config

CONFIG = {
    "model_list": [{"model_name": "a", "litellm_params": {"model": "openai/a", "api_key": "os.environ/UNIT_KEY"}}],
    "router": {"artifact": "routers/rb", "lambda": 5.0},
    "redis": {"state_dir": "state/redis"},
}


def write(tmp_path, cfg) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg) if isinstance(cfg, dict) else cfg)
    return str(path)


def test_relative_paths_resolve_against_the_file_and_env_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIT_KEY", "sk-unit")
    cfg = load_config(write(tmp_path, CONFIG))
    assert cfg.router.artifact == tmp_path / "routers/rb" and cfg.redis.state_dir == tmp_path / "state/redis"
    assert cfg.model_list[0].litellm_params.api_key == "sk-unit" and cfg.router.lam == 5.0
    assert cfg.limits.retries == 1 and cfg.auth.api_keys == []  # defaults
    assert cfg.missing_models(["a", "b"]) == ["b"]


@pytest.mark.parametrize("text,message", [
    ("model_list: [", "invalid YAML"),
    ("- just a list", "expected a mapping"),
    ("model_list: []\nrouter: {artifact: x}", "model_list"),
])
def test_bad_files_fail_naming_the_file(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value) and "gateway.yaml" in str(info.value)


def test_embedding_backend_defaults_to_onnx_and_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIT_KEY", "sk-unit")
    assert load_config(write(tmp_path, CONFIG)).embedding.backend == "onnx"
    assert load_config(write(tmp_path, {**CONFIG, "embedding": {"backend": "torch"}})).embedding.backend == "torch"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {**CONFIG, "embedding": {"backend": "tensorflow"}}))
    assert "embedding.backend" in str(info.value)


def test_an_unset_env_reference_names_the_field(tmp_path, monkeypatch):
    monkeypatch.delenv("UNIT_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, CONFIG))
    assert "model_list.0.litellm_params" in str(info.value) and "UNIT_KEY" in str(info.value)


def test_routing_text_by_prompt_field():
    req = ChatCompletionRequest(model="router", messages=[
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"}, {"role": "user", "content": [{"type": "text", "text": "second"}]}])
    assert req.routing_text("last_user") == "second"
    assert req.routing_text("user") == "first\nsecond"
    assert req.routing_text("all") == "be brief\nfirst\nok\nsecond"
    assert CompletionRequest(model="router", prompt=["a", "b"]).routing_text() == "a\nb"
