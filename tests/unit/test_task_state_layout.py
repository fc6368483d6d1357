"""The Redis layout of a task's state: the fold script's arguments and the hash they build."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.task_store import FOLD, TaskStateLayout
from router_core.state import TaskAggregates


def apply_fold(fields: dict[str, str], args: list) -> dict[str, str]:
    """What the FOLD script does with ARGV (after the TTL): HINCRBY / HINCRBYFLOAT per triple."""
    out = dict(fields)
    for i in range(1, len(args), 3):
        op, name, amount = args[i], args[i + 1], args[i + 2]
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
    assert args[0] == 60
    names = {args[i + 1] for i in range(1, len(args), 3)}
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
