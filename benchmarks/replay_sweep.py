"""The replay figures of docs/results.md: every shared dataset, feedback rates 5-100 %, and an
exploration budget at 20 % feedback. Each dataset's leave-one-task-out machinery is prepared once.

    .venv/bin/python benchmarks/replay_sweep.py --out results/replay [--repeats 5] [dataset ...]

Writes one report per run (the layout of ``llm-router replay``) and ``summary.json``; prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, not benchmarks/router_core.py

from router_core import data as data_mod
from router_core import embed
from router_core.replay import format_line, prepare, replay

DATASETS = ("routerbench-subset", "mmlu-pro", "routellm-gpt4-mixtral", "routerdc-7b")
RATES = (0.05, 0.2, 0.5, 1.0)
EXPLORES = (0.02, 0.05, 0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--out", type=Path, default=Path("results/replay"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("ROUTER_SHARED_DATA", "../shared/data")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for name in args.datasets:
        pool = data_mod.load(args.shared / name)
        prep = prepare(pool, embed.get_encoder().encode(pool.prompts))
        runs = [(f, 0.0) for f in RATES] + [(0.2, e) for e in EXPLORES]
        for f, e in runs:
            report = replay(prep, f, e, repeats=args.repeats)
            (args.out / f"{name}-F{f:g}-E{e:g}.json").write_text(json.dumps(report, indent=1) + "\n")
            print(format_line(report), flush=True)
            summary.append({"dataset": name, "feedback_rate": f, "explore": e, "methods": report["methods"]})
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
