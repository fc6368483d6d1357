"""TaskRouter, the gateway's per-task router, against an in-memory task state store."""

from __future__ import annotations

from pathlib import Path

import pytest

from doubles import prompts
from gateway.config import RouterSettings
from gateway.routing import SOURCES, TaskRouter

MIN_SAMPLES = 3


def make(learned, encoder, store, **settings) -> TaskRouter:
    return TaskRouter(learned, encoder, store, RouterSettings(artifact=Path("unused"), min_samples=MIN_SAMPLES,
                                                              **settings))


async def test_a_task_goes_provisional_then_final_then_cached(learned, encoder, store):
    tr = make(learned, encoder, store)
    texts = prompts("math", MIN_SAMPLES + 1)
    sources = [(await tr.choose("t1", t)).source for t in texts]
    assert sources == ["provisional"] * (MIN_SAMPLES - 1) + ["final", "cached"]
    # the final decision is router_core's own for the same prompts
    offline = learned.decide(learned.aggregate(encoder.encode(texts[:MIN_SAMPLES])))
    final = store.finals["t1|"]
    assert (final.model, final.method, final.s3) == (offline.model, offline.method, offline.s3)
    assert store.sums["t1"].n == MIN_SAMPLES  # a cached decision folds nothing more


async def test_a_cached_decision_needs_no_embedding(learned, encoder, store):
    tr = make(learned, encoder, store)
    for t in prompts("code", MIN_SAMPLES):
        await tr.choose("t2", t)
    calls = encoder.calls
    choice = await tr.choose("t2", "code question never seen")
    assert choice.source == "cached" and choice.decision == store.finals["t2|"] and encoder.calls == calls


async def test_without_a_task_the_prompt_is_routed_alone(learned, encoder, store):
    choice = await make(learned, encoder, store).choose(None, "math question number 3")
    assert choice.source == "instance" and choice.task_id is None and choice.decision.method == "instance"
    assert store.sums == {}
    bma = await make(learned, encoder, store, no_task="bma").choose(None, "math question number 3")
    assert bma.decision.model == learned.bma_model and bma.decision.method == "BMA"
    assert bma.order[0] == learned.bma_model and sorted(bma.order) == sorted(learned.models)


async def test_redis_down_fails_open_to_known_decisions_then_instance(learned, encoder, store):
    tr = make(learned, encoder, store)
    for t in prompts("code", MIN_SAMPLES):
        await tr.choose("known", t)
    store.down = True
    known = await tr.choose("known", "anything")
    assert (known.source, known.decision) == ("cached", store.finals["known|"])
    other = await tr.choose("unknown", "math question number 1")
    assert other.source == "instance" and other.task_id == "unknown"


async def test_a_lost_final_write_is_not_reported_final(learned, encoder, store):
    store.lose_final_writes = True
    tr = make(learned, encoder, store)
    sources = [(await tr.choose("t3", t)).source for t in prompts("math", MIN_SAMPLES)]
    assert sources[-1] == "provisional" and "t3|" not in store.finals


async def test_dry_run_and_task_state_change_nothing(learned, encoder, store):
    tr = make(learned, encoder, store)
    empty = await tr.task_state("t4")
    assert empty.decision is None and not empty.final and empty.aggregates.n == 0
    await tr.choose("t4", "prose question number 1")
    before = store.sums["t4"]
    dry = await tr.dry_run("t4", "prose question number 2")
    assert dry.source == "provisional" and store.sums["t4"] is before
    state = await tr.task_state("t4")
    assert state.aggregates.n == 1 and not state.final
    assert state.decision == learned.decide(before)


async def test_labelled_samples_fold_and_join_the_pool(learned, encoder, store):
    tr = make(learned, encoder, store)
    texts = prompts("trivia", 2)
    added = await tr.add_samples("t5", texts, [{"code": 1.0, "big": 0.0}, None])
    assert (added.folded, added.kept) == (2, 1) and added.choice is not None and added.choice.source == "provisional"
    assert added.labelled is not None and len(added.labelled.vectors) == 1
    assert store.sums["t5"].n == 2 and len(store.samples["t5"]) == 1


def test_sources_are_the_documented_ones():
    assert SOURCES == ("cached", "final", "provisional", "instance", "explicit", "revised", "explore")


@pytest.mark.parametrize("model", ["big", "code"])
def test_an_explicit_model_is_passed_through(learned, encoder, store, model):
    choice = make(learned, encoder, store).explicit(model)
    assert (choice.source, choice.decision.model, choice.order) == ("explicit", model, [model])
