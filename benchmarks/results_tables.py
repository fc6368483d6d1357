"""Markdown tables for docs/results.md from ``llm-router eval`` reports.

    .venv/bin/python benchmarks/results_tables.py report1.json [report2.json ...]
    .venv/bin/python benchmarks/results_tables.py --overview report1.json ...   # methods side by side
    .venv/bin/python benchmarks/results_tables.py --costs report.json ...       # the default's cost curves

Prints, per report, the method table (accuracy, ratio to Oracle, how often BMA is picked,
correlations, cost, size) and the per-task picks where S3 differs from BMA or Oracle.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLS = [("accuracy", "acc", "{:.3f}"), ("ratio_to_oracle", "ratio to Oracle", "{:.3f}"),
        ("picks_bma", "picks = BMA", "{:.2f}"), ("pearson", "Pearson", "{:.2f}"),
        ("spearman", "Spearman", "{:.2f}"), ("mean_cost", "USD/query", "{:.6f}"),
        ("mean_params_b", "avg params (B)", "{:.1f}")]


def method_table(rep: dict) -> str:
    head = "| method | " + " | ".join(c[1] for c in COLS) + " |"
    lines = [head, "|" + "---|" * (len(COLS) + 1)]
    for m, e in rep["methods"].items():
        cells = []
        for key, _, fmt in COLS:
            v = e.get(key)
            cells.append("-" if v is None else fmt.format(v))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shortfalls(rep: dict, limit: int = 12) -> str:
    """Tasks where S3's pick is worse than BMA's: the cases that cost S3 accuracy."""
    rows = []
    for t in rep["tasks"]:
        acc = t["true_accuracy"]
        s3, bma = t["picks"]["S3"], t["picks"]["BMA"]
        if acc[s3] is not None and acc[bma] is not None and acc[s3] < acc[bma]:
            rows.append((acc[bma] - acc[s3], t, s3, bma))
    rows.sort(key=lambda r: -r[0])
    if not rows:
        return "S3 never picked a model worse than BMA on a held-out task."
    out = ["| task | n | u | S3 pick (acc) | p_hat / p_true of pick | BMA (acc) | loss |",
           "|---|---|---|---|---|---|---|"]
    for loss, t, s3, bma in rows[:limit]:
        out.append(f"| {t['task']} | {t['n']} | {t['u']:.3f} | {s3} ({t['true_accuracy'][s3]:.3f}) | "
                   f"{t['p_hat'][s3]:.2f} / {t['p_true'][s3]:.2f} | {bma} ({t['true_accuracy'][bma]:.3f}) | "
                   f"{loss:.3f} |")
    return "\n".join(out) + f"\n\n{len(rows)} of {len(rep['tasks'])} held-out tasks lost accuracy against BMA."


def overview(paths: list[str]) -> str:
    """One column per report: the shipped default, the candidates and the references, side by side."""
    reps = [json.loads(Path(p).read_text()) for p in paths]
    rows = ["default", "S3_uncertain_guard", "S3_uncertain", "S3_nested", "calibrated", "calibrated_full", "S1", "S2",
            "S3", "S3_local_p", "S3_true_p", "BMA", "Oracle"]
    head = "| method | " + " | ".join(f"{r['dataset']} by {r.get('holdout_field', 'task')}" for r in reps) + " |"
    out = [head, "|" + "---|" * (len(reps) + 1)]
    for m in rows:
        out.append(f"| {m} | " + " | ".join(f"{r['methods'][m]['accuracy']:.3f}" if m in r["methods"] else "-"
                                             for r in reps) + " |")
    gap = []
    for r in reps:
        mm = r["methods"]
        room = mm["Oracle"]["accuracy"] - mm["BMA"]["accuracy"]
        gap.append("-" if room < 1e-9 else f"{(mm['default']['accuracy'] - mm['BMA']['accuracy']) / room:.0%}")
    out.append("| default: share of the BMA-to-Oracle gap closed | " + " | ".join(gap) + " |")
    out.append("| p MAE of the default's estimate | " + " | ".join(f"{r.get('p_default_mae', r['p_hat_mae']):.3f}"
                                                             for r in reps) + " |")
    out.append("| local p MAE | " + " | ".join(f"{r['p_local_mae']:.3f}" for r in reps) + " |")
    out.append("| local p MAE, nested (pool without the held-out task) | "
               + " | ".join("-" if r.get("p_local_nested_mae") is None else f"{r['p_local_nested_mae']:.3f}"
                            for r in reps) + " |")
    out.append("| held-out tasks | " + " | ".join(str(r["n_tasks"]) for r in reps) + " |")
    return "\n".join(out)


def cost_table(path: str) -> str:
    """The default's epsilon curve, with the quarter-cost reference last."""
    r = json.loads(Path(path).read_text())
    curve = r.get("default_cost_curve") or []
    if not curve:
        return f"{r['dataset']}: no costs or sizes"
    unit = curve[0]["cost_unit"]
    what = "USD per query" if unit == "usd_per_query" else "model size in B parameters as the cost"
    out = [f"{r['dataset']} ({what})",
           "", "| epsilon | accuracy | mean cost | accuracy / BMA's | cost / BMA's |", "|---|---|---|---|---|"]
    for c in curve:
        eps = "reference: best model at <= 1/4 of BMA's cost, per task" if c["epsilon"] is None else f"{c['epsilon']:g}"
        cost = f"{c['mean_cost']:.6f}" if unit == "usd_per_query" else f"{c['mean_cost']:.1f}"
        out.append(f"| {eps} | {c['accuracy']:.3f} | {cost} | {c['accuracy_vs_bma']:.3f} | {c['cost_vs_bma']:.3f} |")
    return "\n".join(out)


def main(paths: list[str]) -> None:
    if paths and paths[0] == "--overview":
        print(overview(paths[1:]))
        return
    if paths and paths[0] == "--costs":
        for p in paths[1:]:
            print(cost_table(p) + "\n")
        return
    for p in paths:
        rep = json.loads(Path(p).read_text())
        print(f"### {rep['dataset']} — held out by `{rep.get('holdout_field', 'task')}`: {rep['n_tasks']} tasks, "
              f"{len(rep['models'])} models, {rep['n_prompts']} prompts, alpha={rep['alpha']}, "
              f"repeats={rep['repeats']}\n")
        print(method_table(rep))
        local = f"; local p MAE {rep['p_local_mae']:.3f}" if "p_local_mae" in rep else ""
        print(f"\np_hat MAE {rep['p_hat_mae']:.3f}" + local)
        print()
        print(shortfalls(rep))
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
