"""Helpers for the gateway tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import yaml

from devtools.processes import wait_http
from gateway.redis_embedded import die_with_parent, free_port

TASKS = ["arc-challenge", "mbpp", "winogrande"]
PER_TASK = 60
MIN_SAMPLES = 4
LAMBDA = 300.0  # a cost knob under which these three tasks favour different models
API_KEY = "test-key-" + uuid.uuid4().hex[:8]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ROOT = Path(__file__).resolve().parents[2]


class UpstreamHandle:
    def __init__(self, url: str) -> None:
        self.url = url  # http://127.0.0.1:P/v1

    def control(self, **settings: Any) -> dict[str, Any]:
        return httpx.post(self.url.replace("/v1", "/_control"), json=settings, timeout=5).json()

    def reset(self) -> None:
        self.control(latency_ms=0, per_token_ms=0, error_rate=0, error_status=500, hang=False, fail_models=[],
                     retry_after_s=None, die_after_chunks=None)


@contextlib.contextmanager
def running_upstream(data_dir: Path) -> Iterator[UpstreamHandle]:
    """The fake upstream serving the models of ``data_dir`` (answers from its records), for a block."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "upstream", "--port", str(port), "--control",
                             "--data", str(data_dir)], cwd=ROOT, preexec_fn=die_with_parent)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc)
        yield UpstreamHandle(f"http://127.0.0.1:{port}/v1")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class ServedGateway:
    """`llm-router serve` running in a subprocess on a config file it can be told to read again."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes], config_path: Path) -> None:
        self.url, self.proc, self.config_path = url, proc, config_path

    def reload(self, config: dict[str, Any]) -> None:
        """Write ``config`` over the file and signal the server to read it (SIGHUP)."""
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc.send_signal(signal.SIGHUP)


@contextlib.contextmanager
def served_gateway(config: dict[str, Any], folder: Path, workers: int = 1,
                   env: dict[str, str | None] | None = None) -> Iterator[ServedGateway]:
    """`llm-router serve --workers N` on ``config`` (written to ``folder``/gateway.yaml) in a subprocess,
    with the tests' API key, for a block; ``env``: variables to set (None: to unset)."""
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    full_env = {**os.environ, "LLM_ROUTER_TEST_KEY": API_KEY, "HF_HUB_OFFLINE": "1"}
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port),
                             "--workers", str(workers), "--log-level", "warning"], cwd=ROOT, env=full_env,
                            preexec_fn=die_with_parent)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health/readiness", proc, timeout_s=240)
        yield ServedGateway(url, proc, path)
    finally:
        proc.terminate()
        proc.wait(30)


def make_config(router_dir: Path, router_models: list[str], upstream_url: str, redis_url: str | None,
                **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model_list": [{"model_name": m, "litellm_params": {"model": f"openai/{m}", "api_base": upstream_url,
                                                            "api_key": "upstream-key"},
                        "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}
                       for m in router_models],
        "router": {"artifact": str(router_dir), "aliases": ["router", "auto"], "min_samples": MIN_SAMPLES,
                   "lambda": LAMBDA},
        "redis": {"url": redis_url, "retry_after_s": 0.2},
        "auth": {"api_keys": ["os.environ/LLM_ROUTER_TEST_KEY"]},
        "limits": {"read_timeout_s": 1.5, "connect_timeout_s": 1.0, "total_timeout_s": 5.0, "retries": 1,
                   "max_fallbacks": 2, "max_body_bytes": 64 * 1024},
    }
    for section, values in overrides.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    return cfg


class ThreadGateway:
    """A gateway app served by uvicorn in a thread of the test process (shares the encoder)."""

    def __init__(self, config: dict[str, Any], encoder, span_exporter: Any = None) -> None:
        import uvicorn

        from gateway.app import create_app
        from gateway.config import GatewayConfig

        os.environ["LLM_ROUTER_TEST_KEY"] = API_KEY
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(GatewayConfig.model_validate(config), encoder=encoder, span_exporter=span_exporter)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "ThreadGateway":
        self.thread.start()
        wait_http(self.url + "/health/liveness", timeout_s=60)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def send(client: Any, prompt: str, task_id: str | None = None, stream: bool = False
         ) -> tuple[str, str, dict[str, Any] | None]:
    """A routed chat completion through the OpenAI SDK: (x-router-decision, x-router-model, the body's
    ``router`` object; None for a stream, which is read to the end)."""
    headers = {"X-Task-ID": task_id} if task_id else {}
    raw = client.chat.completions.with_raw_response.create(model="router", messages=chat(prompt),
                                                           extra_headers=headers, stream=stream)
    if stream:
        assert list(raw.parse())
        return raw.headers["x-router-decision"], raw.headers["x-router-model"], None
    return raw.headers["x-router-decision"], raw.headers["x-router-model"], raw.parse().model_extra["router"]


def post(url: str, body: Any = None, headers: dict[str, str] | None = None, path: str = "/v1/chat/completions",
         **kw: Any) -> httpx.Response:
    """POST to a gateway with the test key (``headers`` added to it), 30 s timeout unless given."""
    kw.setdefault("timeout", 30)
    if body is not None:
        kw["json"] = body
    return httpx.post(url + path, headers={**AUTH, **(headers or {})}, **kw)


def offline_decision(router, encoder, prompts: list[str], lam: float = LAMBDA):
    """router_core's own decision for a task's prompts (what the gateway must agree with)."""
    return router.decide(router.aggregate(encoder.encode(prompts)), lam=lam)
