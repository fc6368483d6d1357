"""Chaos fixtures: one gateway run as ``llm-router serve`` (the HTTP protocol, limits and middleware a
deployment runs), its own redis-server on a fixed port (the tests kill and restart it), and the fake
upstream with its control endpoint. Timeouts are short so every fault resolves within seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml

from devtools.processes import stop_all, wait_http
from gateway.redis_embedded import EmbeddedRedis, die_with_parent, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))  # the gateway tests' helpers
from gateway_support import API_KEY, PER_TASK, ROOT, TASKS, UpstreamHandle, make_config

LIMITS = {"body_timeout_s": 1.0, "header_timeout_s": 1.0, "max_body_bytes": 64 * 1024, "read_timeout_s": 1.5,
          "connect_timeout_s": 1.0, "total_timeout_s": 4.0, "retries": 1, "max_fallbacks": 2}


class ChaosUpstream(UpstreamHandle):
    """The fake upstream, with the counters the chaos tests read."""

    def calls(self) -> int:
        return sum(self.control()["calls"].values())

    def cancelled(self) -> int:
        """Calls whose caller (the gateway) hung up before the answer: plain calls and streams."""
        state = self.control()
        return int(state["cancelled"]) + int(state["streams"]["cancelled"])


@dataclass
class Chaos:
    url: str
    port: int
    api_key: str
    upstream: ChaosUpstream
    redis: EmbeddedRedis
    min_samples: int
    proc: subprocess.Popen[bytes]

    body_timeout_s: float = LIMITS["body_timeout_s"]
    total_timeout_s: float = LIMITS["total_timeout_s"]
    max_body_bytes: int = int(LIMITS["max_body_bytes"])
    attempts_per_request: int = int((1 + LIMITS["retries"]) * (1 + LIMITS["max_fallbacks"]))

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def metric_sum(self, name: str) -> float:
        """The sum of a metric's samples over all label values (0 when it has none yet)."""
        total = 0.0
        for line in httpx.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def restart_redis(self) -> None:
        """A fresh redis-server on the same port, reading the same append-only file."""
        self.redis = EmbeddedRedis(self.redis.state_dir, port=self.redis.port).start()


@pytest.fixture(scope="session")
def chaos_router_dir(shared_data: Path, tmp_path_factory) -> tuple[Path, list[str]]:
    from router_core import artifact, data
    from router_core.embed import get_encoder
    from router_core.router import build_router

    pool = data.load(shared_data / "routerbench-subset").sample_tasks(TASKS, per_task=PER_TASK)
    out = tmp_path_factory.mktemp("chaos-router")
    router = build_router(pool, get_encoder())
    artifact.save(router, out)
    return out, list(router.models)


@pytest.fixture(scope="session")
def chaos(chaos_router_dir, shared_data: Path, tmp_path_factory) -> Iterator[Chaos]:
    router_dir, models = chaos_router_dir
    state = tmp_path_factory.mktemp("chaos")
    procs: list[subprocess.Popen[bytes]] = []
    redis = EmbeddedRedis(state / "redis").start()
    up_port, gw_port = free_port(), free_port()
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gateway", "upstream", "--port", str(up_port), "--control",
             "--data", str(shared_data / "routerbench-subset")], cwd=ROOT, preexec_fn=die_with_parent))
        upstream = ChaosUpstream(f"http://127.0.0.1:{up_port}/v1")
        wait_http(upstream.url + "/models", procs[0])
        config: dict[str, Any] = make_config(router_dir, models, upstream.url, redis.url, limits=LIMITS)
        (state / "gateway.yaml").write_text(yaml.safe_dump(config))
        env = {**os.environ, "LLM_ROUTER_TEST_KEY": API_KEY}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(state / "gateway.yaml"), "--port",
             str(gw_port), "--log-level", "warning"], cwd=ROOT, env=env, preexec_fn=die_with_parent))
        url = f"http://127.0.0.1:{gw_port}"
        wait_http(url + "/health/readiness", procs[1], timeout_s=300)
        chaos = Chaos(url, gw_port, API_KEY, upstream, redis, config["router"]["min_samples"], procs[1])
        yield chaos
    finally:
        stop_all(procs)
        chaos_redis = locals().get("chaos")
        (chaos_redis.redis if chaos_redis else redis).stop()


@pytest.fixture(autouse=True)
def _reset_chaos_upstream(request) -> Iterator[None]:
    yield
    if "chaos" in request.fixturenames:
        request.getfixturevalue("chaos").upstream.reset()
