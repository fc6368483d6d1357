"""Per-task routing: provisional -> final -> cached, agreement with router_core, dry runs, samples, reset."""

from __future__ import annotations

import uuid

import httpx
import pytest

from gateway_support import AUTH, MIN_SAMPLES, TASKS, ThreadGateway, chat, make_config, offline_decision, post, send



def test_decision_becomes_final_at_min_samples_then_sticks(client, bench, router, encoder, task_id):
    prompts = bench.held_out["mbpp"][: MIN_SAMPLES + 3]
    seen = [send(client, p, task_id) for p in prompts]
    sources = [s for s, _, _ in seen]
    assert sources == ["provisional"] * (MIN_SAMPLES - 1) + ["final"] + ["cached"] * 3
    assert [info["n"] for _, _, info in seen[:MIN_SAMPLES]] == list(range(1, MIN_SAMPLES + 1))
    final_model = seen[MIN_SAMPLES - 1][1]
    assert all(model == final_model for _, model, _ in seen[MIN_SAMPLES:])
    # the gateway's final decision is router_core's decision over the same prompts
    assert final_model == offline_decision(router, encoder, prompts[:MIN_SAMPLES]).model


def test_tasks_whose_data_favour_different_models_get_different_models(client, bench, router, encoder):
    finals = {}
    for task in TASKS:
        tid = f"diff-{task}-{uuid.uuid4().hex[:8]}"
        prompts = bench.held_out[task][:MIN_SAMPLES]
        for p in prompts:
            source, model, _ = send(client, p, tid)
        assert source == "final"
        expected = offline_decision(router, encoder, prompts)
        assert model == expected.model, task
        finals[task] = model
    assert len(set(finals.values())) >= 2, finals


def test_without_task_id_each_prompt_is_routed_on_its_own(client, bench, router, encoder):
    for prompt in bench.held_out["arc-challenge"][:3]:
        source, model, _ = send(client, prompt, None)
        g, _ = router.predict(encoder.encode([prompt]))
        assert source == "instance"
        assert model == router.decide_instance(g[0], lam=300.0).model


def test_dry_run_equals_the_served_pick_and_changes_nothing(client, gateway, bench, task_id):
    prompts = bench.held_out["winogrande"][:MIN_SAMPLES + 1]
    for p in prompts[:2]:
        send(client, p, task_id)
    before = httpx.get(f"{gateway.url}/v1/router/tasks/{task_id}", headers=AUTH).json()
    dry = httpx.post(gateway.url + "/v1/router/route", headers=AUTH,
                     json={"task_id": task_id, "messages": chat(prompts[2])}).json()
    again = httpx.get(f"{gateway.url}/v1/router/tasks/{task_id}", headers=AUTH).json()
    assert before["n"] == again["n"] == 2
    source, model, info = send(client, prompts[2], task_id)
    assert (dry["router"]["decision"], dry["model"]) == (source, model)
    assert dry["router"]["scores"] == info["scores"]
    for p in prompts[3:]:
        source, model, _ = send(client, p, task_id)
    dry = httpx.post(gateway.url + "/v1/router/route", headers={**AUTH, "X-Task-ID": task_id},
                     json={"prompt": "anything"}).json()
    assert dry["router"]["decision"] == "cached" and dry["model"] == model
    # no task: the per-prompt pick
    dry = httpx.post(gateway.url + "/v1/router/route", headers=AUTH, json={"prompt": prompts[0]}).json()
    assert (dry["router"]["decision"], dry["model"]) == send(client, prompts[0], None)[:2]


def test_inspect_and_reset_a_task(client, gateway, bench, task_id):
    for p in bench.held_out["arc-challenge"][:MIN_SAMPLES]:
        _, model, _ = send(client, p, task_id)
    state = httpx.get(f"{gateway.url}/v1/router/tasks/{task_id}", headers=AUTH).json()
    assert state["n"] == MIN_SAMPLES and state["final"] is True and state["decision"]["model"] == model
    assert len(state["aggregates"]["sum_g"]) == 11
    deleted = httpx.delete(f"{gateway.url}/v1/router/tasks/{task_id}", headers=AUTH).json()
    assert deleted == {"task_id": task_id, "deleted": True}
    state = httpx.get(f"{gateway.url}/v1/router/tasks/{task_id}", headers=AUTH).json()
    assert state["error"]["code"] == "task_not_found"  # forgotten: nothing was routed for it any more
    assert send(client, bench.held_out["arc-challenge"][0], task_id)[0] == "provisional"


def test_labelled_samples_are_the_tasks_evidence(gateway, bench, router):
    """Labels weighed as what they are (docs/results.md, "A sixth labels candidate"): with the paper's method
    they do not move the neighbour scores, and enough of them measuring a clear difference revise the
    pick (method "labels", with the evidence); unlabelled samples leave the zero-label pick."""
    prompts = bench.held_out["mbpp"][:24]
    decisions = {}
    for kind in ("plain", "labelled"):
        tid = f"labels-{kind}-{uuid.uuid4().hex[:8]}"
        if kind == "labelled":  # the model the plain decision ranks last is right on all 24, every other wrong
            target = decisions["plain"]["ranking"][-1]
            labels = {m: (1.0 if m == target else 0.0) for m in router.models}
        r = httpx.post(f"{gateway.url}/v1/router/tasks/{tid}/samples", headers=AUTH,
                       json={"samples": [{"prompt": p, "labels": labels if kind == "labelled" else None}
                                         for p in prompts]})
        assert r.status_code == 200, r.text
        assert r.json()["folded"] == len(prompts)
        assert r.json()["labelled_samples"] == (len(prompts) if kind == "labelled" else 0)
        decisions[kind] = httpx.get(f"{gateway.url}/v1/router/tasks/{tid}", headers=AUTH).json()["decision"]
    plain, labelled = decisions["plain"], decisions["labelled"]
    assert plain["method"] in ("S3", "BMA-fallback") and plain["model"] != target
    assert labelled["s3"] == pytest.approx(plain["s3"])  # the labels did not join the pool
    assert labelled["model"] == target and labelled["method"] == "labels"
    assert labelled["evidence"]["to"] == target and labelled["evidence"]["outcomes"][target] == len(prompts)
    assert labelled["evidence"]["rule"] == "labels"  # the per-model posterior (router_core.labels)


def test_labels_after_the_final_decision_revise_it(gateway, bench, router):
    """Labelled samples that arrive once a task is final are weighed against its current pick: a
    clear lead of another model revises it (compare-and-set, history, x-router-decision revised on
    later requests); labels that agree with the pick leave it alone."""
    prompts = bench.held_out["mbpp"][:24]
    tid = f"late-labels-{uuid.uuid4().hex[:8]}"

    def samples(batch, labels):
        r = httpx.post(f"{gateway.url}/v1/router/tasks/{tid}/samples", headers=AUTH,
                       json={"samples": [{"prompt": p, "labels": labels} for p in batch]})
        assert r.status_code == 200, r.text
        return r.json()

    def state():
        return httpx.get(f"{gateway.url}/v1/router/tasks/{tid}", headers=AUTH).json()

    samples(prompts[:12], None)  # unlabelled: the zero-label decision, final at MIN_SAMPLES
    before = state()
    assert before["final"] and before["decision"].get("revision", 0) == 0
    picked = before["decision"]["model"]
    # labels that agree with the pick (it right, every other model wrong): no revision
    out = samples(prompts[12:16], {m: (1.0 if m == picked else 0.0) for m in router.models})
    assert out["labelled_samples"] == 4 and out["router"]["decision"] == "cached"
    assert state()["decision"]["model"] == picked
    # 20 more where the model the decision ranks last is right and every other wrong: revised to it
    target = before["decision"]["ranking"][-1]
    out = samples(prompts[4:24], {m: (1.0 if m == target else 0.0) for m in router.models})
    assert out["router"]["decision"] == "revised" and out["router"]["chosen_model"] == target
    after = state()
    assert after["decision"]["model"] == target and after["decision"]["method"] == "labels"
    assert after["decision"]["revision"] == 1
    history = after["history"]
    assert [h["model"] for h in history] == [picked, target]
    assert history[1]["reason"] == "revised" and history[1]["evidence"]["rule"] == "labels"
    assert history[1]["evidence"]["outcomes"][target] == 24
    # the next request is served by the revised decision
    r = httpx.post(f"{gateway.url}/v1/chat/completions", headers={**AUTH, "x-task-id": tid},
                   json={"model": "router", "messages": [{"role": "user", "content": prompts[0]}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-decision"] == "revised" and r.headers["x-router-model"] == target


def test_late_labels_revise_every_alias_decision(router_dir, router, bench, upstream, redis_url, encoder):
    """An alias with its own knobs keeps its own final decision; labels that arrive after it was made
    revise it too (under its knobs), next to the router section's."""
    cfg = make_config(router_dir, router.models, upstream.url, redis_url)
    cfg["router"]["aliases"] = ["router", {"name": "router-eco", "epsilon": 0.1}]
    gw = ThreadGateway(cfg, encoder).start()
    try:
        tid = f"late-labels-eco-{uuid.uuid4().hex[:8]}"
        prompts = bench.held_out["mbpp"][:24]
        r = httpx.post(f"{gw.url}/v1/router/tasks/{tid}/samples", headers=AUTH,
                       json={"samples": [{"prompt": p} for p in prompts[:12]]})
        assert r.status_code == 200, r.text
        r = post(gw.url, {"model": "router-eco", "messages": chat(prompts[0])}, {"x-task-id": tid})
        assert r.status_code == 200 and r.headers["x-router-decision"] == "final"  # the eco variant's own

        def decision(alias):
            return httpx.get(f"{gw.url}/v1/router/tasks/{tid}?model={alias}", headers=AUTH).json()["decision"]

        before = {a: decision(a) for a in ("router", "router-eco")}
        target = before["router"]["ranking"][-1]
        labels = {m: (1.0 if m == target else 0.0) for m in router.models}
        r = httpx.post(f"{gw.url}/v1/router/tasks/{tid}/samples", headers=AUTH,
                       json={"samples": [{"prompt": p, "labels": labels} for p in prompts]})
        assert r.status_code == 200, r.text
        for alias in ("router", "router-eco"):
            after = decision(alias)
            assert after["model"] == target and after["method"] == "labels", (alias, before[alias], after)
            assert after["evidence"]["rule"] == "labels"
        r = post(gw.url, {"model": "router-eco", "messages": chat(prompts[1])}, {"x-task-id": tid})
        assert r.headers["x-router-decision"] == "revised" and r.headers["x-router-model"] == target
    finally:
        gw.stop()


@pytest.mark.parametrize("body,param", [
    ({"samples": []}, "samples"),
    ({"samples": [{"prompt": "x", "labels": {"no-such-model": 1}}]}, "samples.0.labels"),
    ({"samples": [{"prompt": "x", "labels": {"claude-v1": 3}}]}, "samples.0.labels"),
])
def test_bad_samples_are_400(gateway, body, param):
    r = httpx.post(f"{gateway.url}/v1/router/tasks/t1/samples", headers=AUTH, json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param
