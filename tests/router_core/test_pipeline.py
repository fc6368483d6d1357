"""End to end on real benchmark data (small subsets): build, save, load, route, evaluate, CLI."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from router_core import artifact, data, embed, evaluate, loto, reliability
from router_core.decision import RoutingParams, decide_task
from router_core.onnx_encoder import ENCODER_DIR_ENV, encoder_root
from router_core.router import LabelledSamples, build_router
from shared_folder import write_shared_folder

TASKS = ["gsm8k", "mbpp", "arc_challenge", "mmlu-high_school_psychology", "humaneval"]


@pytest.fixture(scope="module")
def subset(shared_data):
    return data.load(shared_data / "routerdc-7b").sample_tasks(TASKS, per_task=30, seed=1)


@pytest.fixture(scope="module")
def vectors(subset):
    return embed.get_encoder().encode(subset.prompts)


def test_embeddings_are_normalised_and_cached(subset, vectors, tmp_path, monkeypatch):
    assert vectors.shape == (len(subset), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # a fresh vector cache, with the ONNX graph already exported under the default one (no second export)
    monkeypatch.setenv(ENCODER_DIR_ENV, str(encoder_root()))
    enc = embed.get_encoder(cache_dir=tmp_path)
    first = enc.encode(subset.prompts[:5])
    calls = []
    original = enc.encoder.encode
    enc.encoder.encode = lambda texts, progress=False: calls.append(len(texts)) or original(texts)
    again = enc.encode(subset.prompts[:5] + subset.prompts[:1])
    assert calls == []  # served from the on-disk cache
    assert np.allclose(again[:5], first) and np.allclose(again[5], first[0])
    assert np.allclose(first, vectors[:5], atol=1e-5)


def test_build_save_load_route(subset, vectors, tmp_path):
    r = build_router(subset, embed.get_encoder())
    version = artifact.save(r, tmp_path / "art")
    back = artifact.load(tmp_path / "art")
    assert back.version == version and back.models == subset.models
    assert artifact.save(back, tmp_path / "art2") == version  # content hash is stable
    assert len(back.task_names) == len(TASKS) and back.u_train.shape == (len(TASKS),)
    # the reliability rule's spreads, measured on the pool's tasks, travel with the artifact
    assert back.errors == r.errors != reliability.DEFAULT_ERRORS and 0 < r.errors.shared_sd < 0.5
    rows = np.flatnonzero(subset.tasks == "gsm8k")
    agg = back.aggregate(vectors[rows])
    d = back.decide(agg)
    assert d.model in subset.models and d.n == len(rows)
    assert set(d.s3) == set(subset.models) and d.ranking[0] == d.model
    # the default (uncertain) tests the S3 pick against the spread the artifact measured; the paper's
    # method, asked for, is the paper's decision exactly
    assert back.params.method == "uncertain" and back.errors.score_sd != reliability.DEFAULT_SCORE_SD
    same = decide_task(agg, back.models, back.u_train, back.p_train, back.bma, None,
                       RoutingParams(method="uncertain"), score_sd=back.errors.score_sd)
    assert d.to_dict() == same.to_dict()
    assert back.decide(agg, method="paper").to_dict() == decide_task(
        agg, back.models, back.u_train, back.p_train, back.bma, None, RoutingParams(method="paper")).to_dict()
    # prompts of the pool find themselves first
    ids, dists, _ = back.neighbours(vectors[rows[:3]])
    assert list(ids[:, 0]) == list(rows[:3]) and np.allclose(dists[:, 0], 0, atol=1e-4)
    g, u = back.predict(vectors[rows[:3]])
    assert g.shape == (3, len(subset.models)) and np.all(u > 0)
    # a few labelled samples of a new task: the S3 methods (the default, uncertain, and the paper's) weigh them
    # as evidence in decide() and keep them out of the pool; the calibrated method also lets them join the pool
    # (all labelled correct: a neighbour labelled 1 can only raise the mean label, and each of
    # these prompts now finds its own labelled copy among its nearest)
    lab = LabelledSamples(vectors[rows[:4]], np.ones((4, len(subset.models))))
    assert back.params.method == "uncertain" and not back.labels_join_pool
    g_same, _ = back.predict(vectors[rows[:4]], labelled=lab)
    assert np.allclose(g_same[:3], g)
    back.use_method("calibrated")
    g_lab, _ = back.predict(vectors[rows[:4]], labelled=lab)
    assert np.all(g_lab[:3] >= g - 1e-9) and np.any(g_lab[:3] > g)


def test_artifact_errors(tmp_path):
    with pytest.raises(artifact.ArtifactError, match="not a router artifact"):
        artifact.load(tmp_path)


def test_loto_never_uses_own_task(subset, vectors):
    t = loto.compute(vectors, subset.tasks, subset.labels)
    assert np.all(t.task_of[t.ids] != t.task_of[:, None])
    assert t.p.shape == (len(TASKS), len(subset.models))
    assert np.all((t.p >= 0) & (t.p <= 1))


def test_evaluate_report_layout(subset, vectors):
    rep = evaluate.evaluate(subset, vectors, RoutingParams(), alpha=0.1, repeats=2)
    assert {t["task"] for t in rep["tasks"]} == set(TASKS)
    assert set(rep["methods"]) == set(evaluate.METHODS)
    for t in rep["tasks"]:
        assert set(t["scores"]) == {"S1", "S2", "S3", "calibrated"}
        assert set(t["picks"]) == set(evaluate.METHODS)
        # the shipped default's picks are its method's: with labels, the uncertain method's S3 pick without
        # them in the pool, revised by them as evidence (docs/results.md, "Labels as evidence", "Resampled
        # model pools")
        assert evaluate.default_pick(rep["params"]["method"], rep["alpha"]) == "S3_uncertain_labels"
        assert t["picks"]["default"] == t["picks"]["S3_uncertain_labels"]
        acc = t["true_accuracy"]
        assert acc[t["picks"]["Oracle"]] == max(acc.values())
    m = rep["methods"]
    assert m["Oracle"]["ratio_to_oracle"] == pytest.approx(1.0)
    assert all(e["accuracy"] <= m["Oracle"]["accuracy"] + 1e-9 for e in m.values())
    assert 0 <= rep["p_hat_mae"] <= 1
    assert m["S3"]["mean_cost"] is None  # routerdc has no costs
    # model size stands in for cost: the default's epsilon curve, ending with the quarter-cost reference
    curve = rep["default_cost_curve"]
    first = np.mean([t["true_accuracy"][t["picks"]["default"]] for t in rep["tasks"]])
    assert curve[0]["epsilon"] == 0 and curve[0]["accuracy"] == pytest.approx(first)
    # the quarter-cost reference: never dearer than BMA, never above the Oracle (here every model is 7-8B,
    # so no model costs a quarter of BMA's size and the reference keeps BMA)
    assert curve[-1]["epsilon"] is None and curve[-1]["cost_vs_bma"] == pytest.approx(1.0)
    assert curve[-1]["accuracy"] <= m["Oracle"]["accuracy"] + 1e-9
    assert {"calibrated_strengths", "calibrated_beta"} <= set(rep["default_method"])
    # five tasks leave four training tasks per fold: the nested local and combined p estimates are measured
    assert 0 <= rep["p_local_nested_mae"] <= 1 and 0 <= rep["p_combined_mae"] <= 1
    assert all(0 <= w <= 1 for w in rep["default_method"]["combined_w"])
    assert all(sd >= reliability.MIN_SD for sd in rep["default_method"]["local_sd"])


def test_cli_build_route_eval(subset, tmp_path, shared_data):
    from router_core.cli import app

    runner = CliRunner()
    # a real shared-format folder written from the subset
    folder = write_shared_folder(subset, tmp_path / "data")
    res = runner.invoke(app, ["build", "--data", str(folder), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    prompts = tmp_path / "p.jsonl"
    mbpp = [p for p, t in zip(subset.prompts, subset.tasks) if t == "mbpp"]
    prompts.write_text("\n".join(json.dumps({"prompt": p}) for p in mbpp))
    res = runner.invoke(app, ["route", "--router", str(tmp_path / "r"), "--prompts", str(prompts), "--instance"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["decision"]["model"] in subset.models and len(out["instances"]) == 30
    res = runner.invoke(app, ["eval", "--data", str(folder), "--out", str(tmp_path / "rep.json"),
                              "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "rep.json").read_text())["dataset"] == "data"
    assert (tmp_path / "plots" / "accuracy_by_task.png").stat().st_size > 1000
    res = runner.invoke(app, ["build", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no such file" in res.output


def test_hnsw_agrees_with_exact_on_real_embeddings(vectors):
    from router_core.index import ExactIndex, HnswIndex

    pool, queries = vectors[20:], vectors[:20]
    exact, _ = ExactIndex(pool).query(queries, 5)
    approx, _ = HnswIndex.build(pool).query(queries, 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, approx)])
    assert recall >= 0.98


def test_local_p_estimator_aggregates_equal_batch(subset, vectors, tmp_path):
    from dataclasses import replace

    r = build_router(subset, embed.get_encoder(), RoutingParams(p_estimator="local"))
    artifact.save(r, tmp_path / "local")
    back = artifact.load(tmp_path / "local")
    assert back.params.p_estimator == "local" and back.agree is not None
    assert np.array_equal(np.isnan(back.agree), np.isnan(r.agree))
    rows = np.flatnonzero(subset.tasks == "humaneval")
    obs = back.observe(vectors[rows])
    assert obs.p_local.shape == (len(rows), len(subset.models))
    inc = None
    for i in range(len(rows)):
        one = back.observe(vectors[rows[i:i + 1]]).aggregates()
        inc = one if inc is None else inc.merge(one)
    batch = back.decide(obs.aggregates())
    assert back.decide(inc).s3 == pytest.approx(batch.s3)
    assert list(batch.p_hat.values()) == pytest.approx(list(obs.p_local.mean(0)), abs=1e-5)
    # the same sums under the paper's estimator give the Nadaraya-Watson p_hat instead
    nw = replace(back, params=replace(back.params, p_estimator="nadaraya-watson")).decide(obs.aggregates())
    assert nw.p_hat != batch.p_hat
    with pytest.raises(ValueError, match="p_estimator"):
        RoutingParams(p_estimator="magic")
