"""Config reload without a restart: `llm-router serve` (one process) reads its file again on SIGHUP,
applies what a running process can swap, and keeps its running config when the file fails or changes
a section only a restart applies."""

from __future__ import annotations

import copy
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.processes import wait_for
from gateway.config import GatewayConfig
from gateway.reload import restart_needed
from gateway_support import API_KEY, AUTH, chat, served_gateway


def aliases(url: str) -> set[str]:
    r = httpx.get(url + "/v1/models", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return {m["id"] for m in r.json()["data"] if m["owned_by"] == "llm-router"}


def metric(url: str, family: str, label: str) -> dict[str, float]:
    """A metric family's sample values (counters: their totals) by one label."""
    families = text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text)
    return {s.labels[label]: s.value for f in families if f.name == family for s in f.samples
            if not s.name.endswith("_created")}


def reloads(url: str) -> dict[str, float]:
    return metric(url, "llm_router_config_reloads", "result")


def artifacts(url: str) -> set[str]:
    return {v for v, value in metric(url, "llm_router_artifact_info", "version").items() if value == 1}


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


def test_sighup_reloads_the_config_file_and_keeps_the_running_one_when_the_new_one_fails(
        gateway_config: dict[str, Any], tmp_path, bench, task_id, other_router):
    with served_gateway(gateway_config, tmp_path, env={"PROMETHEUS_MULTIPROC_DIR": None}) as served:
        url = served.url
        assert aliases(url) == {"router", "auto"}
        first = artifacts(url)
        assert len(first) == 1 and other_router[1] not in first

        # a new alias: applied for the requests after the reload, no restart
        new = copy.deepcopy(gateway_config)
        new["router"]["aliases"] = ["router", "auto", "cheap"]
        served.reload(new)
        assert wait_for(lambda: "cheap" in aliases(url), 30), aliases(url)
        r = httpx.post(url + "/v1/chat/completions", headers={**AUTH, "X-Task-ID": task_id}, timeout=30,
                       json={"model": "cheap", "messages": chat(bench.held_out["arc-challenge"][0])})
        assert r.status_code == 200 and r.headers["x-router-decision"] == "provisional", r.text
        assert reloads(url) == {"applied": 1.0}

        # a file that fails the start-up check (a model the artifact can pick is not configured), and one
        # that changes a section only a restart applies: neither changes anything
        broken = copy.deepcopy(new)
        broken["model_list"] = broken["model_list"][1:]
        served.reload(broken)
        assert wait_for(lambda: reloads(url).get("rejected") == 1.0, 30), reloads(url)
        held = copy.deepcopy(new)
        held["router"]["aliases"] = ["router"]
        held["auth"] = {"api_keys": ["another-key"]}
        served.reload(held)
        assert wait_for(lambda: reloads(url).get("rejected") == 2.0, 30), reloads(url)
        assert served.proc.poll() is None and aliases(url) == {"router", "auto", "cheap"}  # the old key still works

        # the same file again: nothing to do
        served.reload(new)
        assert wait_for(lambda: reloads(url).get("unchanged") == 1.0, 30), reloads(url)

        # another artifact (its own key layout in Redis): its decisions from the next request on
        other = copy.deepcopy(new)
        other["router"]["artifact"] = str(other_router[0])
        served.reload(other)
        assert wait_for(lambda: artifacts(url) == {other_router[1]}, 30), artifacts(url)
        r = httpx.post(url + "/v1/chat/completions", headers={**AUTH, "X-Task-ID": task_id}, timeout=30,
                       json={"model": "router", "messages": chat(bench.held_out["arc-challenge"][1])})
        assert r.status_code == 200 and r.headers["x-router-decision"] == "provisional", r.text
        state = httpx.get(f"{url}/v1/router/tasks/{task_id}", headers=AUTH, timeout=10).json()
        assert state["artifact"] == other_router[1] and state["n"] == 1  # the task starts afresh under it
    assert served.proc.returncode == 0 or served.proc.returncode == -signal.SIGTERM


def test_with_workers_sighup_replaces_them_from_the_file_and_a_failing_file_keeps_the_old_ones(
        gateway_config: dict[str, Any], tmp_path):
    # uvicorn's supervisor handles the signal for `serve --workers N`: each worker is replaced by one
    # started from the file; one that cannot start leaves the old workers serving
    (tmp_path / "metrics").mkdir()
    with served_gateway(gateway_config, tmp_path, workers=2,
                        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}) as served:
        url = served.url
        broken = copy.deepcopy(gateway_config)
        broken["model_list"] = broken["model_list"][1:]
        served.reload(broken)
        time.sleep(10)  # a replacement that fails to start is given up on; nothing changes meanwhile
        assert served.proc.poll() is None and all(aliases(url) == {"router", "auto"} for _ in range(6))
        new = copy.deepcopy(gateway_config)
        new["router"]["aliases"] = ["router", "auto", "cheap"]
        served.reload(new)
        assert wait_for(lambda: all("cheap" in aliases(url) for _ in range(6)), timeout_s=120)
