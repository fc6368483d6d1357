"""Every default candidate on resampled model pools of the shared data (docs/results.md, "Resampled
model pools"): mmlu-pro's 33 models drawn 10 at a time, routerdc-7b's 7 models less one, each pool
held out by task like the four by-task reports.

    .venv/bin/python benchmarks/model_pools.py --out results/pools [mmlu-pro] [routerdc-7b]

Writes ``<dataset>.json`` (per pool: its models and every method's accuracy) after each pool, so a
partial run keeps what it finished; ``benchmarks/select_pools.py`` applies the rule to them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, not benchmarks/router_core.py

from router_core import data as data_mod
from router_core import embed
from router_core.data import BenchmarkData
from router_core.evaluate import evaluate

MMLU_POOLS, MMLU_SIZE = 10, 10  # mmlu-pro: 10 pools of 10 models, rng seed 0


def pools(name: str, n_models: int) -> list[list[int]]:
    """The model columns of each pool, as the rule fixes them."""
    if name == "mmlu-pro":
        rng = np.random.default_rng(0)
        return [sorted(int(i) for i in rng.choice(n_models, MMLU_SIZE, replace=False)) for _ in range(MMLU_POOLS)]
    return [list(c) for c in itertools.combinations(range(n_models), n_models - 1)]


def with_models(data: BenchmarkData, cols: list[int]) -> BenchmarkData:
    """The same prompts and tasks with only the models ``cols``."""
    return replace(data, models=[data.models[i] for i in cols], labels=data.labels[:, cols],
                   costs=None if data.costs is None else data.costs[:, cols])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("datasets", nargs="*", default=["mmlu-pro", "routerdc-7b"])
    ap.add_argument("--out", type=Path, default=Path("results/pools"))
    ap.add_argument("--pools", type=int, nargs="*", help="Only these pool indices (to split a run across processes).")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("ROUTER_SHARED_DATA", "../shared/data")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        data = data_mod.load(args.shared / name)
        vectors = embed.get_encoder().encode(data.prompts)
        rows: list[dict[str, Any]] = []
        for i, cols in enumerate(pools(name, len(data.models))):
            if args.pools is not None and i not in args.pools:
                continue
            report = evaluate(with_models(data, cols), vectors, repeats=1, seed=0)
            rows.append({"pool": i, "models": [data.models[c] for c in cols],
                         "accuracy": {m: v["accuracy"] for m, v in report["methods"].items()}})
            (args.out / f"{name}.json").write_text(json.dumps({"dataset": name, "pools": rows}, indent=1))
            acc = rows[-1]["accuracy"]
            print(f"{name} pool {i}: BMA {acc['BMA']:.4f} Oracle {acc['Oracle']:.4f} S3_nested "
                  f"{acc['S3_nested']:.4f} S3_uncertain {acc['S3_uncertain']:.4f}", flush=True)


if __name__ == "__main__":
    main()
