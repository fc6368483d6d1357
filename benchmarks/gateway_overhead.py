"""Gateway overhead, side by side in one run on one machine, against the same local upstream.

Scenarios (all POST /v1/chat/completions, one short user message):

* ``direct``           the local upstream itself (the baseline every overhead is measured against)
* ``gateway cached``   our gateway, ``model: router`` with a task whose decision is final in Redis
* ``gateway fresh``    our gateway, a new task ID and a new prompt text on every request
                       (embedding, atomic fold in Redis, decision; the first prompts of every task)
* ``gateway explicit`` our gateway, a configured model named directly (no routing)
* ``litellm proxy``    LiteLLM Proxy (``litellm[proxy]==1.106.12`` in its own venv, created here)

Latency: ``wrk`` with 1 connection (sequential) and with 32 connections; throughput is wrk's
requests/s at 32 connections. Every server runs with one worker. Usage::

    .venv/bin/python benchmarks/gateway_overhead.py [--duration 10] [--skip-litellm]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.demo import demo_config, ensure_router  # noqa: E402  (after the sys.path line above)
from devtools.processes import stop_all, wait_http  # noqa: E402
from gateway.redis_embedded import EmbeddedRedis, die_with_parent, free_port  # noqa: E402

LITELLM_PIN = "litellm[proxy]==1.106.12"
MODEL = "mistralai/mistral-7b-chat"
PROMPT = "Which gas do plants absorb from the air?"

WRK_SCRIPT = """
counter = 0
local mode = os.getenv("BENCH_MODE") or "plain"
request = function()
  counter = counter + 1
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench"}
  local prompt = "%s"
  if mode == "cached" then headers["X-Task-ID"] = "bench-cached" end
  if mode == "fresh" then
    local id = tostring(math.random(1, 1000000000)) .. "-" .. counter
    headers["X-Task-ID"] = "bench-fresh-" .. id
    prompt = prompt .. " (variant " .. id .. ")"
  end
  local body = '{"model": "' .. os.getenv("BENCH_MODEL") .. '", "messages": [{"role": "user", "content": "'
    .. prompt .. '"}]}'
  return wrk.format("POST", nil, headers, body)
end
""" % PROMPT


def start(cmd: list[str], url: str, env: dict[str, str] | None = None, timeout_s: float = 240) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, preexec_fn=die_with_parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(url, proc, timeout_s)
    except RuntimeError:
        proc.kill()
        raise
    return proc


def litellm_venv(where: Path) -> Path:
    """A separate venv with LiteLLM Proxy (created once, reused)."""
    exe = where / "bin" / "litellm"
    if not exe.exists():
        print(f"creating {where} with {LITELLM_PIN} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        subprocess.run([str(where / "bin" / "pip"), "install", "-q", LITELLM_PIN], check=True)
    return exe


def wrk(url: str, model: str, mode: str, connections: int, duration: int, script: Path) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{duration}s",
                          "--latency", "-s", str(script), url],
                         capture_output=True, text=True, env={**os.environ, "BENCH_MODE": mode, "BENCH_MODEL": model},
                         check=True).stdout
    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url} {mode}: {non2xx.group(1)} failed responses")
    return {"p50": ms("50"), "p99": ms("99"), "rps": rps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routerbench-subset")
    ap.add_argument("--state", type=Path, default=ROOT / ".state")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--skip-litellm", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")

    manifest = ensure_router(args.data, args.state / "demo-router")
    models = list(manifest["models"])
    work = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    script = work / "bench.lua"
    script.write_text(WRK_SCRIPT)
    py = [sys.executable, "-m", "gateway"]
    procs: list[subprocess.Popen] = []
    redis = EmbeddedRedis(work / "redis").start()
    try:
        up_port, gw_port, ll_port = free_port(), free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}/v1"
        procs.append(start([*py, "upstream", "--port", str(up_port), *sum((["--models", m] for m in models), [])],
                           upstream + "/models"))
        cfg = demo_config((args.state / "demo-router").resolve(), models, None, upstream, redis.url)
        (work / "gateway.yaml").write_text(yaml.safe_dump(cfg))
        procs.append(start([*py, "serve", "--config", str(work / "gateway.yaml"), "--port", str(gw_port),
                            "--log-level", "warning"], f"http://127.0.0.1:{gw_port}/health/readiness",
                           env={"HF_HUB_OFFLINE": "1"}))
        gw = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        for i in range(cfg["router"]["min_samples"]):  # make the "bench-cached" task final
            r = httpx.post(gw, headers={"X-Task-ID": "bench-cached"}, timeout=60,
                           json={"model": "router", "messages": [{"role": "user", "content": f"{PROMPT} {i}"}]})
            r.raise_for_status()
        assert r.headers["x-router-decision"] == "final", r.headers
        cases = [("direct", upstream + "/chat/completions", MODEL, "plain"),
                 ("gateway cached", gw, "router", "cached"),
                 ("gateway fresh", gw, "router", "fresh"),
                 ("gateway explicit", gw, MODEL, "plain")]
        if not args.skip_litellm:
            exe = litellm_venv(args.state / "bench" / "litellm-venv")
            ll_cfg = {"model_list": [{"model_name": m, "litellm_params": {"model": f"openai/{m}", "api_base": upstream,
                                                                          "api_key": "bench"}} for m in models]}
            (work / "litellm.yaml").write_text(yaml.safe_dump(ll_cfg))
            procs.append(start([str(exe), "--config", str(work / "litellm.yaml"), "--port", str(ll_port),
                                "--num_workers", "1"], f"http://127.0.0.1:{ll_port}/health/liveliness",
                               env={"LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
                                    "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}))
            cases.append(("litellm proxy", f"http://127.0.0.1:{ll_port}/v1/chat/completions", MODEL, "plain"))

        results: dict[str, dict[str, dict[str, float]]] = {}
        for name, url, model, mode in cases:
            wrk(url, model, mode, 1, 2, script)  # warm-up
            results[name] = {"c1": wrk(url, model, mode, 1, args.duration, script),
                             "c32": wrk(url, model, mode, 32, args.duration, script)}
            print(f"  measured {name}", file=sys.stderr)
    finally:
        stop_all(procs)
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)

    base = results["direct"]
    print(f"\ncpu cores: {os.cpu_count()}; wrk {args.duration}s per cell; one worker per server; "
          "overhead = p50 - direct p50\n")
    print("| scenario | c=1 p50 ms | c=1 p99 ms | c=1 overhead ms | c=32 p50 ms | c=32 p99 ms | req/s at c=32 "
          "| req/s vs direct |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        c1, c32 = r["c1"], r["c32"]
        print(f"| {name} | {c1['p50']:.2f} | {c1['p99']:.2f} | {c1['p50'] - base['c1']['p50']:.2f} | "
              f"{c32['p50']:.2f} | {c32['p99']:.2f} | {c32['rps']:.0f} | {c32['rps'] / base['c32']['rps']:.2f} |")
    if "litellm proxy" in results:
        ours = results["gateway cached"]["c1"]["p50"] - base["c1"]["p50"]
        theirs = results["litellm proxy"]["c1"]["p50"] - base["c1"]["p50"]
        print(f"\ncached-decision overhead / LiteLLM Proxy overhead (c=1 p50): {ours:.2f} / {theirs:.2f} ms "
              f"= {ours / theirs:.2f}")
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
