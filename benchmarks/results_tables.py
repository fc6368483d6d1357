"""Markdown tables for docs/results.md from ``llm-router eval`` reports.

    .venv/bin/python benchmarks/results_tables.py report1.json [report2.json ...]

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


def main(paths: list[str]) -> None:
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
