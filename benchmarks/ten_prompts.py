"""The gateway's decision regime, measured precisely: each held-out task (leave-one-task-out) is served as
a stream whose first ``--min-samples`` prompts are served by the decision so far and the rest by the
decision made from those prompts (``replay.staged``, the static policy of ``llm-router replay
--min-samples``). Every variant of the S3 fallback test is scored on the *same* streams, many per task,
and its gain over BMA is stated with its standard error over the stream sets (docs/results.md, "The
ten-prompt shortfall on more streams").

    .venv/bin/python benchmarks/ten_prompts.py --out results/n10 [--streams 100] [dataset ...]

Writes ``<dataset>.json`` per dataset and ``summary.json`` (each variant's gain per dataset and its worst).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, not benchmarks/router_core.py

from router_core import data as data_mod
from router_core import embed
from router_core import scores as sc
from router_core.evaluate import FALLBACK_TESTS
from router_core.replay import Prepared, prepare, staged

DATASETS = ("mmlu-pro", "routerdc-7b", "routellm-gpt4-mixtral", "routerbench-subset")


def run(prep: Prepared, variants: list[str], streams: int, seed: int, min_samples: int) -> dict[str, Any]:
    """Each variant's gain over BMA per stream set (the mean over tasks of one stream each), paired."""
    data, table = prep.data, prep.table
    models, costs = list(data.models), data.mean_cost()
    D = len(table.task_names)
    gains: dict[str, list[float]] = {v: [] for v in variants}
    departures: dict[str, Counter[str]] = {v: Counter() for v in variants}
    for s in range(streams):
        rng = np.random.default_rng(seed + s)
        per_task: dict[str, list[float]] = {v: [] for v in variants}
        for d in range(D):
            rows = table.rows(d)
            train = np.array([t for t in range(D) if t != d])
            bma = sc.best_on_average(table.accuracy[train])
            order = rng.permutation(len(rows))
            labels = data.labels[rows[order]]
            with np.errstate(invalid="ignore"):
                bma_acc = float(np.nanmean(labels[:, bma]))
            for v in variants:
                params = replace(prep.params, seed=seed + s, **FALLBACK_TESTS[v])
                picks, _ = staged(rows[order], table, models, train, bma, costs, params, min_samples,
                                  prep.nested[d].errors.score_sd)
                served = np.full(len(rows), picks[-1])
                served[:len(picks) - 1] = picks[:-1]
                with np.errstate(invalid="ignore"):
                    per_task[v].append(float(np.nanmean(labels[np.arange(len(rows)), served])) - bma_acc)
                if picks[-1] != bma:
                    departures[v][table.task_names[d]] += 1
        for v in variants:
            gains[v].append(float(np.mean(per_task[v])))
    return {v: {"gain_mean": float(np.mean(g)),
                "gain_se": float(np.std(g, ddof=1) / np.sqrt(len(g))) if len(g) > 1 else float("nan"),
                "departures": dict(departures[v].most_common()), "gain_per_stream_set": g}
            for v, g in gains.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--out", type=Path, default=Path("results/n10"))
    ap.add_argument("--streams", type=int, default=100, help="streams per task (the same for every variant)")
    ap.add_argument("--seed", type=int, default=1000, help="stream s is drawn with numpy's default_rng(seed + s)")
    ap.add_argument("--min-samples", type=int, default=10)
    ap.add_argument("--variants", default=",".join(FALLBACK_TESTS), help="a comma-separated subset of "
                    "router_core.evaluate.FALLBACK_TESTS (the shipped default: uncertain_guard)")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("ROUTER_SHARED_DATA", "../shared/data")))
    args = ap.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in FALLBACK_TESTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {', '.join(FALLBACK_TESTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict[str, float]] = {v: {} for v in variants}
    for name in args.datasets:
        data = data_mod.load(args.shared / name)
        prep = prepare(data, embed.get_encoder().encode(data.prompts))
        res = run(prep, variants, args.streams, args.seed, args.min_samples)
        report = {"dataset": name, "streams": args.streams, "seed": args.seed, "min_samples": args.min_samples,
                  "variants": res}
        (args.out / f"{name}.json").write_text(json.dumps(report, indent=1))
        for v in variants:
            summary[v][name] = res[v]["gain_mean"]
            print(f"{name:24s} {v:16s} gain over BMA {res[v]['gain_mean']:+.4f} +- {res[v]['gain_se']:.4f} "
                  f"(SE over {args.streams} stream sets); departs on {sum(res[v]['departures'].values())} "
                  f"task streams", flush=True)
    for v in variants:
        summary[v]["worst"] = min(summary[v].values())
    (args.out / "summary.json").write_text(json.dumps({"streams": args.streams, "seed": args.seed,
                                                       "min_samples": args.min_samples, "gain_over_bma": summary},
                                                      indent=1))
    print("| variant | " + " | ".join(args.datasets) + " | worst |")
    print("|---" * (len(args.datasets) + 2) + "|")
    for v in variants:
        print(f"| {v} | " + " | ".join(f"{summary[v][n]:+.4f}" for n in args.datasets)
              + f" | {summary[v]['worst']:+.4f} |")


if __name__ == "__main__":
    main()
