"""Two gateway deployments on one Redis: `llm-router serve --workers 2` in a subprocess, and the
in-thread gateway. They agree on every task's decision, lose no concurrent update, and the
multi-worker process reports metrics summed over its workers."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_support import AUTH, MIN_SAMPLES, chat, served_gateway


@pytest.fixture(scope="module")
def served(gateway_config, tmp_path_factory):
    """`llm-router serve --workers 2` on the same Redis, artifact and upstream."""
    folder = tmp_path_factory.mktemp("served")
    (folder / "metrics").mkdir()
    (folder / "metrics" / "stale.db").write_bytes(b"left over from a previous run")
    with served_gateway(gateway_config, folder, workers=2,
                        env={"PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics")}) as served:
        yield served.url


async def post(client: httpx.AsyncClient, url: str, prompt: str, task_id: str) -> tuple[str, str, int]:
    r = await client.post(url + "/v1/chat/completions", headers={**AUTH, "X-Task-ID": task_id},
                          json={"model": "router", "messages": chat(prompt)}, timeout=60)
    assert r.status_code == 200, r.text
    return r.headers["x-router-decision"], r.headers["x-router-model"], r.json()["router"]["n"]


def test_decision_is_shared_between_processes(gateway, served, bench, task_id):
    async def run():
        async with httpx.AsyncClient() as client:
            out = []
            for p in bench.held_out["arc-challenge"][:MIN_SAMPLES]:
                out.append(await post(client, gateway.url, p, task_id))
            out.append(await post(client, served, bench.held_out["arc-challenge"][0], task_id))
            return out
    results = asyncio.run(run())
    assert results[MIN_SAMPLES - 1][0] == "final"
    assert results[-1][:2] == ("cached", results[MIN_SAMPLES - 1][1])


def test_concurrent_folds_from_two_processes_lose_nothing_and_agree(gateway, served, bench, task_id):
    prompts = bench.held_out["winogrande"][: 3 * MIN_SAMPLES]

    async def run():
        async with httpx.AsyncClient() as client:
            return await asyncio.gather(*[post(client, (gateway.url, served)[i % 2], p, task_id)
                                          for i, p in enumerate(prompts)])
    results = asyncio.run(run())
    sources = Counter(s for s, _, _ in results)
    assert sources["final"] == 1  # first final decision wins, atomically
    assert sorted(n for s, _, n in results if s == "provisional") == list(range(1, MIN_SAMPLES))
    assert len({m for s, m, _ in results if s in ("final", "cached")}) == 1
    state = httpx.get(f"{gateway.url}/v1/router/tasks/{task_id}", headers=AUTH).json()
    assert MIN_SAMPLES <= state["n"] <= len(prompts)


def test_multiworker_metrics_sum_over_workers(served):
    def total() -> float:
        families = text_string_to_metric_families(httpx.get(served + "/metrics").text)
        return sum(s.value for f in families if f.name == "llm_router_requests" for s in f.samples
                   if s.name == "llm_router_requests_total")

    before = total()
    for _ in range(6):  # spread over both workers by the kernel
        assert httpx.get(served + "/v1/models", headers=AUTH).status_code == 200
        r = httpx.post(served + "/v1/chat/completions", headers=AUTH, json={"model": "router", "messages": chat("hi")})
        assert r.status_code == 200
    assert total() == before + 6
