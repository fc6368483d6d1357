"""The evaluation figures: drawn from whatever methods a report has, legible, README-sized."""

import struct

import numpy as np
import pytest

from router_core import plots
from router_core.data import BenchmarkData
from router_core.evaluate import evaluate

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

MODELS = ["small-model", "medium-model", "large-model", "huge-model"]


def _report(n_tasks: int, seed: int = 0, costs: bool = False) -> dict:
    """A real LOTO report on synthetic data: random unit vectors, per-task model skills."""
    rng = np.random.default_rng(seed)
    per_task = max(8, -(-120 // n_tasks))  # the nested evaluation wants a pool of ~80+ prompts
    tasks = np.repeat([f"bench-task_{i:02d}" for i in range(n_tasks)], per_task).astype(object)
    skill = rng.uniform(0.2, 0.9, size=(n_tasks, len(MODELS)))
    labels = (rng.random((len(tasks), len(MODELS))) < np.repeat(skill, per_task, axis=0)).astype(np.float32)
    vectors = rng.normal(size=(len(tasks), 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cost = np.tile([0.0001, 0.0005, 0.002, 0.01], (len(tasks), 1)) if costs else None
    pool = BenchmarkData(name="synthetic", models=MODELS, prompts=[f"p{i}" for i in range(len(tasks))],
                         tasks=tasks, labels=labels, costs=cost)
    return evaluate(pool, vectors)


def _with_default(report: dict) -> dict:
    """The report with a "default" that differs from S3 (here: S3_local_p's picks)."""
    report["methods"]["default"] = dict(report["methods"]["S3_local_p"])
    for t in report["tasks"]:
        t["picks"]["default"] = t["picks"]["S3_local_p"]
    return report


def _without(report: dict, method: str) -> dict:
    """The report as an older version wrote it, without ``method``."""
    del report["methods"][method]
    for t in report["tasks"]:
        del t["picks"][method]
    return report


def _png_size(path) -> tuple[int, int]:
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for leg in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
            for t in leg.get_texts()]


@pytest.fixture(scope="module")
def report66() -> dict:
    return _with_default(_report(66))


def test_per_task_figure_draws_default_when_present_and_sorts_rows(report66):
    fig = plots.accuracy_by_task(report66)
    legend = _legend_texts(fig)
    assert any(t.startswith("default:") for t in legend) and any(t.startswith("S3:") for t in legend)
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(names) == sorted(t["task"].removeprefix("bench-") for t in report66["tasks"])
    # rows run from the smallest gain of the first method (default) at the bottom to the largest on top
    by_name = {t["task"].removeprefix("bench-"): t for t in report66["tasks"]}
    gain = [by_name[n]["true_accuracy"][by_name[n]["picks"]["default"]]
            - by_name[n]["true_accuracy"][by_name[n]["picks"]["BMA"]] for n in names]
    assert all(a <= b + 1e-12 for a, b in zip(gain, gain[1:]))
    matplotlib.pyplot.close(fig)


def test_per_task_figure_without_default_draws_s3_only():
    plain = _without(_without(_report(5, seed=1), "default"), "calibrated")
    fig = plots.accuracy_by_task(plain)
    legend = _legend_texts(fig)
    assert not any(t.startswith("default") for t in legend)
    assert any(t.startswith("S3:") for t in legend)
    matplotlib.pyplot.close(fig)


def test_p_hat_figure_names_every_models_band(report66):
    fig = plots.p_hat_vs_p_true(report66)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(texts) == sorted(MODELS)
    # each label sits at (or, when bands crowd, near) its model's median p_hat, in the same order
    ys = {t.get_text(): t.get_position()[1] for t in fig.axes[0].texts}
    medians = {m: np.median([t["p_hat"][m] for t in report66["tasks"]]) for m in MODELS}
    assert sorted(MODELS, key=ys.get) == sorted(MODELS, key=medians.get)
    matplotlib.pyplot.close(fig)


def test_written_figures_fit_a_readme(report66, tmp_path):
    written = plots.write_plots(report66, tmp_path)
    assert [p.name for p in written] == ["accuracy_by_task.png", "p_hat_vs_p_true.png"]
    for p in written:
        width, height = _png_size(p)
        assert width <= 1400 and height <= 1400, (p.name, width, height)


def test_cost_figure_marks_default_bma_and_oracle(tmp_path):
    report = _with_default(_report(6, costs=True))
    assert report["cost_curve"]
    fig = plots.cost_accuracy(report)
    assert sorted(_legend_texts(fig)) == ["BMA", "Oracle", "S3 over the lambda sweep", "default"]
    matplotlib.pyplot.close(fig)
    assert "cost_accuracy.png" in [p.name for p in plots.write_plots(report, tmp_path)]


def test_label_spread_keeps_order_gap_and_bounds():
    ys = np.array([0.50, 0.501, 0.502, 0.9, 0.95])
    out = plots._spread(ys, gap=0.02, lo=0.0, hi=0.96)
    assert list(np.argsort(out)) == list(np.argsort(ys))
    assert np.all(np.diff(np.sort(out)) >= 0.02 - 1e-12)
    assert out.max() <= 0.96 and out.min() >= 0.0
