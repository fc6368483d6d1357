"""Outcome feedback in Redis: request records, idempotent outcome counts, revision by compare-and-set.

The keys are :class:`gateway.task_store.TaskStateLayout`'s (``req:<id>``, ``out``, ``history``,
``gen``, ``prompts``, next to the task's other keys, so one task's keys stay in one Redis Cluster
slot); this module holds the five scripts that use them. Each is atomic, so every gateway process on
the same Redis agrees:

- recording a request is one script (``HSET`` + ``EXPIRE``: a record never outlives ``ttl_s``);
  it stamps the record with the task's deletion generation (``gen``) and renews that key's TTL; a
  record that keeps the prompt is also indexed in the task's ``prompts`` (trimmed to ``ttl_s``);
- counting an outcome sets the record's score with ``HSETNX`` and only then adds it to the task's
  counts, so a repeated (or concurrent) feedback for one request never counts twice; a record of
  another generation (its task was deleted since) is unknown, like an expired one;
- forgetting a task's feedback (the tasks API's ``DELETE``) bumps its generation and deletes its
  outcomes and histories in one script, then the records that kept a prompt (a chunk per script,
  only those of an older generation), then drops its coverage entry;
- a revision replaces the final decision only if it is still the one the revision was computed
  from (same model and revision count): of two processes revising at once, one wins and the other
  finds the decision changed.

Failures raise :class:`gateway.task_store.StoreUnavailable` (the task store's failure handling).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from router_core.decision import Decision
from router_core.scores import threshold

from .task_store import RedisTaskStore

# KEYS[1] request record, KEYS[2] the task's generation, KEYS[3] its index of records that keep a
# prompt; ARGV: ttl, now, the request's random part if its record keeps a prompt (else ''), then
# field/value pairs. The generation's TTL is renewed so that it outlives every record stamped with it
# (a generation that expired first would read as none, and would turn that record unknown). The index
# (a sorted set by time) drops what is older than ttl, so it is bounded like the records.
RECORD = """
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local gen = redis.call('GET', KEYS[2])
if gen then
  redis.call('HSET', KEYS[1], 'r', gen)
  if redis.call('TTL', KEYS[2]) < tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[1]))
  redis.call('EXPIRE', KEYS[3], ARGV[1])
end
return 1
"""

# KEYS[1] request record, KEYS[2] the task's outcome counts, KEYS[3] its generation; ARGV: score,
# counts TTL, the served model's thresholded prediction where the record has none ('' if unknown).
# Returns the status, the record's fields (m, v, e, l: what the revision needs; h) and the task's
# counts after it. A record of an older generation is of a deleted task: unknown. Where the prediction
# is known, the outcome's agreement with it (the score where it is 1, 1 - score where 0) counts too.
ADD_OUTCOME = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
if (redis.call('HGET', KEYS[1], 'r') or '') ~= (redis.call('GET', KEYS[3]) or '') then return {'unknown'} end
local rec = redis.call('HMGET', KEYS[1], 'm', 'v', 'e', 'l', 'h')
for i = 1, 5 do if not rec[i] then rec[i] = '' end end
if redis.call('HSETNX', KEYS[1], 's', ARGV[1]) == 0 then
  return {'repeat', rec, redis.call('HGETALL', KEYS[2])}
end
redis.call('HINCRBYFLOAT', KEYS[2], 'c:' .. rec[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'n:' .. rec[1], 1)
local h = rec[5]
if h == '' then h = ARGV[3] end
if h ~= '' then
  local a = tonumber(ARGV[1])
  if h == '0' then a = 1 - a end
  redis.call('HINCRBYFLOAT', KEYS[2], 'a:' .. rec[1], tostring(a))
  redis.call('HINCRBY', KEYS[2], 'k:' .. rec[1], 1)
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {'counted', rec, redis.call('HGETALL', KEYS[2])}
"""

# KEYS[1] final decision, KEYS[2] history; ARGV: expected model, expected revision, the new final
# record, the first decision's history entry, the revision's entry, TTL. 1 when applied.
REVISE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
local d = rec['decision']
if d['model'] ~= ARGV[1] or (tonumber(d['revision']) or 0) ~= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[6])
if redis.call('LLEN', KEYS[2]) == 0 then redis.call('RPUSH', KEYS[2], ARGV[4]) end
redis.call('RPUSH', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 1
"""

# KEYS[1] the task's generation, then the keys to delete (its outcomes, its histories); ARGV: the
# records' TTL. Returns how many keys went (the generation not counted).
FORGET = """
redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local n = 0
for i = 2, #KEYS do n = n + redis.call('DEL', KEYS[i]) end
return n
"""

# KEYS[1] the task's generation, KEYS[2] its index of records that keep a prompt, then request records;
# ARGV: those records' index members. Deletes each record of an older generation (a deleted task's;
# one that expired is only dropped from the index); a record of the current generation stays. Returns
# how many records went and how many stayed.
FORGET_PROMPTS = """
local gen = redis.call('GET', KEYS[1]) or ''
local gone, kept = 0, 0
for i = 3, #KEYS do
  if (redis.call('HGET', KEYS[i], 'r') or '') ~= gen then
    gone = gone + redis.call('UNLINK', KEYS[i])
    redis.call('ZREM', KEYS[2], ARGV[i - 2])
  else
    kept = kept + 1
  end
end
return {gone, kept}
"""

PROMPT_CHUNK = 500  # records deleted per script call when a task that kept prompts is forgotten


def predicted_right(predictions: np.ndarray, model: int) -> int:
    """A record's ``h``: 1 where the prompt's thresholded prediction for ``model`` is "right", else 0."""
    return int(threshold(np.asarray(predictions, dtype=np.float64))[model])

Status = Literal["counted", "repeat", "unknown"]


@dataclass(frozen=True)
class Outcomes:
    """A task's outcomes per model column: the sum of scores and how many; the sum of their agreements
    with the prompts' thresholded predictions and how many had one (``judged``)."""

    correct: np.ndarray
    counted: np.ndarray
    agree: np.ndarray
    judged: np.ndarray

    def by_model(self, models: list[str]) -> dict[str, dict[str, float]]:
        return {m: {"correct": round(float(c), 6), "counted": int(n), "agreed": round(float(a), 6),
                    "judged": int(k)}
                for m, c, n, a, k in zip(models, self.correct, self.counted, self.agree, self.judged) if n > 0}


@dataclass(frozen=True)
class Counted:
    """What counting one outcome found: the request's served model column, the knobs it was routed
    under (variant, epsilon, lambda) and the task's outcomes after it (``unknown``: no such record,
    or it expired)."""

    status: Status
    model: int = -1
    variant: str = ""
    epsilon: float | None = None
    lam: float | None = None
    outcomes: Outcomes | None = None


def first_entry(at: float | None, decision: Decision) -> dict[str, Any]:
    """The history entry of a task's first final decision (how the router made it)."""
    return {"at": at, "model": decision.model, "reason": f"final ({decision.method})",
            "evidence": {"n": decision.n, "scores": decision.scores, "p_hat": decision.p_hat}}


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


class FeedbackStore:
    """Request records, outcome counts, revisions and histories, on the task store's Redis."""

    def __init__(self, store: RedisTaskStore, ttl_s: int) -> None:
        self.store = store
        self.layout = store.layout
        self.ttl_s = ttl_s  # a request's record
        self._record = store.client.register_script(RECORD)
        self._add = store.client.register_script(ADD_OUTCOME)
        self._revise = store.client.register_script(REVISE)
        self._forget = store.client.register_script(FORGET)
        self._forget_prompts = store.client.register_script(FORGET_PROMPTS)

    async def record(self, task: str, request: str, model: int, variant: str, epsilon: float | None,
                     lam: float | None, predictions: np.ndarray | None, prompt: str | None) -> None:
        """Keep what a later outcome needs: the served model's column and the knobs (their variant and
        cost knobs), the prompt's predictions when it was embedded (float16: 2 bytes a model) and the
        served model's thresholded one, the prompt if given."""
        now = f"{time.time():.3f}"
        args: list[Any] = [self.ttl_s, now, request if prompt is not None else "", "m", model, "v", variant, "t", now]
        if epsilon is not None:
            args += ["e", repr(float(epsilon))]
        if lam is not None:
            args += ["l", repr(float(lam))]
        if predictions is not None:
            args += ["g", base64.b64encode(np.asarray(predictions, dtype=np.float16).tobytes()).decode(),
                     "h", predicted_right(predictions, model)]
        if prompt is not None:
            args += ["p", prompt]
        keys = [self.layout.request_key(task, request), self.layout.key(task, "gen"), self.layout.key(task, "prompts")]
        await self.store.call("feedback_record", lambda: self._record(keys=keys, args=args))

    async def add(self, task: str, request: str, score: float, predicted: int | None = None) -> Counted:
        """Count one outcome for a recorded request, once; ``predicted``: the served model's thresholded
        prediction for a record that has none (:meth:`unjudged_prompt`)."""
        keys = [self.layout.request_key(task, request), self.layout.key(task, "out"), self.layout.key(task, "gen")]
        args: list[str | int] = [repr(float(score)), self.store.ttl_s, "" if predicted is None else int(predicted)]
        res = await self.store.call("feedback_add", lambda: self._add(keys=keys, args=args))
        status = str(res[0])
        if status == "unknown":
            return Counted("unknown")
        model, variant, epsilon, lam = (str(x) for x in res[1][:4])
        return Counted("counted" if status == "counted" else "repeat", int(model), variant,
                       float(epsilon) if epsilon else None, float(lam) if lam else None,
                       Outcomes(*self.layout.outcomes(_pairs(res[2]))))

    async def unjudged_prompt(self, task: str, request: str) -> tuple[int, str] | None:
        """(served model column, prompt) of a recorded request that kept its prompt but has no prediction
        and no outcome yet; None otherwise (nothing to embed for it)."""
        fields = await self.store.call("feedback_record_read", lambda: self.store.client.hmget(
            self.layout.request_key(task, request), ["m", "h", "s", "p"]))
        model, predicted, scored, prompt = fields
        if model is None or predicted is not None or scored is not None or prompt is None:
            return None
        return int(model), str(prompt)

    async def outcomes(self, task: str) -> Outcomes:
        fields = await self.store.call("feedback_outcomes",
                                       lambda: self.store.client.hgetall(self.layout.key(task, "out")))
        return Outcomes(*self.layout.outcomes({str(k): str(v) for k, v in fields.items()}))

    async def final_record(self, task: str, variant: str) -> dict[str, Any] | None:
        """The variant's final decision as stored (``decision``, ``at``), under this artifact."""
        raw = await self.store.call("get_final", lambda: self.store.client.get(
            self.layout.key(task, "final", variant)))
        if raw is None:
            return None
        rec: dict[str, Any] = json.loads(raw)
        return rec if rec.get("version") == self.layout.version else None

    async def set_coverage(self, task: str, value: float, threshold: float, cap: int) -> int:
        """Keep the task's coverage (past ``cap`` tasks the best-covered go); how many are below
        ``threshold``."""
        key = self.layout.coverage_key()

        async def run() -> list[Any]:
            pipe = self.store.client.pipeline(transaction=False)
            pipe.zadd(key, {task: value})
            pipe.zcard(key)
            pipe.zcount(key, "-inf", f"({threshold}")
            return await pipe.execute()

        _, size, below = await self.store.call("coverage", run)
        if int(size) > cap:
            await self.store.call("coverage", lambda: self.store.client.zpopmax(key, int(size) - cap))
        return int(below)

    async def covered(self, below: float | None, limit: int) -> tuple[list[tuple[str, float]], int]:
        """Tasks with their coverage, lowest first (only those under ``below`` when given), whose final
        decision still exists (the others are dropped from the set); and how many are under ``below``."""
        key = self.layout.coverage_key()
        top = f"({below}" if below is not None else "+inf"
        raw = await self.store.call("coverage", lambda: self.store.client.zrangebyscore(
            key, "-inf", top, start=0, num=limit, withscores=True))
        rows: list[tuple[str, float]] = [(str(row[0]), float(row[1])) for row in raw]

        async def alive() -> list[Any]:
            pipe = self.store.client.pipeline(transaction=False)
            for task, _ in rows:
                pipe.exists(self.layout.key(task, "final"))
            return await pipe.execute()

        exists = await self.store.call("coverage", alive) if rows else []
        gone = [t for (t, _), e in zip(rows, exists) if not e]
        if gone:
            await self.store.call("coverage", lambda: self.store.client.zrem(key, *gone))
        count = await self.store.call("coverage", lambda: self.store.client.zcount(key, "-inf", top))
        return [row for row, e in zip(rows, exists) if e], int(count)

    async def forget(self, task: str, variants: list[str], threshold: float) -> tuple[int, int]:
        """Forget the task's feedback state: its outcomes, the histories of ``variants`` (and the
        default's), its request records and its coverage entry; (how many keys went, how many tasks
        are still below ``threshold``).

        Request records are outdated: their keys hold only the random part of a request ID, so finding
        all of a task's records would take a SCAN of the whole keyspace or an index per task that
        grows with every request. Instead the task's generation goes up by one (O(1), atomic with
        deleting its outcomes), and a record stamped with an older one counts as unknown (404, like an
        expired ID) until it expires after ``ttl_s``. Records that keep a prompt
        (``feedback.store_prompts``) are indexed per task, and those are deleted here, in chunks of
        ``PROMPT_CHUNK`` outside the generation's script (each chunk deletes only records of an older
        generation, so a request recorded meanwhile keeps its record): a deleted task's prompts do
        not stay in Redis.
        Call it after the task's final decisions are gone (:meth:`RedisTaskStore.reset`): a revision
        that lands in between then finds no decision to replace, and an outcome counted in between is
        deleted here. The coverage entry is in another slot (its own call); an entry written back by
        a concurrent revision is dropped when listed, as the task has no final decision."""
        names = ["", *variants]
        keys = [self.layout.key(task, "gen"), self.layout.key(task, "out"),
                *(self.layout.key(task, "history", v) for v in names)]
        gone = int(await self.store.call("feedback_forget", lambda: self._forget(keys=keys, args=[self.ttl_s])))
        gone += await self._forget_prompted(task)
        key = self.layout.coverage_key()

        async def uncover() -> list[Any]:
            pipe = self.store.client.pipeline(transaction=False)
            pipe.zrem(key, task)
            pipe.zcount(key, "-inf", f"({threshold}")
            return await pipe.execute()

        removed, below = await self.store.call("coverage", uncover)
        return gone + int(removed), int(below)

    async def _forget_prompted(self, task: str) -> int:
        """Delete the records of a forgotten task that keep a prompt (:meth:`forget`); how many went."""
        gen, index = self.layout.key(task, "gen"), self.layout.key(task, "prompts")
        gone = offset = 0
        while True:
            members = [str(m) for m in await self.store.call("feedback_forget", lambda: self.store.client.zrange(
                index, offset, offset + PROMPT_CHUNK - 1))]
            if not members:
                return gone
            keys = [gen, index, *(self.layout.request_key(task, m) for m in members)]
            went, kept = await self.store.call("feedback_forget",
                                               lambda: self._forget_prompts(keys=keys, args=members))
            gone, offset = gone + int(went), offset + int(kept)

    async def history(self, task: str, variant: str) -> list[dict[str, Any]]:
        """Every final decision of the variant, oldest first (the first one alone until a revision)."""
        async def run() -> list[Any]:
            pipe = self.store.client.pipeline(transaction=False)
            pipe.lrange(self.layout.key(task, "history", variant), 0, -1)
            pipe.get(self.layout.key(task, "final", variant))
            return await pipe.execute()

        raw, final = await self.store.call("feedback_history", run)
        if raw:
            return [json.loads(x) for x in raw]
        rec = json.loads(final) if final is not None else None
        if rec is None or rec.get("version") != self.layout.version:
            return []
        return [first_entry(rec.get("at"), Decision.from_dict(rec["decision"]))]

    async def revise(self, task: str, variant: str, record: dict[str, Any], new: Decision,
                     evidence: dict[str, Any]) -> bool:
        """Replace the final decision ``record`` by ``new`` unless another process changed it first."""
        old = Decision.from_dict(record["decision"])
        now = time.time()
        new_rec = json.dumps({"version": self.layout.version, "decision": new.to_dict(), "at": now})
        first = json.dumps(first_entry(record.get("at"), old))
        entry = json.dumps({"at": now, "model": new.model, "reason": "revised", "evidence": evidence})
        keys = [self.layout.key(task, "final", variant), self.layout.key(task, "history", variant)]
        args: list[str | int] = [old.model, old.revision, new_rec, first, entry, self.store.ttl_s]
        applied = bool(await self.store.call("feedback_revise", lambda: self._revise(keys=keys, args=args)))
        if applied:
            self.store.remember(task, new, variant)
        return applied
