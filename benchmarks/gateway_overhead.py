"""Gateway overhead, side by side in one run on one machine, against the same local upstream.

Scenarios (all POST /v1/chat/completions with one user message: the same short question, or with
``--prompts real`` real benchmark prompts in turn), by their ``--json`` key:

* ``direct``                   the local upstream itself (the baseline every overhead is measured against)
* ``gateway_cached``           our gateway, ``model: router`` with a task whose decision is final in Redis
* ``gateway_fresh``            our gateway, a new task ID and a new prompt text on every request
                               (embedding, atomic fold in Redis, decision: the first prompts of every task);
                               concurrent prompts embedded together (``embedding.batch``, the default)
* ``gateway_fresh_unbatched``  the same with ``embedding.batch: false`` (each request embeds alone)
* ``gateway_fresh_torch``      the fresh path as issue 9 found it: the torch encoder, each request
                               embedding alone (``embedding: {backend: torch, batch: false}``)
* ``gateway_explicit``         our gateway, a configured model named directly (no routing)
* ``gateway_cached_nofeedback`` ``gateway_cached`` with ``feedback.enabled: false`` (no request record is
                               written: the price of outcome feedback on the request path is the gap)
* ``gateway_cached_2workers``  ``gateway_cached`` with ``serve --workers 2``
* ``gateway_cached_tracing``   ``gateway_cached`` with OpenTelemetry tracing on, every span exported over
                               OTLP/HTTP to a receiver on loopback in this process (devtools/otlp_receiver.py)
* ``litellm_proxy``            LiteLLM Proxy (``litellm[proxy]==1.106.12`` in its own venv, created here)

Latency: ``wrk`` with 1 connection (sequential) and with 32 connections; throughput is wrk's
requests/s at 32 connections. Every server runs with one worker unless its name says otherwise, and
one server runs at a time (each is stopped before the next starts). ``--json OUT`` writes the rows
keyed by scenario: ``c1_p50``, ``c1_p99``, ``c32_p50``, ``c32_p99`` (ms), ``c32_rps``, ``c32_cpu_ms`` (the
server's own user + system CPU per request at 32 connections, its worker processes included, from /proc)
and ``load1`` (the 1-minute load average when the row was done). Usage::

    .venv/bin/python benchmarks/gateway_overhead.py [--duration 10] [--skip-litellm] [--prompts short|real] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.demo import demo_config, ensure_router  # noqa: E402  (after the sys.path line above)
from devtools.otlp_receiver import OtlpReceiver  # noqa: E402
from devtools.processes import stop_all, wait_http  # noqa: E402
from gateway.redis_embedded import EmbeddedRedis, die_with_parent, free_port  # noqa: E402
from real_prompts import real_prompts  # noqa: E402  (benchmarks/real_prompts.py)

LITELLM_PIN = "litellm[proxy]==1.106.12"
MODEL = "mistralai/mistral-7b-chat"
PROMPT = "Which gas do plants absorb from the air?"

PROMPT_CHARS = 2000  # a real prompt is cut here in the request body (the encoder reads its first 256 tokens)

# Every request's user message is the next of PROMPTS (JSON strings, in turn); a fresh request's task ID
# and prompt variant are unique to the wrk run (BENCH_RUN, new for every run), its thread (numbered in
# setup) and its count. An earlier version drew them from math.random, which wrk never seeds: every
# run, and both threads of a run, drew the same sequence, so a "fresh" request repeated the task IDs and
# prompt texts of the warm-up, of the other thread and of the scenarios before it (the embedding cache
# is shared): many, at 32 connections nearly all, were no fresh task at all.
WRK_SCRIPT = """
counter = 0
threads = 0
local mode = os.getenv("BENCH_MODE") or "plain"
local run = os.getenv("BENCH_RUN") or "0"
local prompts = {
PROMPTS
}
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
request = function()
  counter = counter + 1
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench"}
  local prompt = prompts[(counter % #prompts) + 1]
  if mode == "cached" then headers["X-Task-ID"] = "bench-cached" end
  if mode == "fresh" then
    local id = run .. "-" .. tostring(tid or 0) .. "-" .. counter
    headers["X-Task-ID"] = "bench-fresh-" .. id
    prompt = prompt:sub(1, -2) .. " (variant " .. id .. ')"'
  end
  local body = '{"model": "' .. os.getenv("BENCH_MODEL") .. '", "messages": [{"role": "user", "content": '
    .. prompt .. '}]}'
  return wrk.format("POST", nil, headers, body)
end
"""


def wrk_script(prompts: list[str]) -> str:
    """The wrk script sending ``prompts`` in turn (each JSON-quoted inside a Lua long string)."""
    quoted = [json.dumps(p[:PROMPT_CHARS]) for p in prompts]
    return WRK_SCRIPT.replace("PROMPTS", ",\n".join(f"[==[{q}]==]" for q in quoted if "]==]" not in q))


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
                         capture_output=True, text=True,
                         env={**os.environ, "BENCH_MODE": mode, "BENCH_MODEL": model, "BENCH_RUN": uuid.uuid4().hex},
                         check=True).stdout
    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url} {mode}: {non2xx.group(1)} failed responses")
    return {"p50": ms("50"), "p99": ms("99"), "rps": rps, "requests": requests}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its child processes (the workers of ``serve --workers N``),
    from /proc: the server's own CPU per request, which waiting for a core on a shared machine does not inflate."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        except OSError:
            continue  # a process that ended meanwhile
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


#: (json key, table label) in the order they are measured and printed
SCENARIOS = {"direct": "direct (local upstream)",
             "gateway_cached": "gateway, cached task decision",
             "gateway_fresh": "gateway, fresh task + new prompt text (batched embedding)",
             "gateway_fresh_unbatched": "gateway, fresh task + new prompt text (embedding.batch: false)",
             "gateway_fresh_torch": "gateway, fresh task + new prompt text (torch encoder, unbatched: issue 9's start)",
             "gateway_explicit": "gateway, explicit model (no routing)",
             "gateway_cached_nofeedback": "gateway, cached task decision, feedback.enabled: false",
             "gateway_cached_2workers": "gateway, cached task decision, --workers 2",
             "gateway_cached_tracing": "gateway, cached task decision, tracing on (OTLP to loopback)",
             "litellm_proxy": "LiteLLM Proxy 1.106.12"}


def measure(url: str, model: str, mode: str, duration: int, script: Path, pid: int) -> dict[str, float]:
    """One scenario's row: a warm-up, then 1 and 32 connections; ``pid`` is the server's process, whose CPU
    per request at 32 connections is the row's ``c32_cpu_ms``."""
    wrk(url, model, mode, 1, 2, script)  # warm-up
    c1 = wrk(url, model, mode, 1, duration, script)
    cpu0 = cpu_seconds(pid)
    c32 = wrk(url, model, mode, 32, duration, script)
    cpu_ms = (cpu_seconds(pid) - cpu0) * 1e3 / max(1, c32["requests"])
    return {"c1_p50": c1["p50"], "c1_p99": c1["p99"], "c32_p50": c32["p50"], "c32_p99": c32["p99"],
            "c32_rps": c32["rps"], "c32_cpu_ms": round(cpu_ms, 2), "load1": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routerbench-subset")
    ap.add_argument("--state", type=Path, default=ROOT / ".state")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument("--only", nargs="*", choices=list(SCENARIOS), help="measure these scenarios only")
    ap.add_argument("--json", type=Path, help="write the rows here as JSON, keyed by scenario")
    ap.add_argument("--prompts", choices=["short", "real"], default="short",
                    help="short: one short question (every request); real: 1,000 prompts drawn from the shared "
                         "benchmark folders (benchmarks/real_prompts.py), cut at 2,000 characters, sent in turn")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    wanted = set(args.only or SCENARIOS) - ({"litellm_proxy"} if args.skip_litellm else set())

    manifest = ensure_router(args.data, args.state / "demo-router")
    models = list(manifest["models"])
    work = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    script = work / "bench.lua"
    prompts = [PROMPT]
    if args.prompts == "real":  # shuffled: real_prompts gives them folder by folder
        prompts = real_prompts(1000)
        random.Random(0).shuffle(prompts)
    script.write_text(wrk_script(prompts))
    py = [sys.executable, "-m", "gateway"]
    procs: list[subprocess.Popen] = []
    redis = EmbeddedRedis(work / "redis").start()
    load_start = os.getloadavg()
    results: dict[str, dict[str, float]] = {}

    def run(key: str, url: str, model: str, mode: str, server: subprocess.Popen) -> None:
        if key in wanted:
            results[key] = measure(url, model, mode, args.duration, script, server.pid)
            print(f"  measured {key} (load {results[key]['load1']})", file=sys.stderr)

    try:
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}/v1"
        upstream_proc = start([*py, "upstream", "--port", str(up_port), *sum((["--models", m] for m in models), [])],
                              upstream + "/models")
        procs.append(upstream_proc)
        base_cfg = demo_config((args.state / "demo-router").resolve(), models, None, upstream, redis.url)
        run("direct", upstream + "/chat/completions", MODEL, "plain", upstream_proc)

        def gateway(name: str, workers: int = 1, **sections: Any) -> tuple[subprocess.Popen, str]:
            """One gateway (the demo config plus ``sections``), started; stop it with ``stop_all``."""
            cfg = {**base_cfg, **sections}
            (work / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
            port = free_port()
            proc = start([*py, "serve", "--config", str(work / f"{name}.yaml"), "--port", str(port),
                          "--workers", str(workers), "--log-level", "warning"],
                         f"http://127.0.0.1:{port}/health/readiness", env={"HF_HUB_OFFLINE": "1"})
            return proc, f"http://127.0.0.1:{port}/v1/chat/completions"

        proc, gw = gateway("gateway")
        try:
            for i in range(base_cfg["router"]["min_samples"]):  # make the "bench-cached" task final
                r = httpx.post(gw, headers={"X-Task-ID": "bench-cached"}, timeout=60,
                               json={"model": "router", "messages": [{"role": "user", "content": f"{PROMPT} {i}"}]})
                r.raise_for_status()
            assert r.headers["x-router-decision"] in ("final", "cached"), r.headers
            run("gateway_cached", gw, "router", "cached", proc)
            run("gateway_fresh", gw, "router", "fresh", proc)
            run("gateway_explicit", gw, MODEL, "plain", proc)
        finally:
            stop_all([proc])
        variants: list[tuple[str, str, int, dict[str, Any]]] = [
            ("gateway_fresh_unbatched", "fresh", 1, {"embedding": {"batch": False}}),
            ("gateway_fresh_torch", "fresh", 1, {"embedding": {"backend": "torch", "batch": False}}),
            ("gateway_cached_nofeedback", "cached", 1, {"feedback": {"enabled": False}}),
            ("gateway_cached_2workers", "cached", 2, {})]
        for key, mode, workers, sections in variants:
            if key in wanted:
                proc, url = gateway(key, workers, **sections)
                try:
                    run(key, url, "router", mode, proc)
                finally:
                    stop_all([proc])
        if "gateway_cached_tracing" in wanted:
            with OtlpReceiver(keep=False) as rx:
                proc, url = gateway("gateway_cached_tracing", tracing={"endpoint": rx.endpoint})
                try:
                    run("gateway_cached_tracing", url, "router", "cached", proc)
                finally:
                    stop_all([proc])
                print(f"  tracing: {rx.count} spans in {rx.requests} OTLP export requests", file=sys.stderr)
                if rx.count == 0:
                    raise RuntimeError("tracing on, but no span reached the receiver")
        if "litellm_proxy" in wanted:
            exe = litellm_venv(args.state / "bench" / "litellm-venv")
            ll_cfg = {"model_list": [{"model_name": m, "litellm_params": {"model": f"openai/{m}", "api_base": upstream,
                                                                          "api_key": "bench"}} for m in models]}
            (work / "litellm.yaml").write_text(yaml.safe_dump(ll_cfg))
            ll_port = free_port()
            proc = start([str(exe), "--config", str(work / "litellm.yaml"), "--port", str(ll_port),
                          "--num_workers", "1"], f"http://127.0.0.1:{ll_port}/health/liveliness",
                         env={"LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
                              "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"})
            try:
                run("litellm_proxy", f"http://127.0.0.1:{ll_port}/v1/chat/completions", MODEL, "plain", proc)
            finally:
                stop_all([proc])
    finally:
        stop_all(procs)
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nprompts: {args.prompts}", end="")
    report(results, args.duration, load_start, os.getloadavg())
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def report(results: dict[str, dict[str, float]], duration: int, load_start: tuple[float, ...],
           load_end: tuple[float, ...]) -> None:
    """The table, the ratios the fast-path issue asks for, and the rows as JSON."""
    base = results.get("direct")
    print(f"\ncpu cores: {os.cpu_count()}; wrk {duration}s per cell; one server at a time; "
          f"load average (1/5/15 min) at start {' '.join(f'{x:.2f}' for x in load_start)}, "
          f"at end {' '.join(f'{x:.2f}' for x in load_end)}; overhead = p50 - direct p50\n")
    print("| scenario | c=1 p50 ms | c=1 p99 ms | c=1 overhead ms | c=32 p50 ms | c=32 p99 ms | req/s at c=32 "
          "| req/s vs direct | server CPU ms / request (c=32) | load (1 min) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, r in results.items():
        over = f"{r['c1_p50'] - base['c1_p50']:.2f}" if base else "-"
        vs = f"{r['c32_rps'] / base['c32_rps']:.2f}" if base else "-"
        print(f"| {SCENARIOS[key]} | {r['c1_p50']:.2f} | {r['c1_p99']:.2f} | {over} | {r['c32_p50']:.2f} | "
              f"{r['c32_p99']:.2f} | {r['c32_rps']:.0f} | {vs} | {r['c32_cpu_ms']:.2f} | {r['load1']:.2f} |")

    def ratio(label: str, a: float, b: float) -> None:
        print(f"{label}: {a:.2f} / {b:.2f} = {a / b:.2f}")

    print()
    ll = results.get("litellm_proxy")
    if base and ll and "gateway_cached" in results:
        ratio("cached-decision overhead / LiteLLM Proxy overhead (c=1 p50, ms)",
              results["gateway_cached"]["c1_p50"] - base["c1_p50"], ll["c1_p50"] - base["c1_p50"])
    if "gateway_cached" in results:
        r = results["gateway_cached"]
        ratio("cached c=1 p99 / own p50 (ms)", r["c1_p99"], r["c1_p50"])
    if ll and "gateway_cached_2workers" in results:
        ratio("cached throughput, --workers 2 / LiteLLM Proxy (req/s at c=32)",
              results["gateway_cached_2workers"]["c32_rps"], ll["c32_rps"])
    if "gateway_fresh" in results and "gateway_fresh_unbatched" in results:
        ratio("fresh-task throughput, batched / unbatched (req/s at c=32)",
              results["gateway_fresh"]["c32_rps"], results["gateway_fresh_unbatched"]["c32_rps"])
    if "gateway_fresh" in results and "gateway_fresh_torch" in results:
        ratio("fresh-task throughput, batched ONNX / torch unbatched, issue 9's start (req/s at c=32)",
              results["gateway_fresh"]["c32_rps"], results["gateway_fresh_torch"]["c32_rps"])
    if base and "gateway_cached" in results and "gateway_cached_tracing" in results:
        on, off = results["gateway_cached_tracing"], results["gateway_cached"]
        ratio("tracing on / off, cached overhead (c=1 p50 - direct, ms)", on["c1_p50"] - base["c1_p50"],
              off["c1_p50"] - base["c1_p50"])
        ratio("tracing on / off, cached throughput (req/s at c=32)", on["c32_rps"], off["c32_rps"])
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
