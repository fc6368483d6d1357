"""The decision store on a real three-node Redis Cluster (``redis.cluster: true``): every per-task
operation (Lua fold, samples, reads, reset) works because one task's keys share a hash slot."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest
import redis

from gateway.redis_embedded import EmbeddedRedis, free_port
from gateway_support import API_KEY, AUTH, MIN_SAMPLES, ThreadGateway, chat, make_config



def cluster_port() -> int:
    """A free port whose cluster bus port (+10000, fixed in Redis 6.2) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 < 65536:
            return port
    raise RuntimeError("no usable port pair")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    nodes = [EmbeddedRedis(tmp_path_factory.mktemp(f"node{i}"), port=cluster_port(),
                           extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]).start()
             for i in range(3)]
    try:
        clients = [redis.Redis(port=n.port) for n in nodes]
        bounds = [0, 5461, 10923, 16384]
        for i, c in enumerate(clients):
            c.execute_command("CLUSTER ADDSLOTS", *range(bounds[i], bounds[i + 1]))
        for c in clients[1:]:
            c.execute_command("CLUSTER MEET", "127.0.0.1", nodes[0].port)
        deadline = time.monotonic() + 30
        while not all(c.execute_command("CLUSTER INFO")["cluster_state"] == "ok" for c in clients):
            assert time.monotonic() < deadline, "cluster did not form"
            time.sleep(0.2)
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def test_tasks_on_every_node_route_share_and_reset(cluster, router_dir, router, upstream, encoder, bench):
    cfg = make_config(router_dir, router.models, upstream.url, cluster[0].url)
    cfg["redis"]["cluster"] = True
    gw = ThreadGateway(cfg, encoder).start()
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=API_KEY, max_retries=0)
        probe = redis.Redis(port=cluster[0].port)
        tasks, owners = [], set()
        while len(owners) < 3:  # task IDs whose keys land on each of the three nodes
            tid = f"c-{uuid.uuid4().hex[:8]}"
            slot = probe.execute_command("CLUSTER KEYSLOT", f"llmr:{{{tid}}}:x")
            owner = sum(slot >= b for b in (5461, 10923))
            if owner not in owners:
                owners.add(owner)
                tasks.append(tid)
        prompts = bench.held_out["mbpp"][:MIN_SAMPLES]
        for tid in tasks:
            r = httpx.post(f"{gw.url}/v1/router/tasks/{tid}/samples", headers=AUTH,
                           json={"samples": [{"prompt": prompts[0], "labels": {router.models[0]: 1.0}}]})
            assert r.status_code == 200, r.text
            sources = []
            for p in prompts[1:]:
                raw = client.chat.completions.with_raw_response.create(
                    model="router", messages=chat(p), extra_headers={"X-Task-ID": tid})
                sources.append(raw.headers["x-router-decision"])
            assert sources == ["provisional"] * (MIN_SAMPLES - 2) + ["final"]
            state = httpx.get(f"{gw.url}/v1/router/tasks/{tid}", headers=AUTH).json()
            assert state["final"] and state["n"] == MIN_SAMPLES and state["labelled_samples"] == 1
            assert httpx.delete(f"{gw.url}/v1/router/tasks/{tid}", headers=AUTH).json()["deleted"] is True
        assert httpx.get(gw.url + "/health/readiness").json()["redis"] == "ok"
    finally:
        gw.stop()


def test_feedback_and_the_coverage_list_on_a_cluster(cluster, router_dir, router, upstream, encoder, bench):
    """The feedback scripts use one task's keys (one slot); the coverage list is a key of its own slot."""
    cfg = make_config(router_dir, router.models, upstream.url, cluster[0].url,
                      feedback={"min_outcomes": 1, "coverage_threshold": 1.0})
    cfg["redis"]["cluster"] = True
    gw = ThreadGateway(cfg, encoder).start()
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=API_KEY, max_retries=0)
        tid = f"cf-{uuid.uuid4().hex[:8]}"
        rids = []
        for p in bench.held_out["arc-challenge"][:MIN_SAMPLES + 1]:
            raw = client.chat.completions.with_raw_response.create(
                model="router", messages=chat(p), extra_headers={"X-Task-ID": tid})
            rids.append(raw.headers["x-router-request-id"])
        for rid, want in ((rids[-1], "counted"), (rids[-1], "repeat")):
            r = httpx.post(f"{gw.url}/v1/router/feedback", headers=AUTH, json={"request_id": rid, "correct": 0})
            assert r.status_code == 200 and r.json()["status"] == want, r.text
        state = httpx.get(f"{gw.url}/v1/router/tasks/{tid}", headers=AUTH).json()
        assert sum(o["counted"] for o in state["outcomes"].values()) == 1 and state["history"]
        listed = httpx.get(f"{gw.url}/v1/router/tasks?needs_feedback=true&limit=10000", headers=AUTH).json()
        assert tid in [t["task_id"] for t in listed["tasks"]]
        assert httpx.delete(f"{gw.url}/v1/router/tasks/{tid}", headers=AUTH).json()["deleted"] is True
        listed = httpx.get(f"{gw.url}/v1/router/tasks?needs_feedback=true&limit=10000", headers=AUTH).json()
        assert tid not in [t["task_id"] for t in listed["tasks"]]
    finally:
        gw.stop()
