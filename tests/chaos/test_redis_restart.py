"""Redis SIGKILLed and restarted under a bounded load: no request fails, final decisions survive,
and once Redis answers again there is no second fail-open window (no stale pooled connection)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import httpx

WORKERS = 4


def routed(client: httpx.Client, chaos, task_id: str, prompt: str) -> httpx.Response:
    return client.post(chaos.url + "/v1/chat/completions", headers={**chaos.auth, "X-Task-ID": task_id},
                       json={"model": "router", "messages": [{"role": "user", "content": prompt}]})


def test_redis_killed_and_restarted_under_load(chaos) -> None:
    client = httpx.Client(timeout=30)
    # a task made final before the crash (and synced to the append-only file: appendfsync everysec)
    finished = f"chaos-final-{uuid.uuid4().hex[:8]}"
    for i in range(chaos.min_samples):
        assert routed(client, chaos, finished, f"Which is larger, {i} or {i + 1}?").status_code == 200
    decided = httpx.get(f"{chaos.url}/v1/router/tasks/{finished}", headers=chaos.auth).json()
    assert decided["final"]
    time.sleep(1.2)

    statuses: Counter[int] = Counter()
    sources: Counter[str] = Counter()
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(timeout=30) as c:
            i = 0
            while not stop.is_set():
                task = f"chaos-load-{worker}-{i // 3}"  # a new task every three prompts
                r = routed(c, chaos, task, f"Worker {worker} asks question number {i}.")
                statuses[r.status_code] += 1
                sources[r.headers.get("x-router-decision", "-")] += 1
                i += 1

    threads = [threading.Thread(target=load, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        chaos.redis.proc.kill()  # SIGKILL: no shutdown, no final save
        chaos.redis.proc.wait()
        time.sleep(2.0)
        errors_down = chaos.metric_sum("llm_router_redis_errors_total")
        chaos.restart_redis()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if httpx.get(chaos.url + "/health/readiness").json()["redis"] == "ok":
                break
            time.sleep(0.05)
        errors_back = chaos.metric_sum("llm_router_redis_errors_total")
        time.sleep(2.0)  # load continues on the recovered Redis
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    errors_after = chaos.metric_sum("llm_router_redis_errors_total")
    total = sum(statuses.values())
    after = routed(client, chaos, finished, "One more question after the restart.")
    print(f"\nredis SIGKILL + restart under {WORKERS} workers: {total} requests, statuses {dict(statuses)}, "
          f"decision sources {dict(sources)}; redis errors while down {errors_down:g}, "
          f"at recovery {errors_back:g}, after recovery +{errors_after - errors_back:g}; "
          f"task finalised before the crash: {after.headers.get('x-router-decision')} "
          f"{after.headers.get('x-router-model')}")
    assert total > 0 and statuses[200] == total, dict(statuses)
    assert errors_down > 0, "the kill was not noticed"
    assert errors_after == errors_back, "a second fail-open window after Redis came back"
    assert httpx.get(chaos.url + "/metrics").text.count("llm_router_redis_fail_open 1.0") == 0
    assert after.headers["x-router-decision"] == "cached"
    assert after.headers["x-router-model"] == decided["decision"]["model"]
