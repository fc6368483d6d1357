"""The embedding batcher (gateway/embed_batcher.py) and router_core.embed.encode_each: every caller gets its
own vector, or its own error; an idle batcher embeds a lone prompt at once, a busy one collects for at most
its window. Correctness only, no timing."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from doubles import HashEncoder, prompts
from gateway.config import RouterSettings
from gateway.embed_batcher import EmbeddingBatcher
from gateway.routing import TaskRouter
from router_core.embed import encode_each


class RecordingEncoder(HashEncoder):
    """HashEncoder that records each call's texts and refuses any text containing ``BAD``."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.batches.append(list(texts))
        if any("BAD" in t for t in texts):
            raise ValueError("cannot embed BAD")
        return super().encode(texts)


def test_encode_each_returns_one_row_per_text_in_order():
    enc = RecordingEncoder()
    texts = ["math question 1", "a much longer prose question with many words", "code"]
    rows = encode_each(enc, texts)
    assert enc.batches == [texts]  # one call for all of them
    np.testing.assert_array_equal(np.vstack(rows), HashEncoder().encode(texts))


def test_encode_each_isolates_a_failing_text():
    enc = RecordingEncoder()
    rows = encode_each(enc, ["math 1", "BAD one", "code 2"])
    assert isinstance(rows[1], ValueError) and "BAD" in str(rows[1])
    np.testing.assert_array_equal(rows[0], HashEncoder().encode(["math 1"])[0])
    np.testing.assert_array_equal(rows[2], HashEncoder().encode(["code 2"])[0])
    assert encode_each(enc, []) == []
    (alone,) = encode_each(enc, ["BAD alone"])
    assert isinstance(alone, ValueError)


async def test_concurrent_callers_share_one_call_and_each_gets_its_own_vector():
    enc = RecordingEncoder()
    batcher = EmbeddingBatcher(partial(encode_each, enc), window_s=0.05, max_batch=64)
    texts = prompts("math", 5) + prompts("prose", 5)
    vecs = await asyncio.gather(*(batcher.embed(t) for t in texts))
    assert len(enc.batches) == 1 and sorted(enc.batches[0]) == sorted(texts)
    for t, v in zip(texts, vecs):
        np.testing.assert_array_equal(v, HashEncoder().encode([t])[0])


async def test_one_failing_input_fails_only_its_caller():
    enc = RecordingEncoder()
    batcher = EmbeddingBatcher(partial(encode_each, enc), window_s=0.05, max_batch=64)
    texts = ["code 1", "BAD prompt", "trivia 2"]
    out = await asyncio.gather(*(batcher.embed(t) for t in texts), return_exceptions=True)
    assert isinstance(out[1], ValueError)
    np.testing.assert_array_equal(out[0], HashEncoder().encode(["code 1"])[0])
    np.testing.assert_array_equal(out[2], HashEncoder().encode(["trivia 2"])[0])


async def test_a_whole_batch_failure_reaches_every_caller_and_the_batcher_goes_on():
    calls: list[list[str]] = []

    def broken(texts: Sequence[str]) -> list[np.ndarray]:
        calls.append(list(texts))
        raise RuntimeError("encoder is gone")

    batcher = EmbeddingBatcher(broken, window_s=0.01, max_batch=8)
    out = await asyncio.gather(batcher.embed("a"), batcher.embed("b"), return_exceptions=True)
    assert all(isinstance(x, RuntimeError) for x in out) and calls == [["a", "b"]]
    short = EmbeddingBatcher(lambda texts: [], window_s=0.0, max_batch=8)  # a result missing: an error, no hang
    with pytest.raises(RuntimeError, match="0 results for 1 texts"):
        await asyncio.wait_for(short.embed("a"), 5)


async def test_batches_are_bounded_and_the_overflow_forms_the_next():
    enc = RecordingEncoder()
    batcher = EmbeddingBatcher(partial(encode_each, enc), window_s=0.5, max_batch=4)
    texts = prompts("code", 10)
    # a full batch goes without waiting for the window; the last two wait for theirs: cap it at 30 s
    vecs = await asyncio.wait_for(asyncio.gather(*(batcher.embed(t) for t in texts)), 30)
    assert [len(b) for b in enc.batches] == [4, 4, 2]
    assert sorted(t for b in enc.batches for t in b) == sorted(texts)
    for t, v in zip(texts, vecs):
        np.testing.assert_array_equal(v, HashEncoder().encode([t])[0])


async def test_an_idle_batcher_embeds_a_lone_prompt_at_once():
    enc = RecordingEncoder()
    batcher = EmbeddingBatcher(partial(encode_each, enc), window_s=60.0, max_batch=32)
    vec = await asyncio.wait_for(batcher.embed("math alone"), 20)  # far less than the window
    assert enc.batches == [["math alone"]]
    np.testing.assert_array_equal(vec, HashEncoder().encode(["math alone"])[0])


async def test_right_after_a_batch_prompts_are_collected_for_at_most_the_window():
    enc = RecordingEncoder()
    loop = asyncio.get_running_loop()
    batcher = EmbeddingBatcher(partial(encode_each, enc), window_s=0.3, max_batch=32)
    await batcher.embed("math first")  # idle: at once
    start = loop.time()
    second = asyncio.ensure_future(batcher.embed("math second"))
    await asyncio.sleep(0.05)
    assert not second.done() and enc.batches == [["math first"]]  # busy: still collecting
    third = asyncio.ensure_future(batcher.embed("math third"))
    vecs = await asyncio.wait_for(asyncio.gather(second, third), 30)
    assert enc.batches == [["math first"], ["math second", "math third"]]
    assert loop.time() - start >= 0.3 - 0.01
    np.testing.assert_array_equal(vecs[1], HashEncoder().encode(["math third"])[0])


async def test_a_caller_that_went_away_is_left_out_of_the_batch():
    enc = RecordingEncoder()
    batcher = EmbeddingBatcher(partial(encode_each, enc), window_s=0.1, max_batch=32)
    gone = asyncio.ensure_future(batcher.embed("prose gone"))
    stays = asyncio.ensure_future(batcher.embed("prose stays"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.wait_for(stays, 30)
    assert enc.batches == [["prose stays"]]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        EmbeddingBatcher(lambda texts: [], window_s=-1, max_batch=4)
    with pytest.raises(ValueError):
        EmbeddingBatcher(lambda texts: [], window_s=0, max_batch=0)


async def test_task_router_routes_the_same_with_and_without_the_batcher(learned, encoder, store):
    from doubles import MODELS, MemoryTaskStore

    settings = RouterSettings(artifact=Path("unused"), min_samples=4)
    plain = TaskRouter(learned, encoder, store, settings)
    other = MemoryTaskStore(len(MODELS))
    batched = TaskRouter(learned, encoder, other, settings,
                         batcher=EmbeddingBatcher(partial(encode_each, encoder), window_s=0.01, max_batch=16))
    for task in ("math", "code"):
        texts = prompts(task, 4)
        a = [await plain.choose(f"t-{task}", t) for t in texts]
        b = await asyncio.gather(*(batched.choose(f"t-{task}", t) for t in texts))
        assert a[-1].source == "final" and sorted(c.source for c in b) == ["final"] + ["provisional"] * 3
        assert a[-1].decision.model == store.finals[f"t-{task}|"].model == other.finals[f"t-{task}|"].model
        assert store.sums[f"t-{task}"].n == other.sums[f"t-{task}"].n == 4
        np.testing.assert_allclose(store.sums[f"t-{task}"].sum_g, other.sums[f"t-{task}"].sum_g, rtol=1e-5)


def test_length_chunks_cover_every_row_in_order_within_their_bounds():
    from router_core.onnx_encoder import MAX_CHUNK_TOKENS, length_chunks

    rng = np.random.default_rng(5)
    for batch_size in (1, 8, 64):
        lengths = sorted(rng.integers(1, 257, size=300).tolist(), reverse=True)
        chunks = length_chunks(lengths, batch_size)
        assert [i for c in chunks for i in range(c.start, c.stop)] == list(range(300))  # all, once, in order
        for c in chunks:
            rows = c.stop - c.start
            assert 1 <= rows <= batch_size
            assert rows == 1 or rows * lengths[c.start] <= MAX_CHUNK_TOKENS
    # prompts of one length fill whole batches; a long prompt is not padded onto short ones
    assert [c.stop - c.start for c in length_chunks([20] * 70, 32)] == [32, 32, 6]
    assert length_chunks([250, 30, 29, 28], 64) == [slice(0, 1), slice(1, 4)]
