"""Benchmark data: prompts, tasks, the per-model correctness matrix and costs.

Two on-disk layouts are understood:

* the shared format: a folder with ``records.jsonl.gz`` (one JSON object per prompt) and
  ``models.json``;
* RouterBench's wide table (CSV or pickle): one 0/1 column per model, ``<model>|total_cost``
  columns, ``prompt`` and ``eval_name``.

Everything downstream works on :class:`BenchmarkData`, whose label matrix holds NaN where a
model has no label for a prompt.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

DEFAULT_THRESHOLD = 0.5
SHARED_DATA_ENV = "ROUTER_SHARED_DATA"


class DataError(ValueError):
    """Malformed benchmark input; the message names the file and line."""


@dataclass
class BenchmarkData:
    """Prompts of several tasks with per-model correctness (0/1, NaN = unlabelled)."""

    name: str
    models: list[str]
    prompts: list[str]  # the text that is embedded (``question`` when present)
    tasks: np.ndarray  # (n,) object array: held-out unit per prompt
    labels: np.ndarray  # (n, M) float32 in {0, 1} or NaN
    costs: np.ndarray | None = None  # (n, M) USD per query, NaN where unknown
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # other per-prompt fields
    model_info: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if self.labels.shape != (n, len(self.models)):
            raise DataError(f"{self.name}: label matrix {self.labels.shape} does not match "
                            f"{n} prompts x {len(self.models)} models")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def task_names(self) -> list[str]:
        """Tasks in first-seen order."""
        seen: dict[str, None] = {}
        for t in self.tasks:
            seen.setdefault(str(t), None)
        return list(seen)

    def size_costs(self) -> np.ndarray | None:
        """Model size (billions of parameters, ``params_b`` in models.json) as the cost where the data
        has no prices; closed models (no published size) count as the largest known size."""
        by_name = {m.get("name"): m.get("params_b") for m in self.model_info}
        vals = [by_name.get(m) for m in self.models]
        sizes = np.array([np.nan if v is None else float(v) for v in vals])
        if np.all(np.isnan(sizes)):
            return None
        return np.where(np.isnan(sizes), np.nanmax(sizes), sizes)

    def mean_cost(self) -> np.ndarray | None:
        """Mean USD per query for each model, or None when the data has no costs."""
        if self.costs is None:
            return None
        with np.errstate(invalid="ignore"):
            means = np.nanmean(self.costs, axis=0)
        return None if np.all(np.isnan(means)) else means

    def with_holdout(self, field_name: str) -> "BenchmarkData":
        """The same data with ``tasks`` replaced by another per-prompt field (e.g. benchmark)."""
        if field_name == "task":
            return self
        if field_name not in self.groups:
            raise DataError(f"{self.name}: no per-prompt field {field_name!r} "
                            f"(have: task, {', '.join(sorted(self.groups))})")
        return self.subset(np.arange(len(self)), tasks=self.groups[field_name])

    def subset(self, idx: np.ndarray | Sequence[int], tasks: np.ndarray | None = None) -> "BenchmarkData":
        """Rows ``idx`` (and optionally new task names for the whole set before selection)."""
        idx = np.asarray(idx, dtype=np.int64)
        base_tasks = self.tasks if tasks is None else tasks
        return BenchmarkData(
            name=self.name,
            models=list(self.models),
            prompts=[self.prompts[i] for i in idx],
            tasks=base_tasks[idx],
            labels=self.labels[idx],
            costs=None if self.costs is None else self.costs[idx],
            groups={k: v[idx] for k, v in self.groups.items()},
            model_info=self.model_info,
        )

    def sample_tasks(self, tasks: Iterable[str], per_task: int | None = None, seed: int = 0) -> "BenchmarkData":
        """A smaller set: the named tasks, at most ``per_task`` prompts each (for tests and demos)."""
        rng = np.random.default_rng(seed)
        keep: list[int] = []
        for t in tasks:
            rows = np.flatnonzero(self.tasks == t)
            if len(rows) == 0:
                raise DataError(f"{self.name}: no task {t!r}")
            if per_task is not None and len(rows) > per_task:
                rows = np.sort(rng.choice(rows, per_task, replace=False))
            keep.extend(rows.tolist())
        return self.subset(np.array(keep))


def binarise(value: Any, threshold: float, where: str) -> float:
    """A correctness value as 0/1: booleans and 0/1 pass, graded scores compare to ``threshold``."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        v = float(value)
        if np.isnan(v):
            return np.nan
        if not 0.0 <= v <= 1.0:
            raise DataError(f"{where}: correctness {value!r} is outside [0, 1]")
        if v in (0.0, 1.0):
            return v
        return 1.0 if v >= threshold else 0.0
    if value is None:
        return np.nan
    raise DataError(f"{where}: correctness {value!r} is not a number")


def _as_mapping(value: Any, where: str, what: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):  # some sources store a dict as its Python repr
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise DataError(f"{where}: {what} is not a mapping: {exc}") from None
        if isinstance(parsed, dict):
            return parsed
    raise DataError(f"{where}: {what} must be an object of model -> value")


def load_shared(folder: str | Path, threshold: float = DEFAULT_THRESHOLD,
                text_field: str = "auto") -> BenchmarkData:
    """Load a folder in the shared format.

    ``text_field`` picks what is embedded: ``auto`` uses ``question`` when a record has it
    (few-shot prompts share a long prefix that would make a task's prompts look alike),
    else ``prompt``. Exact duplicates of (task, text) are dropped, first kept (:func:`dedupe`).
    """
    folder = Path(folder)
    rec_path = folder / "records.jsonl.gz"
    if not rec_path.exists():
        plain = folder / "records.jsonl"
        if not plain.exists():
            raise DataError(f"{folder}: no records.jsonl.gz or records.jsonl")
        rec_path = plain
    model_info: list[dict[str, Any]] = []
    models_path = folder / "models.json"
    if models_path.exists():
        try:
            model_info = json.loads(models_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{models_path}:{exc.lineno}: {exc.msg}") from None
        if not isinstance(model_info, list) or not all(isinstance(m, dict) and "name" in m for m in model_info):
            raise DataError(f"{models_path}: expected a list of objects with a 'name'")

    opener = gzip.open if rec_path.suffix == ".gz" else open
    rows: list[dict[str, Any]] = []
    try:
        with opener(rec_path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{rec_path}:{lineno}"
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: invalid JSON: {exc.msg}") from None
                if not isinstance(rec, dict):
                    raise DataError(f"{where}: a record must be a JSON object")
                for key in ("task", "prompt", "correct"):
                    if key not in rec:
                        raise DataError(f"{where}: missing field {key!r}")
                rec["correct"] = _as_mapping(rec["correct"], where, "correct")
                if "cost" in rec and rec["cost"] is not None:
                    rec["cost"] = _as_mapping(rec["cost"], where, "cost")
                rec["_where"] = where
                rows.append(rec)
    except (OSError, EOFError) as exc:
        raise DataError(f"{rec_path}: cannot read: {exc}") from None
    if not rows:
        raise DataError(f"{rec_path}: no records")

    models = [m["name"] for m in model_info]
    known = set(models)
    for rec in rows:  # models labelled in records but absent from models.json still count
        for m in rec["correct"]:
            if m not in known:
                known.add(m)
                models.append(m)
    col = {m: j for j, m in enumerate(models)}

    def text_of(rec: dict[str, Any]) -> str:
        if text_field == "auto":
            val = rec.get("question") or rec["prompt"]
        else:
            if text_field not in rec:
                raise DataError(f"{rec['_where']}: no field {text_field!r}")
            val = rec[text_field]
        if not isinstance(val, str) or not val.strip():
            raise DataError(f"{rec['_where']}: prompt text must be a non-empty string")
        return val

    prompts: list[str] = []
    tasks: list[str] = []
    label_rows: list[np.ndarray] = []
    cost_rows: list[np.ndarray] = []
    has_cost = any("cost" in r and r["cost"] for r in rows)
    extra_fields = ("benchmark", "subtask", "sample_id")
    groups: dict[str, list[str]] = {k: [] for k in extra_fields if any(k in r for r in rows)}
    for rec in rows:
        text = text_of(rec)
        lab = np.full(len(models), np.nan, dtype=np.float32)
        for m, v in rec["correct"].items():
            lab[col[m]] = binarise(v, threshold, f"{rec['_where']}: model {m!r}")
        prompts.append(text)
        tasks.append(str(rec["task"]))
        label_rows.append(lab)
        if has_cost:
            c = np.full(len(models), np.nan, dtype=np.float64)
            for m, v in (rec.get("cost") or {}).items():
                if m in col and v is not None:
                    c[col[m]] = float(v)
            cost_rows.append(c)
        for k in groups:
            groups[k].append(str(rec.get(k, rec["task"])))
    return dedupe(BenchmarkData(
        name=folder.name,
        models=models,
        prompts=prompts,
        tasks=np.array(tasks, dtype=object),
        labels=np.vstack(label_rows),
        costs=np.vstack(cost_rows) if has_cost else None,
        groups={k: np.array(v, dtype=object) for k, v in groups.items()},
        model_info=model_info,
    ))


def load_routerbench_table(path: str | Path, threshold: float = DEFAULT_THRESHOLD) -> BenchmarkData:
    """Load RouterBench's wide layout from ``.csv`` or ``.pkl``.

    Columns: ``prompt``, ``eval_name``, one correctness column per model and optional
    ``<model>|total_cost`` (also ``<model>|model_response`` etc., ignored). Prompts stored as a
    Python list literal are joined with newlines.
    """
    import pandas as pd  # optional dependency: only this loader needs it

    path = Path(path)
    try:
        if path.suffix in (".pkl", ".pickle"):
            df = pd.read_pickle(path)
        else:
            df = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types; name the file either way
        raise DataError(f"{path}: cannot read table: {exc}") from None
    for needed in ("prompt", "eval_name"):
        if needed not in df.columns:
            raise DataError(f"{path}: missing column {needed!r}")
    skip = {"prompt", "eval_name", "sample_id", "oracle_model_to_route_to", "question", "split"}
    models = [c for c in df.columns if "|" not in str(c) and c not in skip
              and not str(c).startswith("Unnamed")]
    if not models:
        raise DataError(f"{path}: no model correctness columns")
    cost_cols = {m: f"{m}|total_cost" for m in models if f"{m}|total_cost" in df.columns}

    prompts: list[str] = []
    tasks: list[str] = []
    labels = np.full((len(df), len(models)), np.nan, dtype=np.float32)
    costs = np.full((len(df), len(models)), np.nan) if cost_cols else None
    for i, row in enumerate(df.itertuples(index=False)):
        rec = dict(zip(df.columns, row))
        where = f"{path}:{i + 2}"  # header is line 1
        p = rec["prompt"]
        if isinstance(p, str) and p.startswith("["):
            try:
                parsed = ast.literal_eval(p)
                if isinstance(parsed, list):
                    p = "\n".join(str(x) for x in parsed)
            except (ValueError, SyntaxError):
                pass
        elif isinstance(p, list):
            p = "\n".join(str(x) for x in p)
        if not isinstance(p, str) or not p.strip():
            raise DataError(f"{where}: empty prompt")
        prompts.append(p)
        tasks.append(str(rec["eval_name"]))
        for j, m in enumerate(models):
            v = rec[m]
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise DataError(f"{where}: model {m!r}: correctness {v!r} is not a number") from None
            labels[i, j] = binarise(fv, threshold, f"{where}: model {m!r}")
            if costs is not None and m in cost_cols:
                c = rec[cost_cols[m]]
                try:
                    costs[i, j] = float(c)
                except (TypeError, ValueError):
                    pass
    data = BenchmarkData(name=path.stem, models=models, prompts=prompts,
                         tasks=np.array(tasks, dtype=object), labels=labels, costs=costs,
                         groups={"benchmark": np.array(tasks, dtype=object)},
                         model_info=[{"name": m} for m in models])
    return dedupe(data)


def dedupe(data: BenchmarkData) -> BenchmarkData:
    """Drop exact duplicate (task, prompt) rows, keeping the first."""
    seen: set[tuple[str, str]] = set()
    keep = []
    for i, (t, p) in enumerate(zip(data.tasks, data.prompts)):
        if (t, p) not in seen:
            seen.add((t, p))
            keep.append(i)
    return data if len(keep) == len(data) else data.subset(np.array(keep))


def load(path: str | Path, threshold: float = DEFAULT_THRESHOLD, text_field: str = "auto") -> BenchmarkData:
    """Load a shared-format folder or a RouterBench table, by what ``path`` is."""
    path = Path(path)
    if path.is_dir():
        return load_shared(path, threshold=threshold, text_field=text_field)
    if path.suffix in (".csv", ".pkl", ".pickle"):
        return load_routerbench_table(path, threshold=threshold)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    raise DataError(f"{path}: expected a folder with records.jsonl.gz, or a .csv/.pkl table")


def merge(datasets: Sequence[BenchmarkData]) -> BenchmarkData:
    """Several datasets as one pool (model columns unioned, NaN where a set lacks a model)."""
    if len(datasets) == 1:
        return datasets[0]
    models: list[str] = []
    for d in datasets:
        models += [m for m in d.models if m not in models]
    col = {m: j for j, m in enumerate(models)}
    labels, costs, prompts, tasks = [], [], [], []
    any_cost = any(d.costs is not None for d in datasets)
    group_keys = set.intersection(*(set(d.groups) for d in datasets))
    groups: dict[str, list[np.ndarray]] = {k: [] for k in group_keys}
    info: list[dict[str, Any]] = []
    for d in datasets:
        idx = [col[m] for m in d.models]
        lab = np.full((len(d), len(models)), np.nan, dtype=np.float32)
        lab[:, idx] = d.labels
        labels.append(lab)
        c = np.full((len(d), len(models)), np.nan)
        if d.costs is not None:
            c[:, idx] = d.costs
        costs.append(c)
        prompts += d.prompts
        tasks.append(d.tasks)
        for k in group_keys:
            groups[k].append(d.groups[k])
        info += [m for m in d.model_info if m.get("name") not in {i.get("name") for i in info}]
    return BenchmarkData(name="+".join(d.name for d in datasets), models=models, prompts=prompts,
                         tasks=np.concatenate(tasks), labels=np.vstack(labels),
                         costs=np.vstack(costs) if any_cost else None,
                         groups={k: np.concatenate(v) for k, v in groups.items()}, model_info=info)


def shared_data_root() -> Path:
    """Where the shared benchmark folders live (``ROUTER_SHARED_DATA`` overrides)."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"
