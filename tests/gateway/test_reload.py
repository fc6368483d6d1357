"""Config reload without a restart: `llm-router serve` (one process) reads its file again on SIGHUP,
applies what a running process can swap, and keeps its running config when the file fails or changes
a section only a restart applies."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devtools.processes import wait_http
from gateway.config import GatewayConfig
from gateway.redis_embedded import die_with_parent, free_port
from gateway.reload import restart_needed
from gateway_support import API_KEY, AUTH, ROOT, chat


def aliases(url: str) -> set[str]:
    r = httpx.get(url + "/v1/models", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return {m["id"] for m in r.json()["data"] if m["owned_by"] == "llm-router"}


def reloads(url: str) -> dict[str, float]:
    families = text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text)
    return {s.labels["result"]: s.value for f in families if f.name == "llm_router_config_reloads"
            for s in f.samples if s.name.endswith("_total")}


def until(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_restart_sections_are_the_ones_a_running_process_holds(gateway_config, monkeypatch):
    monkeypatch.setenv("LLM_ROUTER_TEST_KEY", API_KEY)
    old = GatewayConfig.model_validate(gateway_config)
    swappable = copy.deepcopy(gateway_config)
    swappable["router"]["aliases"] = ["router", "auto", "cheap"]
    swappable["feedback"] = {"explore": 0.05}
    assert restart_needed(old, GatewayConfig.model_validate(swappable)) == []
    held = copy.deepcopy(gateway_config)
    held["auth"] = {"api_keys": ["another"]}
    held["limits"]["max_body_bytes"] = 1024
    assert restart_needed(old, GatewayConfig.model_validate(held)) == ["auth", "limits"]


@pytest.fixture(scope="module")
def other_router(bench, encoder, tmp_path_factory) -> tuple[Path, str]:
    """A second artifact over the same models (another eta: another version): (its folder, its version)."""
    from router_core import artifact
    from router_core.decision import RoutingParams
    from router_core.router import build_router

    out = tmp_path_factory.mktemp("other-router")
    built = build_router(bench.pool, encoder, RoutingParams(eta=0.5))
    artifact.save(built, out)
    return out, built.version


def artifacts(url: str) -> set[str]:
    families = text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text)
    return {s.labels["version"] for f in families if f.name == "llm_router_artifact_info" for s in f.samples
            if s.value == 1}


def test_sighup_reloads_the_config_file_and_keeps_the_running_one_when_the_new_one_fails(
        gateway_config: dict[str, Any], tmp_path, bench, task_id, other_router):
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(gateway_config))
    port = free_port()
    env = {**os.environ, "LLM_ROUTER_TEST_KEY": API_KEY, "HF_HUB_OFFLINE": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(cfg), "--port", str(port),
                             "--log-level", "warning"], cwd=ROOT, env=env, preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health/readiness", proc, timeout_s=240)
        assert aliases(url) == {"router", "auto"}
        first = artifacts(url)
        assert len(first) == 1 and other_router[1] not in first

        # a new alias: applied for the requests after the reload, no restart
        new = copy.deepcopy(gateway_config)
        new["router"]["aliases"] = ["router", "auto", "cheap"]
        cfg.write_text(yaml.safe_dump(new))
        proc.send_signal(signal.SIGHUP)
        assert until(lambda: "cheap" in aliases(url)), aliases(url)
        r = httpx.post(url + "/v1/chat/completions", headers={**AUTH, "X-Task-ID": task_id}, timeout=30,
                       json={"model": "cheap", "messages": chat(bench.held_out["arc-challenge"][0])})
        assert r.status_code == 200 and r.headers["x-router-decision"] == "provisional", r.text
        assert reloads(url) == {"applied": 1.0}

        # a file that fails the start-up check (a model the artifact can pick is not configured), and one
        # that changes a section only a restart applies: neither changes anything
        broken = copy.deepcopy(new)
        broken["model_list"] = broken["model_list"][1:]
        cfg.write_text(yaml.safe_dump(broken))
        proc.send_signal(signal.SIGHUP)
        assert until(lambda: reloads(url).get("rejected") == 1.0), reloads(url)
        held = copy.deepcopy(new)
        held["router"]["aliases"] = ["router"]
        held["auth"] = {"api_keys": ["another-key"]}
        cfg.write_text(yaml.safe_dump(held))
        proc.send_signal(signal.SIGHUP)
        assert until(lambda: reloads(url).get("rejected") == 2.0), reloads(url)
        assert proc.poll() is None and aliases(url) == {"router", "auto", "cheap"}  # the old key still works

        # the same file again: nothing to do
        cfg.write_text(yaml.safe_dump(new))
        proc.send_signal(signal.SIGHUP)
        assert until(lambda: reloads(url).get("unchanged") == 1.0), reloads(url)

        # another artifact (its own key layout in Redis): its decisions from the next request on
        other = copy.deepcopy(new)
        other["router"]["artifact"] = str(other_router[0])
        cfg.write_text(yaml.safe_dump(other))
        proc.send_signal(signal.SIGHUP)
        assert until(lambda: artifacts(url) == {other_router[1]}), artifacts(url)
        r = httpx.post(url + "/v1/chat/completions", headers={**AUTH, "X-Task-ID": task_id}, timeout=30,
                       json={"model": "router", "messages": chat(bench.held_out["arc-challenge"][1])})
        assert r.status_code == 200 and r.headers["x-router-decision"] == "provisional", r.text
        state = httpx.get(f"{url}/v1/router/tasks/{task_id}", headers=AUTH, timeout=10).json()
        assert state["artifact"] == other_router[1] and state["n"] == 1  # the task starts afresh under it
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0 or proc.returncode == -signal.SIGTERM


def test_with_workers_sighup_replaces_them_from_the_file_and_a_failing_file_keeps_the_old_ones(
        gateway_config: dict[str, Any], tmp_path):
    # uvicorn's supervisor handles the signal for `serve --workers N`: each worker is replaced by one
    # started from the file; one that cannot start leaves the old workers serving
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(gateway_config))
    port = free_port()
    env = {**os.environ, "LLM_ROUTER_TEST_KEY": API_KEY, "HF_HUB_OFFLINE": "1",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(cfg), "--port", str(port),
                             "--workers", "2", "--log-level", "warning"], cwd=ROOT, env=env,
                            preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health/readiness", proc, timeout_s=240)
        broken = copy.deepcopy(gateway_config)
        broken["model_list"] = broken["model_list"][1:]
        cfg.write_text(yaml.safe_dump(broken))
        proc.send_signal(signal.SIGHUP)
        time.sleep(10)  # a replacement that fails to start is given up on; nothing changes meanwhile
        assert proc.poll() is None and all(aliases(url) == {"router", "auto"} for _ in range(6))
        new = copy.deepcopy(gateway_config)
        new["router"]["aliases"] = ["router", "auto", "cheap"]
        cfg.write_text(yaml.safe_dump(new))
        proc.send_signal(signal.SIGHUP)
        assert until(lambda: all("cheap" in aliases(url) for _ in range(6)), timeout_s=120)
    finally:
        proc.terminate()
        proc.wait(30)
