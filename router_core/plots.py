"""PNG figures of an evaluation report (matplotlib, imported only when plots are asked for).

Every function takes the report dict of ``evaluate.evaluate`` and draws the methods it finds there,
so a report with more (or fewer) methods needs no change here. Figures are sized for a README:
at most ~1000 px wide; the per-task figure grows in height with the number of tasks instead of
in width, so 66 tasks stay legible.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
# Routing methods drawn per task when present, in drawing order; BMA and Oracle are the references.
PER_TASK_METHODS = ("default", "S3", "calibrated", "S3_local_p")
STYLE = {  # method -> (colour, marker); methods not listed get the next free colour
    "default": ("tab:orange", "D"),
    "S3": ("tab:blue", "o"),
    "calibrated": ("tab:red", "P"),
    "S3_local_p": ("tab:green", "s"),
    "S3_true_p": ("tab:purple", "^"),
    "S1": ("tab:brown", "v"),
    "S2": ("tab:pink", "<"),
    "BMA": ("0.35", "X"),
    "Oracle": ("black", "*"),
}


def write_plots(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write accuracy_by_task.png, p_hat_vs_p_true.png and (with costs) cost_accuracy.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"accuracy_by_task.png": accuracy_by_task(report),
               "p_hat_vs_p_true.png": p_hat_vs_p_true(report)}
    if report.get("cost_curve"):
        figures["cost_accuracy.png"] = cost_accuracy(report)
    written = []
    for name, fig in figures.items():
        written.append(out / name)
        fig.savefig(written[-1], dpi=DPI)
        plt.close(fig)
    return written


def _style(method: str, i: int) -> tuple[str, str]:
    return STYLE.get(method, (f"C{i % 10}", "o"))


def _pick_accuracy(task: dict[str, Any], method: str) -> float:
    """True accuracy on the held-out task of the model ``method`` picked (NaN if unknown)."""
    acc = task["true_accuracy"].get(task["picks"][method])
    return np.nan if acc is None else float(acc)


def _short_names(names: Sequence[str]) -> tuple[list[str], str]:
    """Task names without a prefix they all share (e.g. ``mmlu_pro-``), and that prefix."""
    prefix = ""
    if len(names) > 1 and all("-" in n for n in names):
        first = names[0].split("-", 1)[0] + "-"
        if all(n.startswith(first) for n in names):
            prefix = first
    return [n[len(prefix):] for n in names], prefix


def accuracy_by_task(report: dict[str, Any], methods: Sequence[str] | None = None) -> "Figure":
    """Sorted dot plot: per held-out task, each routing method's accuracy gain over BMA.

    The grey bar is the Oracle's gain over BMA (what a perfect router would add). Rows are sorted
    by the first drawn method's gain, best at the top.
    """
    import matplotlib.pyplot as plt

    tasks = report["tasks"]
    present = [m for m in (methods or PER_TASK_METHODS) if m in report["methods"] and m in tasks[0]["picks"]]
    lead = present[0] if present else "BMA"
    bma = np.array([_pick_accuracy(t, "BMA") for t in tasks])
    oracle = np.array([_pick_accuracy(t, "Oracle") for t in tasks]) - bma
    gains = {m: np.array([_pick_accuracy(t, m) for t in tasks]) - bma for m in present}
    lead_gain = gains.get(lead, np.zeros(len(tasks)))
    order = np.lexsort((-oracle, np.nan_to_num(lead_gain, nan=-1.0)))  # bottom row first
    names, prefix = _short_names([tasks[i]["task"] for i in order])

    n = len(tasks)
    fig, ax = plt.subplots(figsize=(8.0, max(3.8, 1.8 + 0.17 * n)), layout="constrained")
    y = np.arange(n)
    ax.barh(y, oracle[order], height=0.7, color="0.85", label="Oracle (best model for the task)")
    ax.axvline(0, color=STYLE["BMA"][0], lw=1.2)
    offsets = np.linspace(-0.2, 0.2, len(present)) if len(present) > 1 else [0.0]
    summary = report["methods"]
    for i, (m, dy) in enumerate(zip(present, offsets)):
        colour, marker = _style(m, i)
        mean_gain = summary[m]["accuracy"] - summary["BMA"]["accuracy"]
        ax.scatter(gains[m][order], y + dy, s=22, color=colour, marker=marker, zorder=3,
                   label=f"{m}: mean accuracy {summary[m]['accuracy']:.3f} ({mean_gain:+.3f} vs BMA)")
    every = np.concatenate([oracle, *gains.values(), [0.0]])
    xmin, xmax = float(np.nanmin(every)), float(np.nanmax(every))
    pad = 0.04 * max(xmax - xmin, 0.05)
    ax.set_xlim(xmin - pad, xmax + pad)  # dots at 0 and at the extremes stay whole
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8 if n <= 30 else 7)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(f"accuracy of the pick minus BMA's on the task (BMA's mean: {summary['BMA']['accuracy']:.3f})",
                  fontsize=9)
    ax.grid(axis="x", color="0.9", lw=0.8)
    ax.set_axisbelow(True)
    held = f" ({prefix}*)" if prefix else ""
    ax.set_title(f"{report['dataset']}, per held-out task{held}: gain over the best model on average (BMA)",
                 fontsize=9.5, loc="left", wrap=True)
    fig.legend(fontsize=8, loc="outside lower center", ncol=2, frameon=False)
    return fig


def _spread(ys: np.ndarray, gap: float, lo: float, hi: float) -> np.ndarray:
    """Label positions near ``ys`` at least ``gap`` apart, kept inside [lo, hi]."""
    order = np.argsort(ys, kind="stable")
    pos = ys[order].astype(float).copy()
    for i in range(1, len(pos)):
        pos[i] = max(pos[i], pos[i - 1] + gap)
    overflow = pos[-1] - hi if len(pos) else 0.0
    if overflow > 0:
        pos[-1] -= overflow
        for i in range(len(pos) - 2, -1, -1):
            pos[i] = min(pos[i], pos[i + 1] - gap)
    out: np.ndarray = np.empty_like(pos)
    out[order] = np.maximum(pos, lo)
    return out


def p_hat_vs_p_true(report: dict[str, Any]) -> "Figure":
    """p_hat against p_true for every task x model, one colour per model, each band named.

    p_hat hardly varies across tasks, so each model's points form a horizontal band; the label at
    the right edge (joined by a thin line) says which model the band is.
    """
    import matplotlib.pyplot as plt

    tasks = report["tasks"]
    models = [m for m in report["models"] if m in tasks[0]["p_hat"]]
    ph = np.array([[np.nan if t["p_hat"][m] is None else t["p_hat"][m] for m in models] for t in tasks], dtype=float)
    pt = np.array([[np.nan if t["p_true"][m] is None else t["p_true"][m] for m in models] for t in tasks], dtype=float)
    values = np.concatenate([ph[np.isfinite(ph)], pt[np.isfinite(pt)]])
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    pad = max(0.03, 0.05 * (hi - lo))
    lo, hi = max(-0.02, lo - pad), min(1.02, hi + pad)

    fig, ax = plt.subplots(figsize=(9.5, 6.5), layout="constrained")
    ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=1, label="p_hat = p_true")
    cmap = plt.get_cmap("tab10")  # dark enough for text; markers tell apart models 11+

    def marker_of(j: int) -> str:
        return "osD^v<>"[(j // cmap.N) % 7]

    centre = np.full(len(models), np.nan)
    for j, m in enumerate(models):
        ok = np.isfinite(ph[:, j]) & np.isfinite(pt[:, j])
        if not ok.any():
            continue
        ax.scatter(pt[ok, j], ph[ok, j], s=14, alpha=0.6, color=cmap(j % cmap.N), marker=marker_of(j))
        centre[j] = float(np.median(ph[ok, j]))
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_anchor("W")  # the equal-aspect box shrinks to the left, leaving the right margin to the labels
    shown = np.flatnonzero(np.isfinite(centre))
    fontsize = 8 if len(shown) <= 20 else 6.5
    axes_px = 6.5 * DPI * 0.8  # about the axes' height in pixels
    gap = (hi - lo) * fontsize * 1.35 / 72 * DPI / axes_px
    label_y = _spread(centre[shown], gap, lo, hi)
    edge = ax.get_yaxis_transform()  # x in axes fraction, y in data
    for k, yl in zip(shown.tolist(), label_y.tolist()):
        colour = cmap(k % cmap.N)
        ax.plot([1.0, 1.015, 1.04], [centre[k], centre[k], yl], transform=edge, color=colour, lw=0.8,
                clip_on=False)
        ax.scatter([1.055], [yl], transform=edge, s=14, color=colour, marker=marker_of(k), clip_on=False)
        ax.text(1.07, yl, models[k], transform=edge, va="center", fontsize=fontsize, color=colour)
    ax.set_xlabel("p_true: how often the model's correctness predictor was right on the held-out task")
    ax.set_ylabel("p_hat: the router's estimate of it (Nadaraya-Watson)")
    title = f"{report['dataset']}: p_hat vs p_true per task and model; mean |p_hat - p_true| {report['p_hat_mae']:.3f}"
    if report.get("p_local_mae") is not None:
        title += f"\n(the local estimate of p, --p-estimator local: {report['p_local_mae']:.3f})"
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    return fig


def cost_accuracy(report: dict[str, Any]) -> "Figure":
    """Accuracy against mean cost of the S3 pick over the lambda sweep, with each method's point."""
    import matplotlib.pyplot as plt

    curve = report["cost_curve"]
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    ax.plot([c["mean_cost"] for c in curve], [c["accuracy"] for c in curve], "o-", color=STYLE["S3"][0],
            ms=4, zorder=4, label="S3 over the lambda sweep")
    for i, (m, e) in enumerate(report["methods"].items()):
        if m == "S3" or e.get("mean_cost") is None:
            continue
        if m not in ("default", "BMA", "Oracle"):
            continue
        colour, marker = _style(m, i)
        ax.scatter([e["mean_cost"]], [e["accuracy"]], marker=marker, s=110, facecolors="none", edgecolors=colour,
                   linewidths=1.6, zorder=3, label=m)  # hollow: a point under another stays visible
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per query (USD, log scale)")
    ax.set_ylabel("accuracy of the picked model")
    ax.set_title(f"{report['dataset']}: cost vs accuracy", fontsize=10, loc="left")
    ax.grid(color="0.92")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
