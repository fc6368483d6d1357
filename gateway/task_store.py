"""The task state store: each task's running sums, final decision and labelled samples in Redis.

Shared by every gateway process. :class:`TaskStateLayout` is the one place that says how a
task's state is laid out (documented there); :class:`TaskStore` is the interface the routing
code uses, :class:`RedisTaskStore` its implementation.

Folding a prompt is one Lua script (atomic): it returns the final decision if one exists,
else adds the prompt's sums (g row, thresholded row, u, and the local p row when kept) to the
hash and returns the new sums. The first process to write ``final`` wins (``SET NX``); the
others read the winner back. A new artifact version means new keys, so older decisions are
never used.

If Redis fails, the store raises :class:`StoreUnavailable`, counts the failure, flips the
fail-open gauge, and does not touch Redis again for ``retry_after_s``; decisions seen before stay
available from an in-process LRU. The next successful call clears the state (reconnect is the
client's connection pool making a fresh connection).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, TypeVar

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from router_core.decision import Decision
from router_core.router import LabelledSamples
from router_core.state import TaskAggregates

from . import metrics
from .config import RedisSettings

log = logging.getLogger("gateway.task_store")
T = TypeVar("T")

# KEYS[1] sums hash, KEYS[2] final decision; ARGV: ttl, then the increments as one string of
# "op field amount" lines, op 'i' (integer) or 'f' (float): one argument instead of three per
# increment, since packing a command's arguments and parsing them is most of what a fold costs the
# gateway's CPU. The script knows no field: TaskStateLayout.fold_args names them.
FOLD = """
local final = redis.call('GET', KEYS[2])
if final then return {'final', final} end
for op, field, amount in string.gmatch(ARGV[2], '(%S+) (%S+) (%S+)\\n') do
  if op == 'i' then
    redis.call('HINCRBY', KEYS[1], field, amount)
  else
    redis.call('HINCRBYFLOAT', KEYS[1], field, amount)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {'agg', redis.call('HGETALL', KEYS[1])}
"""

# KEYS[1] samples list; ARGV: ttl, cap, items... (a script, not MULTI: cluster pipelines have no transactions)
ADD_SAMPLES = """
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return redis.call('LLEN', KEYS[1])
"""


class StoreUnavailable(Exception):
    """Redis cannot be used right now; callers route without shared state."""


@dataclass
class FoldResult:
    aggregates: TaskAggregates | None  # the sums after this fold (None if a final decision exists)
    final: Decision | None


@dataclass(frozen=True)
class TaskStateLayout:
    """How one task's state lies in Redis, for one artifact ``version`` (the one place that says so).

    Keys (one task's keys share a hash tag, so they live in one Redis Cluster slot)::

        <prefix>:{<task>}:<version>:agg     hash of the running sums          (TTL)
        <prefix>:{<task>}:<version>:final   JSON {version, decision, at}      (TTL)
        <prefix>:{<task>}:<version>:final:<variant>   the same, for other knobs (TTL)
        <prefix>:{<task>}:samples           list of labelled samples (JSON)   (TTL)
        <prefix>:{<task>}:<version>:out     hash of outcome feedback per model column i: ``c:<i>``
                                            (sum of scores), ``n:<i>`` (outcomes), ``a:<i>`` (sum of
                                            their agreements with the prompts' thresholded
                                            predictions), ``k:<i>`` (outcomes with a prediction) (TTL)
        <prefix>:{<task>}:<version>:history[:<variant>]   list of JSON decisions: the first
                                            final one, then each revision                  (TTL)
        <prefix>:{<task>}:<version>:req:<id>   hash: one routed request's record for feedback:
                                            ``m`` (served model column), ``v`` (variant), ``t``
                                            (time), ``g`` (the prompt's predictions, float16
                                            base64, when it was embedded), ``h`` (the served
                                            model's thresholded prediction, 1 or 0, likewise),
                                            ``p`` (the prompt,
                                            only with ``feedback.store_prompts``), ``r`` (the
                                            task's ``gen`` when recorded, absent while it has
                                            none), ``s`` (its score, once fed back)  (feedback.ttl_s)
        <prefix>:{<task>}:<version>:prompts sorted set: the request records that keep a prompt
                                            (``feedback.store_prompts``), by time, so that deleting
                                            the task deletes them                  (feedback.ttl_s)
        <prefix>:{<task>}:<version>:gen     integer: how many times the task was deleted; a request
                                            record whose ``r`` differs is of a deleted task and is
                                            treated as unknown  (feedback.ttl_s, renewed by every
                                            record: it outlives every record that carries it)
        <prefix>:coverage:<version>         sorted set: task -> its coverage (router_core.coverage),
                                            for ``GET /v1/router/tasks?needs_feedback=true`` (one
                                            key for all tasks; entries of forgotten or expired tasks
                                            are dropped when listed, the highest first past a cap)

    The hash's fields are named as :class:`router_core.state.TaskAggregates` names the sums:
    ``n``, ``sum_u``, and per model column ``i`` ``sum_g:<i>``, ``sum_gbar:<i>`` (integer counts,
    absent while 0) and ``sum_pl:<i>`` (only when the router keeps the local p estimate).
    :meth:`fold_args` builds the fold script's arguments from a :class:`TaskAggregates`,
    :meth:`aggregates` reads the hash back into one.

    The sums are the task's whatever the routing knobs; a final decision is per set of knobs
    (``variant``: '' for the ``router`` section's, e.g. ``e0.05`` for an alias with a cost floor,
    see :class:`gateway.knobs.Knobs`).
    """

    prefix: str
    version: str
    n_models: int

    def key(self, task: str, name: str, variant: str = "") -> str:
        """``agg``, ``final`` or ``history`` (of ``variant``), ``out``, ``gen``, ``prompts`` or ``samples``
        of ``task``."""
        if name == "samples":
            return f"{self.prefix}:{{{task}}}:samples"
        suffix = f":{variant}" if variant and name in ("final", "history") else ""
        return f"{self.prefix}:{{{task}}}:{self.version}:{name}{suffix}"

    def coverage_key(self) -> str:
        """Every task's coverage (not a task's key: its own slot in a Redis Cluster)."""
        return f"{self.prefix}:coverage:{self.version}"

    def request_key(self, task: str, request: str) -> str:
        """One routed request's record (``request``: the random part of its ID)."""
        return f"{self.prefix}:{{{task}}}:{self.version}:req:{request}"

    def outcomes(self, fields: dict[str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(sum of scores, outcomes, sum of agreements with the prompts' predictions, outcomes with a
        prediction) per model column from the task's ``out`` hash."""
        m = range(self.n_models)
        return tuple(np.array([float(fields.get(f"{name}:{i}", 0.0)) for i in m])  # type: ignore[return-value]
                     for name in ("c", "n", "a", "k"))

    def fold_args(self, ttl_s: int, delta: TaskAggregates) -> list[Any]:
        """The fold script's ARGV: the TTL, then the increments as "op field amount" lines
        (:func:`fold_increments` reads them back)."""
        lines = [f"i n {int(delta.n)}", f"f sum_u {float(delta.sum_u)!r}"]
        for i in range(self.n_models):
            lines.append(f"f sum_g:{i} {float(delta.sum_g[i])!r}")
            if int(delta.sum_gbar[i]) != 0:
                lines.append(f"i sum_gbar:{i} {int(delta.sum_gbar[i])}")
            if delta.sum_pl is not None:
                lines.append(f"f sum_pl:{i} {float(delta.sum_pl[i])!r}")
        return [ttl_s, "".join(line + "\n" for line in lines)]

    def aggregates(self, fields: dict[str, str]) -> TaskAggregates:
        """The task's sums from its hash (an empty hash: no prompts yet, either kind of sums)."""
        m = range(self.n_models)
        g = np.array([float(fields.get(f"sum_g:{i}", 0.0)) for i in m])
        gbar = np.array([float(fields.get(f"sum_gbar:{i}", 0.0)) for i in m])
        pl = None
        if "sum_pl:0" in fields or not fields:
            pl = np.array([float(fields.get(f"sum_pl:{i}", 0.0)) for i in m])
        return TaskAggregates(int(fields.get("n", 0)), g, gbar, float(fields.get("sum_u", 0.0)), pl)


def fold_increments(packed: str) -> list[tuple[str, str, str]]:
    """The (op, field, amount) increments of a fold's packed argument, as the script reads them."""
    return [(op, field, amount) for op, field, amount in (line.split(" ") for line in packed.splitlines())]


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def encode_sample(vector: np.ndarray, labels: dict[str, float]) -> str:
    return json.dumps({"v": base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode(),
                       "labels": labels})


def decode_samples(raw: list[Any], models: list[str]) -> LabelledSamples | None:
    if not raw:
        return None
    col = {m: j for j, m in enumerate(models)}
    vecs, labs = [], []
    for item in raw:
        rec = json.loads(item)
        vecs.append(np.frombuffer(base64.b64decode(rec["v"]), dtype=np.float32))
        row = np.full(len(models), np.nan, dtype=np.float32)
        for m, v in rec["labels"].items():
            if m in col:
                row[col[m]] = v
        labs.append(row)
    return LabelledSamples(np.vstack(vecs), np.vstack(labs))


class TaskStore(Protocol):
    """What the routing code (:class:`gateway.routing.TaskRouter`) needs of a task state store.

    Every coroutine raises :class:`StoreUnavailable` when the state cannot be reached.
    """

    fail_open: bool
    last_error: str | None

    async def ping(self) -> bool: ...

    async def final(self, task: str, variant: str = "") -> Decision | None:
        """The task's final decision (for the knobs ``variant`` names), if one was stored."""
        ...

    def local_final(self, task: str, variant: str = "") -> Decision | None:
        """A final decision this process has seen (no I/O; used while failing open)."""
        ...

    async def peek(self, task: str, variant: str = "") -> tuple[Decision | None, TaskAggregates,
                                                                LabelledSamples | None]:
        """The final decision (if any), the current sums and the labelled samples, unchanged."""
        ...

    async def labelled(self, task: str) -> LabelledSamples | None: ...

    async def fold(self, task: str, delta: TaskAggregates, variant: str = "") -> FoldResult:
        """Add ``delta`` to the task's sums unless the variant's decision is final (then return that)."""
        ...

    async def set_final(self, task: str, decision: Decision, variant: str = "") -> tuple[Decision | None, bool]:
        """Store ``decision`` as final unless another process did first.

        Returns (the stored decision, whether it is ``decision``); (None, False) when neither
        storing nor reading back a final decision succeeded.
        """
        ...

    async def add_samples(self, task: str, vectors: np.ndarray, labels: list[dict[str, float]]) -> int:
        """Append labelled samples (capped, newest kept); returns how many the task has."""
        ...

    async def reset(self, task: str, variants: list[str] | None = None) -> int:
        """Forget the task's routing state (its final decisions of ``variants`` too); returns how many
        keys went."""
        ...

    async def close(self) -> None: ...


class RedisTaskStore:
    """:class:`TaskStore` in Redis for one router artifact (``version``) and its ``models``."""

    def __init__(self, client: aioredis.Redis | RedisCluster, settings: RedisSettings, version: str, models: list[str],
                 ttl_s: int, max_samples: int = 200, pending_ttl_s: int | None = None) -> None:
        self.client = client
        self.max_samples = max_samples
        self.settings = settings
        self.version = version
        self.models = list(models)
        self.ttl_s = ttl_s  # a final decision (and, once final, the sums behind it)
        self.pending_ttl_s = pending_ttl_s or ttl_s  # the sums of a task not yet final, from its last prompt
        self.layout = TaskStateLayout(settings.key_prefix, version, len(self.models))
        self._fold = client.register_script(FOLD)
        self._add_samples = client.register_script(ADD_SAMPLES)
        # final decisions this process has seen, with the stored record they were decoded from (None: not
        # read back): the fail-open fallback, and a cached path that reads the same record again skips decoding it
        self._lru: OrderedDict[str, tuple[str | bytes | None, Decision]] = OrderedDict()
        self._down_until = 0.0
        self.fail_open = False
        self.last_error: str | None = None

    @classmethod
    def from_url(cls, url: str, settings: RedisSettings, version: str, models: list[str], ttl_s: int,
                 max_samples: int = 200, pending_ttl_s: int | None = None) -> "RedisTaskStore":
        timeout = settings.socket_timeout_s
        client: aioredis.Redis | RedisCluster
        if settings.cluster:
            client = RedisCluster.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           decode_responses=True, health_check_interval=30)
        else:
            client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                             decode_responses=True, health_check_interval=30)
        return cls(client, settings, version, models, ttl_s, max_samples, pending_ttl_s)

    def key(self, task: str, name: str, variant: str = "") -> str:
        return self.layout.key(task, name, variant)

    # -- failure handling -----------------------------------------------------------------
    async def call(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` (Redis calls) under the store's failure handling: StoreUnavailable when Redis
        cannot be used (for modules that keep their own keys in this layout, gateway.feedback_store)."""
        return await self._call(operation, fn)

    async def _call(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        if self.fail_open and time.monotonic() < self._down_until:
            raise StoreUnavailable(self.last_error or "redis unavailable")
        try:
            result = await fn()
        except (RedisError, RedisClusterException, OSError) as exc:
            metrics.REDIS_ERRORS.labels(operation).inc()
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._down_until = time.monotonic() + self.settings.retry_after_s
            if not self.fail_open:
                log.warning("redis unavailable (%s); failing open: per-instance routing and "
                            "in-process decisions until it is back", self.last_error)
                self.fail_open = True
                metrics.REDIS_FAIL_OPEN.set(1)
                await self._drop_connections()
            raise StoreUnavailable(self.last_error) from exc
        if self.fail_open:
            log.warning("redis reachable again; shared decisions resumed")
            self.fail_open = False
            self.last_error = None
            metrics.REDIS_FAIL_OPEN.set(0)
        return result

    async def _drop_connections(self) -> None:
        """Close every pooled connection, so that none opened before the failure is used after it:
        a connection to a Redis that has since restarted fails on first use, which would open a
        second fail-open window after Redis is back."""
        if isinstance(self.client, RedisCluster):  # the cluster client re-reads its nodes after errors
            return
        try:
            await self.client.connection_pool.disconnect()
        except Exception as exc:  # best effort: the connections are being dropped anyway
            log.debug("dropping redis connections: %s", exc)

    def remember(self, task: str, decision: Decision, variant: str = "", raw: str | bytes | None = None) -> None:
        key = f"{task}|{variant}"
        self._lru[key] = (raw, decision)
        self._lru.move_to_end(key)
        while len(self._lru) > self.settings.local_cache_size:
            self._lru.popitem(last=False)

    def local_final(self, task: str, variant: str = "") -> Decision | None:
        seen = self._lru.get(f"{task}|{variant}")
        return seen[1] if seen is not None else None

    def _decode_final(self, task: str, raw: str | bytes | None, variant: str = "") -> Decision | None:
        if raw is None:
            return None
        seen = self._lru.get(f"{task}|{variant}")
        if seen is not None and seen[0] == raw:  # the record read last time: decoding it again gives the same
            decision = seen[1]
        else:
            rec = json.loads(raw)
            if rec.get("version") != self.version:
                return None
            decision = Decision.from_dict(rec["decision"])
        self.remember(task, decision, variant, raw)
        return decision

    # -- operations -----------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            return bool(await self._call("ping", self.client.ping))
        except StoreUnavailable:
            return False

    async def final(self, task: str, variant: str = "") -> Decision | None:
        raw = await self._call("get_final", lambda: self.client.get(self.key(task, "final", variant)))
        return self._decode_final(task, raw, variant)

    async def peek(self, task: str, variant: str = "") -> tuple[Decision | None, TaskAggregates,
                                                                LabelledSamples | None]:
        """The final decision (if any), the current sums and the labelled samples: one round trip."""
        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.key(task, "final", variant))
            pipe.hgetall(self.key(task, "agg"))
            pipe.lrange(self.key(task, "samples"), 0, -1)
            return await pipe.execute()

        raw_final, fields, samples = await self._call("peek", run)
        return (self._decode_final(task, raw_final, variant), self.layout.aggregates(fields),
                decode_samples(samples, self.models))

    async def labelled(self, task: str) -> LabelledSamples | None:
        raw = await self._call("samples", lambda: self.client.lrange(self.key(task, "samples"), 0, -1))
        return decode_samples(raw, self.models)

    async def fold(self, task: str, delta: TaskAggregates, variant: str = "") -> FoldResult:
        """Add ``delta`` (one prompt or a batch) to the task's sums, unless the variant's decision is final."""
        args = self.layout.fold_args(self.pending_ttl_s, delta)
        keys = [self.key(task, "agg"), self.key(task, "final", variant)]
        kind, payload = await self._call("fold", lambda: self._fold(keys=keys, args=args))
        if _s(kind) == "final":
            return FoldResult(None, self._decode_final(task, _s(payload), variant))
        return FoldResult(self.layout.aggregates(_pairs(payload)), None)

    async def set_final(self, task: str, decision: Decision, variant: str = "") -> tuple[Decision | None, bool]:
        """Store ``decision`` as final unless another process did first; returns (winner, ours).

        When ``SET NX`` loses and the read-back finds nothing (the winner expired or was deleted
        in between) the write is tried again; (None, False) if that never settles.
        """
        raw = json.dumps({"version": self.version, "decision": decision.to_dict(), "at": time.time()})
        key = self.key(task, "final", variant)

        async def run() -> tuple[bool, str | bytes | None]:
            for _ in range(3):
                if await self.client.set(key, raw, nx=True, ex=self.ttl_s):
                    await self.client.expire(self.key(task, "agg"), self.ttl_s)  # the sums behind it live as long
                    return True, None
                existing = await self.client.get(key)
                if existing is not None:
                    return False, existing
            return False, None

        ours, existing = await self._call("set_final", run)
        if ours:
            self.remember(task, decision, variant)
            return decision, True
        return self._decode_final(task, existing, variant), False

    async def add_samples(self, task: str, vectors: np.ndarray, labels: list[dict[str, float]]) -> int:
        """Append labelled samples (capped, newest kept); returns how many the task has."""
        items = [encode_sample(v, lab) for v, lab in zip(vectors, labels)]
        args: list[str | int] = [self.ttl_s, max(1, self.max_samples), *items]
        return int(await self._call("add_samples", lambda: self._add_samples(keys=[self.key(task, "samples")],
                                                                            args=args)))

    async def reset(self, task: str, variants: list[str] | None = None) -> int:
        """Forget the task's routing state (its sums, samples and final decisions: the default's and
        those of ``variants``); returns how many keys went. Its feedback state (outcomes, histories,
        request records, coverage) is :meth:`gateway.feedback_store.FeedbackStore.forget`'s, called
        after this one (the tasks API's ``DELETE`` does both)."""
        names = ["", *(variants or [])]
        for v in names:
            self._lru.pop(f"{task}|{v}", None)
        keys = [self.key(task, "agg"), self.key(task, "samples"), *(self.key(task, "final", v) for v in names)]
        return int(await self._call("reset", lambda: self.client.delete(*keys)))

    async def close(self) -> None:
        await self.client.aclose()
