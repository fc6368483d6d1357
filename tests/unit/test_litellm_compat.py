"""LiteLLM Proxy configs: the settings sections applied or warned about, litellm_params keys checked."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.litellm_compat import accepted_params, adopt, unknown_params

EXAMPLE = Path(__file__).parent.parent / "data" / "litellm_proxy_config.yaml"


def test_accepted_params_come_from_litellm_and_a_typo_is_named_with_its_fix():
    accepted = accepted_params()
    for key in ("api_base", "api_key", "api_version", "aws_region_name", "vertex_project", "timeout",
                "stream_timeout", "temperature", "max_tokens", "rpm", "extra_headers", "drop_params"):
        assert key in accepted, key
    assert "messages" not in accepted and "api_bse" not in accepted
    assert unknown_params(["api_base", "api_bse", "zzz_not_a_param"]) == [
        "api_bse (did you mean api_base?)", "zzz_not_a_param"]


def test_the_documented_example_is_adopted_with_a_warning_for_each_key_not_applied():
    raw = yaml.safe_load(EXAMPLE.read_text())
    out, warnings = adopt(raw)
    assert not set(out) & {"litellm_settings", "general_settings", "router_settings", "environment_variables"}
    assert out["auth"] == {"api_keys": ["sk-1234"]}
    # router_settings win over litellm_settings (as in LiteLLM's Router), and the loser is named
    assert out["limits"] == {"retries": 2, "read_timeout_s": 30}
    assert out["upstreams"] == {"drop_params": True, "balancing": "least-busy", "cooldown_s": 30, "allowed_fails": 3}
    text = "\n".join(warnings)
    for key in ("litellm_settings.success_callback", "litellm_settings.set_verbose", "general_settings.alerting",
                "router_settings.model_group_alias", "router_settings.redis_host", "environment_variables",
                "litellm_settings.num_retries: router_settings.num_retries also sets limits.retries",
                "litellm_params rpm"):
        assert key in text, key
    assert "drop_params" not in text and "master_key" not in text


def test_the_gateways_own_sections_win_and_unknown_strategies_fall_back_to_shuffle():
    raw = {"model_list": [], "limits": {"retries": 0}, "auth": {"api_keys": ["k1"]},
           "litellm_settings": {"num_retries": 5},
           "general_settings": {"master_key": "k2"},
           "router_settings": {"routing_strategy": "latency-based-routing"}}
    out, warnings = adopt(raw)
    assert out["limits"] == {"retries": 0} and out["auth"] == {"api_keys": ["k1", "k2"]}
    assert out["upstreams"] == {"balancing": "simple-shuffle"}
    assert any("limits.retries also sets" in w for w in warnings)
    assert any("'latency-based-routing' is not implemented" in w for w in warnings)
    assert raw["limits"] == {"retries": 0}  # the input is not changed


def test_a_litellm_proxy_config_loads_once_a_router_section_is_added(tmp_path, monkeypatch):
    from gateway.config import load_config

    for var in ("AZURE_API_KEY_EU", "AZURE_API_KEY_CA", "OPENAI_API_KEY"):
        monkeypatch.setenv(var, f"sk-{var.lower()}")
    path = tmp_path / "config.yaml"
    path.write_text(EXAMPLE.read_text() + "\nrouter:\n  artifact: routers/rb\n")
    cfg = load_config(path)
    assert [e.litellm_params.api_base for e in cfg.deployments_by_name["gpt-4o"]] == [
        "https://my-endpoint-europe-berri-992.openai.azure.com/", "https://my-endpoint-canada-berri992.openai.azure.com/"]
    assert cfg.auth.api_keys == ["sk-1234"] and cfg.limits.retries == 2 and cfg.upstreams.balancing == "least-busy"
    assert "rpm" not in cfg.deployments_by_name["gpt-4o"][0].litellm_params.call_kwargs()
    assert cfg.deployments_by_name["gpt-3.5-turbo"][0].litellm_params.call_kwargs()["temperature"] == 0.2
    assert any("router_settings.model_group_alias" in w for w in cfg.warnings)


def test_a_typo_in_litellm_params_stops_start_up_naming_it(tmp_path):
    from gateway.config import ConfigError, load_config

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "a", "litellm_params": {"model": "openai/a", "api_bse": "http://x/v1"}}],
        "router": {"artifact": "r"}}))
    try:
        load_config(path)
    except ConfigError as exc:
        assert "model_list.0.litellm_params" in str(exc) and "api_bse (did you mean api_base?)" in str(exc)
    else:
        raise AssertionError("api_bse was accepted")
