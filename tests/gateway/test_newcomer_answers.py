"""What a newcomer meets: several deployments per model, alias knobs and headers, clear answers."""

from __future__ import annotations

import httpx
import pytest

from gateway.redis_embedded import free_port
from router_core.decision import METHODS
from gateway_support import AUTH, ThreadGateway, chat, make_config, post


@pytest.fixture(scope="module")
def lb_gateway(router_dir, router, upstream, redis_url, encoder):
    """m0 has a dead deployment and a live one; m1 only a dead one; an eco alias with a cost floor."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    cfg = make_config(router_dir, router.models, upstream.url, redis_url,
                      upstreams={"balancing": "least-busy", "cooldown_s": 60, "allowed_fails": 1})
    m0, m1 = router.models[0], router.models[1]
    for entry in cfg["model_list"]:
        if entry["model_name"] == m1:
            entry["litellm_params"]["api_base"] = dead
    cfg["model_list"].append({"model_name": m0, "litellm_params": {"model": f"openai/{m0}", "api_base": dead,
                                                                  "api_key": "upstream-key"}})
    cfg["router"]["aliases"] = ["router", {"name": "router-eco", "epsilon": 0.1}]
    gw = ThreadGateway(cfg, encoder).start()
    yield gw, dead, m0, m1
    gw.stop()


def test_a_failing_deployment_is_skipped_and_reported_degraded(lb_gateway):
    gw, dead, m0, m1 = lb_gateway
    assert post(gw.url, {"model": m1, "messages": chat("hello")}).status_code == 502  # its only deployment is down
    for _ in range(8):
        r = post(gw.url, {"model": m0, "messages": chat("hello")})
        assert r.status_code == 200 and r.headers["x-router-model"] == m0  # the live deployment answers
    ready = httpx.get(gw.url + "/health/readiness", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    upstreams = ready.json()["upstreams"]
    assert upstreams["status"] == "degraded"
    degraded = {d["model"]: d for d in upstreams["degraded"]}
    assert degraded[m1]["api_base"] == dead
    # m0's dead deployment, once it failed, was cooled down: tried at most once in eight requests
    assert m0 not in degraded or degraded[m0]["failed_attempts"] == 1


def test_a_502_names_the_model_and_its_api_base_never_the_key(lb_gateway):
    gw, dead, m0, m1 = lb_gateway
    r = post(gw.url, {"model": m1, "messages": chat("hello")})
    assert r.status_code == 502
    msg = r.json()["error"]["message"]
    assert m1 in msg and dead in msg and "upstream-key" not in msg


def test_alias_knobs_and_headers(lb_gateway, task_id):
    gw, *_ = lb_gateway
    r = post(gw.url, {"model": "router-eco", "messages": chat("What is the capital of France?")})
    assert r.status_code == 200
    obj = r.json()["router"]
    assert obj["epsilon"] == 0.1 and obj["cost_unit"] == "usd_per_query" and "chosen_cost" in obj
    assert obj["routing_method"] in METHODS and r.headers["x-router-method"] == obj["method"]
    r = post(gw.url, {"model": "router", "messages": chat("hi")}, {"x-router-epsilon": "0.3"})
    assert r.status_code == 200 and r.json()["router"]["epsilon"] == 0.3
    for headers in ({"x-router-epsilon": "much"}, {"x-router-method": "magic"}):
        r = post(gw.url, {"model": "router", "messages": chat("hi")}, headers)
        assert r.status_code == 400 and r.json()["error"]["param"] in headers


def test_unknown_task_is_404_and_a_known_one_labels_its_sums_by_model(lb_gateway, router, task_id):
    gw, *_ = lb_gateway
    r = httpx.get(f"{gw.url}/v1/router/tasks/{task_id}", headers=AUTH, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found"
    assert post(gw.url, {"model": "router", "messages": chat("hello")}, {"X-Task-ID": task_id}).status_code == 200
    body = httpx.get(f"{gw.url}/v1/router/tasks/{task_id}", headers=AUTH, timeout=10).json()
    assert set(body["aggregates"]["sum_g"]) == set(router.models) and body["n"] == 1


def test_completions_ids_and_local_docs(lb_gateway):
    gw, *_ = lb_gateway
    r = post(gw.url, {"model": "router", "prompt": "Say hi"}, path="/v1/completions")
    assert r.status_code == 200 and r.json()["id"].startswith("cmpl-")
    docs = httpx.get(gw.url + "/docs", timeout=10).text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    redoc = httpx.get(gw.url + "/redoc", timeout=10).text
    assert "/docs-assets/redoc.standalone.js" in redoc and "cdn" not in redoc.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert httpx.get(f"{gw.url}/docs-assets/{asset}", timeout=10).status_code == 200
