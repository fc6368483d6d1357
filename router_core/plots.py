"""PNG figures of an evaluation report (matplotlib, imported only when plots are asked for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_plots(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tasks = report["tasks"]
    methods = [m for m in ("S1", "S2", "S3", "S3_local_p", "S3_true_p", "BMA", "Oracle") if m in report["methods"]]

    # 1. accuracy of each method's pick, per held-out task
    fig, ax = plt.subplots(figsize=(max(8, 0.35 * len(tasks)), 5))
    x = np.arange(len(tasks))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        acc = [t["true_accuracy"][t["picks"][m]] or 0.0 for t in tasks]
        ax.bar(x + i * width, acc, width, label=m)
    ax.set_xticks(x + 0.4)
    ax.set_xticklabels([t["task"] for t in tasks], rotation=90, fontsize=7)
    ax.set_ylabel("accuracy of the picked model")
    ax.set_title(f"{report['dataset']}: accuracy by method per held-out task")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    written.append(out / "accuracy_by_task.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    # 2. p_hat against p_true (every task x model)
    ph = np.array([v for t in tasks for v in t["p_hat"].values()], dtype=float)
    pt = np.array([t["p_true"][m] for t in tasks for m in t["p_hat"]], dtype=float)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(pt, ph, s=8, alpha=0.5)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("p_true (accuracy of the correctness predictor)")
    ax.set_ylabel("p_hat (Nadaraya-Watson estimate)")
    ax.set_title(f"p_hat vs p_true, MAE {report['p_hat_mae']:.3f}")
    fig.tight_layout()
    written.append(out / "p_hat_vs_p_true.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    # 3. cost-accuracy curve over the lambda knob
    curve = report.get("cost_curve") or []
    if curve:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([c["mean_cost"] for c in curve], [c["accuracy"] for c in curve], "o-", label="S3 over lambda")
        for m in ("BMA", "Oracle"):
            e = report["methods"][m]
            if e.get("mean_cost") is not None:
                ax.scatter([e["mean_cost"]], [e["accuracy"]], marker="x", s=60, label=m)
        ax.set_xscale("log")
        ax.set_xlabel("mean cost per query (USD)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{report['dataset']}: cost vs accuracy")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out / "cost_accuracy.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written
