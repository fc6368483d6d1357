"""Concurrent requests' prompts embedded together: one encoder call per batch, not one per request.

A fresh task's first prompts each need a sentence embedding. Embedded one by one (each in its own
thread), 32 concurrent requests run 32 small forward passes that fight over the cores; one forward
pass over a batch of 32 prompts costs far less than 32 single ones. While a batch is being embedded,
new prompts queue and form the next batch. Right after a batch (within one window), the batcher also
collects prompts for a short window (``embedding.batch_window_ms``, counted from the oldest waiting
prompt, so no prompt waits for it longer than that) or until ``embedding.batch_max`` are waiting.
An idle batcher embeds a prompt at once: a lone request pays no window (measured: a fixed window
added 5.5 ms at one connection on a quiet machine). Each batch is one call in a worker thread
(router_core.embed.encode_each: each caller gets its own row, or its own error).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Sequence

import numpy as np

#: embeds a batch: one row (or one exception) per text, in order (router_core.embed.encode_each)
EncodeEach = Callable[[Sequence[str]], Sequence["np.ndarray | BaseException"]]


class EmbeddingBatcher:
    """Embeds texts handed in by concurrent coroutines, batch by batch, on one event loop."""

    def __init__(self, encode_each: EncodeEach, window_s: float, max_batch: int) -> None:
        if window_s < 0 or max_batch < 1:
            raise ValueError("window_s must be >= 0 and max_batch >= 1")
        self.encode_each = encode_each
        self.window_s = window_s
        self.max_batch = max_batch
        self._waiting: list[tuple[str, asyncio.Future[np.ndarray], float]] = []
        self._full = asyncio.Event()  # set when max_batch texts are waiting
        self._worker: asyncio.Task[None] | None = None
        self._last_batch_end = float("-inf")  # monotonic time the last batch was embedded

    async def embed(self, text: str) -> np.ndarray:
        """The embedding of ``text`` (1-D float32), from the batch it joins; raises what embedding it raised."""
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._waiting.append((text, fut, time.monotonic()))
        if len(self._waiting) >= self.max_batch:
            self._full.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run())
        return await fut

    async def _run(self) -> None:
        """Form and embed batches until nobody waits."""
        while self._waiting:
            now = time.monotonic()
            busy = now - self._last_batch_end <= self.window_s  # under load: worth collecting a batch
            wait = self._waiting[0][2] + self.window_s - now
            if busy and wait > 0 and len(self._waiting) < self.max_batch:
                self._full.clear()
                try:
                    await asyncio.wait_for(self._full.wait(), wait)
                except TimeoutError:
                    pass
            batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            batch = [item for item in batch if not item[1].done()]  # callers that went away
            if batch:
                await self._embed(batch)
                self._last_batch_end = time.monotonic()

    async def _embed(self, batch: list[tuple[str, asyncio.Future[np.ndarray], float]]) -> None:
        try:
            results: Sequence[np.ndarray | BaseException] = await asyncio.to_thread(
                self.encode_each, [text for text, _, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"encoder returned {len(results)} results for {len(batch)} texts")
        except Exception as exc:  # the whole call failed: every caller of this batch hears of it
            results = [exc] * len(batch)
        for (_, fut, _), result in zip(batch, results):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)
