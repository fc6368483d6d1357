"""The deployment's monitoring against a real gateway: `llm-router serve` (2 workers, multiprocess
metrics) runs the compose stack's own config (deploy/config/compose.yaml, with local addresses and a
small router built from real benchmark data) in front of the local upstream; after real traffic,
`promtool check metrics` lints a scrape, and a real Prometheus, configured from
deploy/prometheus/prometheus.yml, scrapes the gateway, evaluates every alert without error and
answers every dashboard query."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from deploy_support import ALERTS, DEPLOY, ROOT, dashboard_queries, need_tool, run_tool

TASKS = ["arc-challenge", "mbpp", "winogrande"]
API_KEY = "sk-live-test"
# Panels the traffic below must fill (the rest may be legitimately empty, e.g. Redis errors).
MUST_HAVE_DATA = {
    "Requests per second by served model", "In-flight requests", "Requested model or alias → served model",
    "Request latency (end to end)", "Gateway overhead", "Upstream latency p95 by model",
    "Time to first token p95 by model (streaming)", "Routing decisions by source", "Decision cache hit ratio",
    "Fallbacks per second", "Router artifact per instance", "Upstream errors per second", "Tokens per second",
    "Cost per hour by model", "Cost over the time range", "Redis fail-open",
}


def wait_until(check, what: str, proc: subprocess.Popen | None = None, timeout_s: float = 240.0):
    """Poll ``check`` until it returns something truthy (a deadline only against hanging forever)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{what}: not reached ({last!r})")


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory) -> Path:
    from router_core import artifact, data
    from router_core.embed import get_encoder
    from router_core.router import build_router

    subset = data.load(data.shared_data_root() / "routerbench-subset").sample_tasks(TASKS, per_task=30)
    out = tmp_path_factory.mktemp("router")
    artifact.save(build_router(subset, get_encoder()), out)
    return out


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Iterator[str]:
    from gateway.redis_embedded import free_port
    from router_core.data import shared_data_root

    port = free_port()
    logs = tmp_path_factory.mktemp("upstream")
    proc = start([sys.executable, "-m", "gateway", "upstream", "--port", str(port), "--control",
                  "--data", str(shared_data_root() / "routerbench-subset")], logs / "upstream.log")
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200,
                   "upstream up", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def gateway(router_dir, upstream, tmp_path_factory) -> Iterator[str]:
    """`llm-router serve --workers 2` with the compose config, pointed at local services."""
    from gateway.redis_embedded import free_port

    work = tmp_path_factory.mktemp("gateway")
    cfg = yaml.safe_load((DEPLOY / "config" / "compose.yaml").read_text())
    for m in cfg["model_list"]:
        m["litellm_params"]["api_base"] = upstream + "/v1"
    cfg["router"]["artifact"] = str(router_dir)
    cfg["redis"] = {"state_dir": str(work / "redis")}           # serve starts an embedded redis-server
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    # as the Helm chart's init container does: the folder exists before serve starts
    (work / "metrics").mkdir()
    port = free_port()
    proc = start([sys.executable, "-m", "gateway", "serve", "--config", str(work / "config.yaml"),
                  "--host", "127.0.0.1", "--port", str(port), "--workers", "2"], work / "gateway.log",
                 env={"LLM_ROUTER_API_KEY": API_KEY, "UPSTREAM_API_KEY": "sk-upstream",
                      "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/health/readiness", timeout=2).status_code == 200,
                   "gateway ready", proc)
        yield url
    finally:
        stop(proc)
        print((work / "gateway.log").read_text()[-3000:])


@pytest.fixture(scope="module")
def prometheus(gateway, tmp_path_factory) -> Iterator[str]:
    """Prometheus with the compose stack's config, scraping the local gateway every second."""
    from gateway.redis_embedded import free_port

    binary = need_tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    cfg["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    cfg["scrape_configs"] = [job for job in cfg["scrape_configs"] if job["job_name"] == "llm-router"]
    cfg["scrape_configs"][0]["static_configs"] = [{"targets": [gateway.removeprefix("http://")]}]
    (work / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    (work / ALERTS.name).write_text(ALERTS.read_text())
    port = free_port()
    proc = start([binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}"], work / "prometheus.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/-/ready", timeout=2).status_code == 200, "prometheus ready", proc)
        yield url
    finally:
        stop(proc)


def query(prom: str, expr: str) -> list[dict]:
    body = httpx.get(prom + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def chat(url: str, model: str, prompt: str, task: str | None = None, stream: bool = False,
         key: str = API_KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if task:
        headers["X-Task-ID"] = task
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def traffic(gateway, upstream, prometheus) -> dict[str, int]:
    """Real requests of every kind the dashboard shows; returns counts by status."""
    from router_core import data

    # Prometheus has seen the gateway before traffic starts, so rates cover it
    wait_until(lambda: query(prometheus, 'up{job="llm-router"} == 1'), "first scrape")
    full = data.load(data.shared_data_root() / "routerbench-subset")
    prompts = {t: [p for p, tt in zip(full.prompts, full.tasks) if tt == t][-20:] for t in TASKS}
    statuses: dict[int, int] = {}

    def record(resp: httpx.Response) -> httpx.Response:
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        return resp

    served = None
    for prompt in prompts["arc-challenge"][:14]:          # provisional -> final -> cached decisions
        served = record(chat(gateway, "router", prompt, task="live-arc")).headers["x-router-model"]
    for prompt in prompts["mbpp"][:3]:                     # streamed: time to first token
        record(chat(gateway, "router", prompt, task="live-mbpp", stream=True))
    record(chat(gateway, "router", prompts["winogrande"][0]))               # no task: per-instance
    record(chat(gateway, "claude-v1", "Say hello."))                        # explicit model
    record(chat(gateway, "no-such-model", "Say hello."))                    # 4xx
    # the task's model fails upstream: its request is answered by a fallback
    httpx.post(upstream + "/_control", json={"fail_models": [served]}, timeout=5)
    try:
        fell_back = record(chat(gateway, "router", prompts["arc-challenge"][15], task="live-arc"))
    finally:
        httpx.post(upstream + "/_control", json={"fail_models": []}, timeout=5)
    assert fell_back.status_code == 200 and fell_back.headers["x-router-model"] != served
    return statuses


def scrape(gateway: str) -> str:
    resp = httpx.get(gateway + "/metrics", timeout=10)
    assert resp.status_code == 200
    return resp.text


def test_promtool_accepts_a_scrape_after_traffic(gateway, traffic):
    text = scrape(gateway)
    run_tool(need_tool("promtool"), "check", "metrics", input=text)
    served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("llm_router_requests_total{"))
    assert served == sum(n for status, n in traffic.items() if status != 401)
    for name in ["llm_router_fallbacks_total{", "llm_router_time_to_first_token_seconds_bucket{",
                 'llm_router_decision_cache_total{result="hit"}', "llm_router_artifact_info{"]:
        assert name in text, name


def test_prometheus_evaluates_every_alert_without_error(prometheus, traffic):
    wait_until(lambda: httpx.get(prometheus + "/api/v1/rules", timeout=5).json()["data"]["groups"][0]
               ["rules"][0].get("lastEvaluation", "0001").startswith("2"), "rules evaluated")
    rules = [r for g in httpx.get(prometheus + "/api/v1/rules", timeout=5).json()["data"]["groups"]
             for r in g["rules"]]
    alerts = yaml.safe_load(ALERTS.read_text())
    assert sorted(r["name"] for r in rules) == sorted(r["alert"] for g in alerts["groups"] for r in g["rules"])
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
        assert rule["state"] != "firing", rule["name"]


def test_prometheus_answers_every_dashboard_query_with_the_traffic(gateway, prometheus, traffic):
    total = sum(n for status, n in traffic.items() if status != 401)
    # wait until Prometheus has scraped all of the traffic (twice, so rates see it)
    wait_until(lambda: float(query(prometheus, 'sum(llm_router_requests_total)')[0]["value"][1]) == total,
               "traffic scraped")

    def empty_panels() -> list[str]:   # runs every query; each must succeed
        return [f"{title}: {expr}" for title, expr in dashboard_queries()
                if not query(prometheus, expr) and title in MUST_HAVE_DATA]

    # series born during the traffic need a second scrape before rate() sees them
    try:
        wait_until(lambda: not empty_panels(), "every panel has data", timeout_s=60)
    except AssertionError:
        pass
    assert empty_panels() == []
    # the $instance variable lists the gateway Prometheus scrapes
    metric = dict(dashboard_queries())["$instance"]
    assert {r["metric"]["instance"] for r in query(prometheus, metric)} == {gateway.removeprefix("http://")}
