"""The Redis fold keeps the local p sums when the router uses them, and equals router_core's batch."""

from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import pytest

from gateway.config import RedisSettings
from gateway.task_store import RedisTaskStore


@pytest.fixture()
def local_router(router):
    return replace(router, params=replace(router.params, p_estimator="local"))


async def test_fold_sums_local_p_and_decides_like_the_batch(local_router, redis_url, bench, encoder):
    assert local_router.agree is not None
    store = RedisTaskStore.from_url(redis_url, RedisSettings(), f"test-{uuid.uuid4().hex[:6]}",
                                   local_router.models, ttl_s=60)
    task = f"local-{uuid.uuid4().hex[:8]}"
    vecs = encoder.encode(bench.held_out["mbpp"][:6])
    try:
        agg = None
        for v in vecs:
            folded = await store.fold(task, local_router.observe(v[None, :]).aggregates())
            agg = folded.aggregates
        batch = local_router.observe(vecs).aggregates()
        assert agg.n == 6 and agg.sum_pl is not None
        assert agg.sum_pl == pytest.approx(batch.sum_pl)
        assert local_router.decide(agg).p_hat == pytest.approx(local_router.decide(batch).p_hat)
        _, peeked, _ = await store.peek(task)
        assert peeked.sum_pl == pytest.approx(batch.sum_pl)
        # the paper's estimator keeps no local sums
        plain = f"plain-{uuid.uuid4().hex[:8]}"
        folded = await store.fold(plain, replace(local_router, params=replace(
            local_router.params, p_estimator="nadaraya-watson")).observe(vecs[:1]).aggregates())
        assert folded.aggregates.sum_pl is None and np.isclose(folded.aggregates.n, 1)
    finally:
        await store.reset(task)
        await store.close()
