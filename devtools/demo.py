"""``llm-router demo`` (what ``make run`` starts): router, Redis, fake upstream and gateway in one go.

Everything lives under the state directory: the router artifact (rebuilt only when the data
changed), Redis's data file and the generated config. The upstream serves the data's models and
answers with the benchmark's labels, so the demo needs no API key and no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from gateway.redis_embedded import EmbeddedRedis, die_with_parent, free_port

from .processes import stop_all, wait_http


def data_fingerprint(folder: Path) -> str:
    """Hash of the data files' names, sizes and mtimes: cheap, and changes when the data does."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(folder)}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def ensure_router(data: Path, out: Path) -> dict[str, Any]:
    """Build the router into ``out`` unless an artifact built from the same data is there."""
    from router_core import artifact

    stamp = out / "demo-data.json"
    fingerprint = data_fingerprint(data)
    if (out / "manifest.json").exists() and stamp.exists():
        if json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
            print(f"router: {out} is up to date", file=sys.stderr)
            return artifact.read_manifest(out)
    print(f"router: building from {data} into {out} (embedding is cached after the first run)", file=sys.stderr)
    from router_core import data as data_mod
    from router_core.embed import get_encoder
    from router_core.router import build_router

    router = build_router(data_mod.load(data), get_encoder(), progress=True)
    artifact.save(router, out)
    stamp.write_text(json.dumps({"data": str(data.resolve()), "fingerprint": fingerprint}))
    return artifact.read_manifest(out)


def demo_config(artifact_dir: Path, models: list[str], costs: list[float] | None, upstream_url: str,
                redis_url: str) -> dict[str, Any]:
    """A gateway config routing over ``models`` served by the fake upstream (no API keys)."""
    model_list = []
    for i, m in enumerate(models):
        info: dict[str, Any] = {}
        if costs is not None and costs[i] == costs[i]:
            info["cost_per_request"] = float(costs[i])
        model_list.append({"model_name": m, "litellm_params": {"model": f"openai/{m}", "api_base": upstream_url,
                                                               "api_key": "demo"}, "model_info": info})
    return {"model_list": model_list,
            # `router` for quality with ties to the cheaper model (`epsilon: 0`: no accuracy given up),
            # `router-eco` with a quality floor: the cheapest model within 0.05 of the best score
            # (prices, else model size, stand for cost); `auto`: the default decision, knobs off
            "router": {"artifact": str(artifact_dir), "min_samples": 10,
                       "aliases": [{"name": "router", "epsilon": 0.0}, {"name": "router-eco", "epsilon": 0.05},
                                   "auto"]},
            "redis": {"url": redis_url}, "auth": {"api_keys": []}}


def _exit_on_sigterm(*_: object) -> None:
    raise SystemExit(0)  # unwinds through run_demo's finally: children and Redis are stopped


def run_demo(data: Path, port: int, state: Path) -> int:
    import numpy as np

    from router_core import artifact

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    state.mkdir(parents=True, exist_ok=True)
    router_dir = state / "demo-router"
    manifest = ensure_router(data, router_dir)
    costs = artifact.load(router_dir).costs
    exe = [sys.executable, "-m", "gateway"]
    procs: list[subprocess.Popen[bytes]] = []
    redis = EmbeddedRedis(state / "redis").start()
    try:
        up_port = free_port()
        upstream = subprocess.Popen([*exe, "upstream", "--port", str(up_port), "--data", str(data)],
                                    preexec_fn=die_with_parent)
        procs.append(upstream)
        wait_http(f"http://127.0.0.1:{up_port}/v1/models", upstream)
        cfg = demo_config(router_dir.resolve(), list(manifest["models"]),
                          None if costs is None else np.asarray(costs).tolist(),
                          f"http://127.0.0.1:{up_port}/v1", redis.url)
        cfg_path = state / "demo-config.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        print(f"demo: upstream on :{up_port}, redis {redis.url}, config {cfg_path}", file=sys.stderr)
        gateway = subprocess.Popen([*exe, "serve", "--config", str(cfg_path), "--port", str(port)],
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"}, preexec_fn=die_with_parent)
        procs.append(gateway)
        wait_http(f"http://127.0.0.1:{port}/health/readiness", gateway)
        print(f"\ngateway ready on http://127.0.0.1:{port}  (Ctrl-C stops everything)\n"
              f"  curl http://127.0.0.1:{port}/v1/chat/completions -H 'Content-Type: application/json' \\\n"
              f"    -H 'X-Task-ID: demo' \\\n"
              f"    -d '{{\"model\": \"router\", \"messages\": "
              f"[{{\"role\": \"user\", \"content\": \"What is 2+2?\"}}]}}'\n",
              file=sys.stderr)
        return gateway.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all(procs)
        redis.stop()
