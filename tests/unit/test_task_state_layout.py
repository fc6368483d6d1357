"""The Redis layout of a task's state: the fold script's arguments and the hash they build."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.task_store import FOLD, TaskStateLayout, fold_increments
from router_core.state import TaskAggregates


def apply_fold(fields: dict[str, str], args: list) -> dict[str, str]:
    """What the FOLD script does with ARGV (after the TTL): HINCRBY / HINCRBYFLOAT per increment."""
    out = dict(fields)
    for op, name, amount in fold_increments(args[1]):
        old = out.get(name, "0")
        out[name] = str(int(old) + int(amount)) if op == "i" else repr(float(old) + float(amount))
    return out


@pytest.mark.parametrize("local", [False, True])
def test_folding_twice_reads_back_the_merged_sums(local):
    layout = TaskStateLayout("llmr", "v1", 3)
    a = TaskAggregates.from_rows(np.array([[0.9, 0.2, 0.6]]), np.array([0.3]),
                                 np.array([[0.7, 0.5, 0.6]]) if local else None)
    b = TaskAggregates.from_rows(np.array([[0.1, 0.8, 0.4], [0.7, 0.7, 0.2]]), np.array([0.2, 0.4]),
                                 np.array([[0.6, 0.6, 0.6], [0.5, 0.5, 0.5]]) if local else None)
    fields = apply_fold(apply_fold({}, layout.fold_args(60, a)), layout.fold_args(60, b))
    back = layout.aggregates(fields)
    want = a.merge(b)
    assert back.n == want.n == 3
    np.testing.assert_allclose(back.sum_g, want.sum_g)
    np.testing.assert_allclose(back.sum_gbar, want.sum_gbar)
    assert back.sum_u == pytest.approx(want.sum_u)
    if local:
        np.testing.assert_allclose(back.sum_pl, want.sum_pl)
    else:
        assert back.sum_pl is None


def test_one_name_per_quantity():
    layout = TaskStateLayout("llmr", "v1", 2)
    args = layout.fold_args(60, TaskAggregates.from_rows(np.array([[0.9, 0.1]]), np.array([0.5])))
    assert args[0] == 60 and len(args) == 2
    names = {name for _, name, _ in fold_increments(args[1])}
    assert names == {"n", "sum_u", "sum_g:0", "sum_g:1", "sum_gbar:0"}  # a zero count is not written
    assert not any(f"'{name}'" in FOLD for name in names)  # the script names no field


def test_an_empty_task_has_zero_sums_of_either_kind():
    agg = TaskStateLayout("llmr", "v1", 2).aggregates({})
    assert agg.n == 0 and agg.sum_u == 0.0 and agg.sum_pl is not None and not agg.sum_g.any()


def test_keys_share_the_task_hash_tag_and_carry_the_version():
    layout = TaskStateLayout("llmr", "abc123", 2)
    assert layout.key("t", "agg") == "llmr:{t}:abc123:agg"
    assert layout.key("t", "final") == "llmr:{t}:abc123:final"
    assert layout.key("t", "samples") == "llmr:{t}:samples"


def test_feedback_keys_share_the_task_slot_and_the_outcome_hash_reads_back():
    layout = TaskStateLayout("llmr", "v1", 3)
    keys = [layout.key("t1", "out"), layout.key("t1", "history"), layout.key("t1", "history", "e0.05"),
            layout.request_key("t1", "ab" * 16)]
    assert keys == ["llmr:{t1}:v1:out", "llmr:{t1}:v1:history", "llmr:{t1}:v1:history:e0.05",
                    "llmr:{t1}:v1:req:" + "ab" * 16]
    assert layout.key("t1", "out", "e0.05") == "llmr:{t1}:v1:out"  # outcomes are the task's, whatever the knobs
    correct, counted, agree, judged = layout.outcomes({"c:0": "1.5", "n:0": "2", "n:2": "1", "c:2": "0",
                                                       "a:0": "0.5", "k:0": "1"})
    assert correct.tolist() == [1.5, 0.0, 0.0] and counted.tolist() == [2.0, 0.0, 1.0]
    assert agree.tolist() == [0.5, 0.0, 0.0] and judged.tolist() == [1.0, 0.0, 0.0]


def test_request_ids_name_their_task_and_nothing_else_parses():
    from gateway.feedback import new_request_id, parse_request_id

    rid = new_request_id("my.task:1")
    head, task = parse_request_id(rid)
    assert task == "my.task:1" and len(head) == 32 and rid == f"{head}.my.task:1"
    assert len(new_request_id(None)) == 32 and parse_request_id(new_request_id(None)) is None
    for bad in ("", "x" * 32 + ".t", "ab" * 16, "AB" * 16 + ".t", "ab" * 16 + "."):
        assert parse_request_id(bad) is None, bad


def test_the_store_parses_replies_with_hiredis():
    """A fold's reply is the task's whole sums hash; redis-py's pure-Python parser made that half the
    fold's CPU (docs/performance.md), so the pinned ``hiredis`` must be what the store's connections use."""
    from gateway.config import RedisSettings
    from gateway.task_store import RedisTaskStore

    store = RedisTaskStore.from_url("redis://127.0.0.1:1", RedisSettings(), "v1", ["a", "b"], 60)
    conn = store.client.connection_pool.make_connection()
    assert type(conn._parser).__name__ == "_AsyncHiredisParser"


def test_a_fold_sends_its_increments_as_one_argument():
    layout = TaskStateLayout("llmr", "v1", 11)
    agg = TaskAggregates.from_rows(np.random.default_rng(0).random((1, 11)), np.array([0.4]),
                                   np.random.default_rng(1).random((1, 11)))
    args = layout.fold_args(60, agg)
    assert len(args) == 2  # the TTL and one string, whatever the number of models
    increments = fold_increments(args[1])
    assert len(increments) == 2 + 11 * 2 + int(np.count_nonzero(agg.sum_gbar))
    assert all(op in ("i", "f") and " " not in name for op, name, _ in increments)
    assert float(dict((n, a) for _, n, a in increments)["sum_g:3"]) == agg.sum_g[3]  # repr: exact round trip


def test_a_stored_decision_read_again_is_not_decoded_again():
    """The cached path reads the task's record on every request; the same record gives back the object
    decoded from it, a changed record (a revision, another version) is decoded anew."""
    import json

    from gateway.config import RedisSettings
    from gateway.task_store import RedisTaskStore
    from router_core.decision import Decision

    store = RedisTaskStore.from_url("redis://127.0.0.1:1", RedisSettings(), "v1", ["a", "b"], 60)
    first = Decision(model="a", method="S3", models=["a", "b"], ranking=["a", "b"], n=4, u=0.3)
    raw = json.dumps({"version": "v1", "decision": first.to_dict(), "at": 1.0})
    one = store._decode_final("t", raw)
    assert one == first and store._decode_final("t", raw) is one and store.local_final("t") is one
    assert store._decode_final("t", raw, "e0.05") is not one  # another variant's entry
    revised = json.dumps({"version": "v1", "decision": {**first.to_dict(), "model": "b"}, "at": 2.0})
    two = store._decode_final("t", revised)
    assert two.model == "b" and store.local_final("t") is two and store._decode_final("t", revised) is two
    assert store._decode_final("t", json.dumps({"version": "v0", "decision": first.to_dict()})) is None
