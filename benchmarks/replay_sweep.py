"""The replay figures of docs/results.md: every shared dataset, feedback rates 5-100 %, and an
exploration budget at 20 % feedback. Each dataset's leave-one-task-out machinery is prepared once.

    .venv/bin/python benchmarks/replay_sweep.py --out results/replay [--repeats 5] [dataset ...]
    .venv/bin/python benchmarks/replay_sweep.py --policies --out results/policies   # the policy rule's runs

Writes one report per run (the layout of ``llm-router replay``) and ``summary.json``; prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, not benchmarks/router_core.py

from router_core import data as data_mod
from router_core import embed
from router_core.feedback import DEFAULT_POLICY, POLICIES, FeedbackParams
from router_core.replay import format_line, prepare, replay

DATASETS = ("routerbench-subset", "mmlu-pro", "routellm-gpt4-mixtral", "routerdc-7b")
RATES = (0.05, 0.2, 0.5, 1.0)
EXPLORES = (0.02, 0.05, 0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--out", type=Path, default=Path("results/replay"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--policies", action="store_true",
                    help="Replay every feedback policy at F = 0.2 and 1.0 (no exploration), for select_feedback.py.")
    ap.add_argument("--explore-only", action="store_true", help="Only the exploration cells (F = 0.2).")
    ap.add_argument("--explore-blind", action="store_true",
                    help="Explore for as long as a task runs (the exploration before the rule chose to stop "
                         "once the evidence rules the other models out).")
    ap.add_argument("--min-samples", type=int, help="Replay the gateway's provisional phase (llm-router replay "
                                                    "--min-samples).")
    ap.add_argument("--figure", type=Path, help="Only draw the figure from an existing summary.json in --out.")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("ROUTER_SHARED_DATA", "../shared/data")))
    args = ap.parse_args()
    if args.figure:
        figure(json.loads((args.out / "summary.json").read_text()), args.figure)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for name in args.datasets:
        pool = data_mod.load(args.shared / name)
        prep = prepare(pool, embed.get_encoder().encode(pool.prompts))
        runs = [(f, 0.0, DEFAULT_POLICY) for f in RATES] + [(0.2, e, DEFAULT_POLICY) for e in EXPLORES]
        if args.policies:
            runs = [(f, 0.0, p) for p in POLICIES for f in (0.2, 1.0)]
        if args.explore_only:
            runs = [(0.2, e, DEFAULT_POLICY) for e in EXPLORES]
        fparams = FeedbackParams(explore_resolved=not args.explore_blind)
        for f, e, policy in runs:
            report = replay(prep, f, e, repeats=args.repeats, policy=policy, min_samples=args.min_samples,
                            fparams=fparams)
            stem = f"{name}-{policy}-F{f:g}-E{e:g}" + (f"-N{args.min_samples}" if args.min_samples else "")
            (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
            print(format_line(report), flush=True)
            summary.append({"dataset": name, "feedback_rate": f, "explore": e, "policy": policy,
                            "methods": report["methods"]})
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def figure(summary: list[dict[str, Any]], path: Path) -> None:
    """Replayed accuracy minus BMA's, over the feedback rate (no exploration) and over the exploration
    budget (20 % feedback), one line per dataset; the static default and the Oracle as dotted marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name in dict.fromkeys(r["dataset"] for r in summary):
        rows = [r for r in summary if r["dataset"] == name]
        bma = rows[0]["methods"]["BMA"]["accuracy"]
        for ax, sel, key in ((axes[0], [r for r in rows if r["explore"] == 0], "feedback_rate"),
                             (axes[1], [r for r in rows if r["feedback_rate"] == 0.2], "explore")):
            sel = sorted(sel, key=lambda r: r[key])
            xs = [r[key] for r in sel]
            line, = ax.plot(xs, [r["methods"]["feedback"]["accuracy"] - bma for r in sel], "o-", label=name)
            ax.plot(xs, [r["methods"]["static"]["accuracy"] - bma for r in sel], ":", color=line.get_color())
            ax.plot(xs, [r["methods"]["Oracle"]["accuracy"] - bma for r in sel], "--", color=line.get_color(),
                    alpha=0.5)
    axes[0].set_xlabel("feedback rate (no exploration)")
    axes[1].set_xlabel("exploration share (feedback rate 0.2)")
    axes[0].set_ylabel("accuracy minus BMA")
    fig.suptitle("replay: solid = with feedback, dotted = static default, dashed = Oracle", fontsize=10)
    axes[0].axhline(0, color="grey", lw=0.5)
    axes[1].axhline(0, color="grey", lw=0.5)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
